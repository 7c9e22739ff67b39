package store

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// The figures an operator watches move with what the store holds: a
// memtable flushed at close lands on L0, compaction moves it down, reads of
// tables go through the block cache, and big values fill the value log.
func TestHealthFollowsTheStore(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(Options{Dir: dir, MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	h := db.Health()
	if h.L0Tables != 0 || h.LSMBytes != 0 || len(h.Levels) < 2 || h.Levels[0].Level != 0 {
		t.Fatalf("empty store: %+v", h)
	}
	if h.L0StallTables <= 0 || h.DiskFreeBytes <= 0 {
		t.Fatalf("stall threshold %d, disk free %d", h.L0StallTables, h.DiskFreeBytes)
	}
	vlogBefore := h.VlogBytes
	const n = 2000
	for lo := 0; lo < n; lo += 500 {
		err := db.Update(func(tx *Txn) error {
			for i := lo; i < lo+500; i++ {
				if err := tx.PutCall(Call{ID: fmt.Sprintf("call-%05d", i), CustomerRef: "cust_" + strings.Repeat("x", 100), StartedAt: time.Unix(int64(i), 0)}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// A value above Badger's value threshold (1 MiB) goes to the value log.
	big := make([]byte, 2<<20)
	if err := db.Badger().Update(func(tx *badger.Txn) error { return tx.Set([]byte("zbig"), big) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Sync(); err != nil {
		t.Fatal(err)
	}
	if h := db.Health(); h.VlogBytes < vlogBefore+int64(len(big)) {
		t.Errorf("value log %d bytes after a %d byte value (was %d)", h.VlogBytes, len(big), vlogBefore)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// Closing flushed the memtable to a table on L0.
	if db, err = Open(Options{Dir: dir, MinFreeBytes: -1}); err != nil {
		t.Fatal(err)
	}
	defer func() { db.Close() }()
	h = db.Health()
	if h.L0Tables < 1 || h.Levels[0].Tables != h.L0Tables || h.Levels[0].Bytes <= 0 || h.LSMBytes < h.Levels[0].Bytes {
		t.Fatalf("after a flush: %+v", h)
	}
	for i := 0; i < n; i += 7 {
		err := db.View(func(tx *Txn) error {
			_, ok, err := tx.Call(fmt.Sprintf("call-%05d", i))
			if !ok && err == nil {
				err = fmt.Errorf("call %d not found", i)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	h = db.Health()
	if h.BlockCacheHits+h.BlockCacheMisses == 0 || h.BlockCacheHitRatio < 0 || h.BlockCacheHitRatio > 1 {
		t.Errorf("block cache after %d reads: %d hits %d misses ratio %f", n/7, h.BlockCacheHits, h.BlockCacheMisses, h.BlockCacheHitRatio)
	}

	// Compaction empties L0 into a lower level; nothing is left running.
	// Flatten compacts L0 only once it holds more tables than
	// NumLevelZeroTables (5), so flush a few more first.
	for round := range 6 {
		err := db.Update(func(tx *Txn) error {
			for i := range 200 {
				if err := tx.PutCall(Call{ID: fmt.Sprintf("more-%d-%03d", round, i), CustomerRef: "r"}); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil {
			err = db.Close()
		}
		if err != nil {
			t.Fatal(err)
		}
		if db, err = Open(Options{Dir: dir, MinFreeBytes: -1}); err != nil {
			t.Fatal(err)
		}
	}
	tables := 0
	for _, l := range db.Health().Levels {
		tables += l.Tables
	}
	if tables < 2 {
		t.Fatalf("%d tables after 7 flushes", tables)
	}
	if err := db.Badger().Flatten(1); err != nil {
		t.Fatal(err)
	}
	h = db.Health()
	if h.L0Tables != 0 || h.LSMBytes <= 0 {
		t.Fatalf("after compaction: %+v", h)
	}
	lower := false
	for _, l := range h.Levels[1:] {
		lower = lower || l.Tables > 0 && l.Bytes > 0
	}
	if !lower {
		t.Fatalf("after compaction no lower level holds a table: %+v", h.Levels)
	}
	if h.CompactingTables != 0 {
		t.Errorf("%d tables compacting after Flatten returned", h.CompactingTables)
	}
}

func TestHealthInMemory(t *testing.T) {
	db, err := Open(Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if h := db.Health(); h.DiskFreeBytes != -1 || h.VlogBytes != 0 || len(h.Levels) == 0 {
		t.Fatalf("in memory: %+v", h)
	}
}
