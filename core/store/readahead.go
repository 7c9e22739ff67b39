package store

import (
	"errors"
	"sync"
)

// readAhead is what a ReadAhead read: each key's value as of the
// transaction, or that it had none.
type readAhead struct {
	mu  sync.Mutex
	got map[string]aheadRecord
}

type aheadRecord struct {
	value []byte
	found bool
}

func (a *readAhead) keep(k, v []byte, found bool) {
	a.mu.Lock()
	a.got[string(k)] = aheadRecord{value: v, found: found}
	a.mu.Unlock()
}

// errReadAheadWrite is a read-ahead worker that tried to write.
var errReadAheadWrite = errors.New("store: a ReadAhead read function wrote")

// written forgets what a read-ahead read of k: the transaction's own write
// is what a later read must see. A read-ahead worker may not write.
func (t *Txn) written(k []byte) error {
	if t.filling {
		return errReadAheadWrite
	}
	if t.ahead != nil {
		delete(t.ahead.got, string(k))
	}
	return nil
}

// ReadAhead calls read(i) for every i in [0, n), on up to workers
// goroutines that share t, and keeps each record they read. The same reads
// made later in t, one at a time, then come from memory, unless t wrote
// that record since (it is then read from t again), so they return what
// they would have returned without the read-ahead.
//
// It is for a batch of independent items that are applied in order: the
// records an item needs can be read in parallel (Badger's reads within a
// transaction may run at once; its writes may not), leaving only the
// writes in order. read must only read; a write in it fails. What is kept
// lasts until the next ReadAhead or the end of t. The first error stops
// the workers and is returned.
func (t *Txn) ReadAhead(workers, n int, read func(t *Txn, i int) error) error {
	if t.filling {
		return errReadAheadWrite
	}
	t.ahead = &readAhead{got: make(map[string]aheadRecord, 4*n)}
	workers = max(1, min(workers, n))
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		next  int
		first error
	)
	take := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		if first != nil || next >= n {
			return 0, false
		}
		next++
		return next - 1, true
	}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &Txn{bt: t.bt, ahead: t.ahead, filling: true}
			for i, ok := take(); ok; i, ok = take() {
				if err := read(w, i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		t.ahead = nil
	}
	return first
}
