package store

import (
	"reflect"
	"sync"
	"time"
	"unsafe"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/ristretto/v2/z"
)

// Badger builds every table (a memtable flush, each output of a
// compaction) in buffers from one pool of allocators per database. A
// finished builder hands its allocator back with all the buffers it grew,
// and the pool keeps up to eight of them. Built without jemalloc those
// buffers are ordinary Go memory, and the pool frees one only after two
// seconds in which no table was started: under a steady write load,
// never. Issue 17's heap profiles at a million customers showed the pool
// holding 193 to 447 MiB (eight allocators of 8 MiB, most grown by
// memtable flushes to 56-120 MiB): that memory was live to the collector,
// so the heap sat near its soft limit and the collector ran two to three
// times a second.
//
// Badger has no setting for the pool, so every builderDrainEvery the
// store takes each idle allocator out, cuts it back to builderKeepBytes
// and puts it back. That is what a compaction's builder of a 4 MiB table
// uses (an 8 MiB first buffer and a 16 MiB second one), so compactions
// still build from reused memory; what a memtable flush grew beyond it
// goes to the collector. Releasing every idle allocator instead made the
// million-customer preload about a quarter slower: each table then
// allocated and zeroed its buffers afresh. Builders at work are untouched:
// their allocators are not in the pool.
const (
	builderDrainEvery = time.Second
	builderKeepBytes  = 24 << 20
	// builderPoolCap is the capacity Badger gives the pool
	// (z.NewAllocatorPool(8) in badger.Open).
	builderPoolCap = 8
	// A Get from an empty pool makes an allocator of this size.
	freshAllocatorBytes = 512
)

// builderPool returns Badger's pool of table-builder allocators, or nil if
// this Badger keeps it elsewhere (TestBuilderPoolIsFound fails then, so an
// upgrade cannot drop the drain silently). Badger sets the field in Open
// before it starts a goroutine and never writes it again, so reading it
// after Open is free of races.
func builderPool(db *badger.DB) *z.AllocatorPool {
	f := reflect.ValueOf(db).Elem().FieldByName("allocPool")
	if !f.IsValid() || f.Type() != reflect.TypeFor[*z.AllocatorPool]() {
		return nil
	}
	return *(**z.AllocatorPool)(unsafe.Pointer(f.UnsafeAddr()))
}

// drainBuilders cuts every allocator idle in the pool back to keep bytes
// and returns how many bytes it let go. Get hands out a pooled allocator
// if there is one and otherwise makes a small new one, which is released
// at once: builderPoolCap calls visit every allocator the pool held (one
// put back may come round again, and is cut to no effect).
func drainBuilders(p *z.AllocatorPool, keep int) (freed int) {
	for range builderPoolCap {
		a := p.Get(0, "Builder")
		first, held := allocatorBytes(a)
		if held <= freshAllocatorBytes {
			a.Release()
			continue
		}
		// TrimTo keeps buffers while their running total is below its
		// argument. The first buffer must stay: an allocator grows by
		// doubling its last buffer, and from none it would loop forever.
		a.TrimTo(max(keep, first) + 1)
		_, left := allocatorBytes(a)
		freed += held - left
		p.Return(a)
	}
	return freed
}

// allocatorBytes returns the size of a's first buffer and of all its
// buffers. ristretto has no accessor for them (Size is what has been
// handed out since the last reset), so it reads the buffers' lengths;
// reflect allows reading the length of an unexported field. Zero (a
// ristretto that keeps them elsewhere: TestDrainTrimsTheFlushBuilder
// fails then) makes the drain release every idle allocator.
func allocatorBytes(a *z.Allocator) (first, total int) {
	bufs := reflect.ValueOf(a).Elem().FieldByName("buffers")
	if !bufs.IsValid() || bufs.Kind() != reflect.Slice {
		return 0, 0
	}
	for i := range bufs.Len() {
		b := bufs.Index(i)
		if b.Kind() != reflect.Slice {
			return 0, 0
		}
		if i == 0 {
			first = b.Len()
		}
		total += b.Len()
	}
	return first, total
}

// builderDrainer runs drainBuilders until stopped. It must stop before the
// database closes: Badger closes the pool's channel then, and a Get on it
// would hand out nil.
type builderDrainer struct {
	stop chan struct{}
	done sync.WaitGroup
}

func startBuilderDrainer(p *z.AllocatorPool, every time.Duration) *builderDrainer {
	d := &builderDrainer{stop: make(chan struct{})}
	d.done.Add(1)
	go func() {
		defer d.done.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-d.stop:
				return
			case <-t.C:
				drainBuilders(p, builderKeepBytes)
			}
		}
	}()
	return d
}

func (d *builderDrainer) close() {
	if d == nil {
		return
	}
	close(d.stop)
	d.done.Wait()
}
