package store

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/ristretto/v2/z"
)

// The store finds the pool Badger builds its tables from. A Badger that
// moved or renamed it would leave the drain with nothing to drain; this
// fails instead.
func TestBuilderPoolIsFound(t *testing.T) {
	db, err := Open(Options{Dir: t.TempDir(), MinFreeBytes: -1, LowMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if builderPool(db.bdb) == nil {
		t.Fatal("badger.DB has no allocPool field of type *z.AllocatorPool")
	}
	if db.drainer == nil {
		t.Fatal("the store runs no drainer")
	}
}

// pooledBytes takes every allocator out of the pool, notes the size of
// each one Badger had put there, and puts those back.
func pooledBytes(p *z.AllocatorPool) []int {
	var got []*z.Allocator
	for range builderPoolCap {
		got = append(got, p.Get(0, "Builder"))
	}
	var sizes []int
	for _, a := range got {
		if _, n := allocatorBytes(a); n > freshAllocatorBytes {
			sizes = append(sizes, n)
			p.Return(a)
		} else {
			a.Release()
		}
	}
	return sizes
}

// A real memtable flush leaves its builder's allocator in Badger's pool,
// with the buffers it grew; a drain cuts it back to what it keeps, and
// adds nothing to an empty pool. Closing the store with the drainer
// running is clean.
func TestDrainTrimsTheFlushBuilder(t *testing.T) {
	db, err := Open(Options{Dir: t.TempDir(), MinFreeBytes: -1, LowMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// The periodic drainer would race the sizes below.
	db.drainer.close()
	db.drainer = nil
	pool := builderPool(db.bdb)
	if freed := drainBuilders(pool, 0); freed != 0 {
		t.Fatalf("a fresh store's pool gave up %d bytes", freed)
	}
	if sizes := pooledBytes(pool); len(sizes) != 0 {
		t.Fatalf("a drain of an empty pool left allocators of %v bytes in it", sizes)
	}

	// Calls of about 6 MiB, less than the 8 MiB memtable: their blocks
	// and the blocks' snappy copies, both built in the allocator, need
	// more than its first buffer (twice the 4 MiB table size).
	rnd := rand.New(rand.NewPCG(1, 2))
	for lo := 0; lo < 16000; lo += 1000 {
		err := db.Update(func(tx *Txn) error {
			for i := lo; i < lo+1000; i++ {
				ref := fmt.Sprintf("cust_%016x%016x%016x%016x%016x", rnd.Uint64(), rnd.Uint64(), rnd.Uint64(), rnd.Uint64(), rnd.Uint64())
				if err := tx.PutCall(Call{ID: fmt.Sprintf("call-%05d", i), CustomerRef: ref, DNIS: ref, StartFingerprint: ref, StartedAt: time.Unix(int64(i), 0)}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// DropPrefix flushes the memtables before it returns when some key
	// has the prefix; only that key is dropped.
	err = db.bdb.Update(func(tx *badger.Txn) error { return tx.Set([]byte("test-drop/1"), []byte("x")) })
	if err != nil {
		t.Fatal(err)
	}
	if err := db.bdb.DropPrefix([]byte("test-drop/")); err != nil {
		t.Fatal(err)
	}
	if h := db.Health(); h.LSMBytes == 0 {
		t.Fatalf("the flush wrote no table: %+v", h)
	}
	sizes := pooledBytes(pool)
	const first = 8 << 20
	if len(sizes) == 0 || slices.Max(sizes) <= first {
		t.Fatalf("after a flush of 6 MiB the pool holds allocators of %v bytes: Badger no longer keeps a grown builder, so the drain is moot", sizes)
	}
	want := 0
	for _, n := range sizes {
		want += n - first
	}
	// Keeping less than the first buffer still keeps the first buffer.
	if freed := drainBuilders(pool, 1<<20); freed != want {
		t.Fatalf("the drain let go of %d bytes of %v, want %d", freed, sizes, want)
	}
	after := pooledBytes(pool)
	if len(after) != len(sizes) || slices.Max(after) != first {
		t.Fatalf("after the drain the pool holds %v bytes, want %d allocators of %d", after, len(sizes), first)
	}
	// A trimmed allocator still builds tables.
	if err := db.bdb.Update(func(tx *badger.Txn) error { return tx.Set([]byte("test-drop/2"), []byte("x")) }); err != nil {
		t.Fatal(err)
	}
	if err := db.bdb.DropPrefix([]byte("test-drop/")); err != nil {
		t.Fatal(err)
	}

	// Close stops the drainer before Badger closes the pool (a Get from
	// the closed pool would hand the drainer a nil allocator).
	db.drainer = startBuilderDrainer(pool, time.Millisecond)
}
