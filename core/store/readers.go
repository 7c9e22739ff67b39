package store

import (
	"sync"
	"time"
)

// readers counts the store's open transactions by generation, so that
// Scrub can wait for every one that began before it: a compaction keeps
// each version an open transaction may still read, so an erased value
// stays on disk while a reader older than its erasure is open.
type readers struct {
	mu   sync.Mutex
	gen  uint64
	open map[uint64]int // generation -> transactions open
	done chan struct{}  // closed and replaced whenever one closes
}

// enter notes a transaction beginning; leave(g) with its result ends it.
func (r *readers) enter() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.open == nil {
		r.open = map[uint64]int{}
	}
	r.open[r.gen]++
	return r.gen
}

func (r *readers) leave(g uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.open[g]--; r.open[g] <= 0 {
		delete(r.open, g)
	}
	if r.done != nil {
		close(r.done)
		r.done = nil
	}
}

// drain waits until every transaction that began before it was called has
// ended, or until timeout; it reports whether they all did. Transactions
// beginning meanwhile do not hold it up.
func (r *readers) drain(timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	r.mu.Lock()
	mark := r.gen + 1
	r.gen = mark
	for {
		older := false
		for g := range r.open {
			if g < mark {
				older = true
				break
			}
		}
		if !older {
			r.mu.Unlock()
			return true
		}
		if r.done == nil {
			r.done = make(chan struct{})
		}
		done := r.done
		r.mu.Unlock()
		if drainWaits != nil {
			drainWaits()
		}
		select {
		case <-done:
		case <-deadline.C:
			return false
		}
		r.mu.Lock()
	}
}

// drainWaits, when set (tests), runs each time drain is about to wait.
var drainWaits func()
