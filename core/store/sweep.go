package store

import (
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
)

const sweepBatch = 512

// indexFlushEvery is how many index keys the first sweep of an unindexed
// store collects before writing them.
const indexFlushEvery = 8 * sweepBatch

// Sweep deletes expired call records and drops expired variables from
// customer records. Each batch re-checks inside its own transaction, so a
// record written again between the scan and the delete is kept.
func (s *DB) Sweep(now time.Time) (int, error) { return s.SweepPaced(now, nil) }

// SweepPaced is Sweep for the periodic job (issue 17): it reads the store
// ScanChunk records per transaction and calls pace between chunks and
// between its write batches, as the paced scans do. Unpaced, the sweep
// read every customer and call record in one go, as fast as one core
// could, every ten minutes while calls rang, and a shutdown could not
// stop it. An error from pace (a cancelled context) stops it; what it deleted
// by then stays deleted.
func (s *DB) SweepPaced(now time.Time, pace Pace) (int, error) {
	ok, err := s.expiryIndexed()
	if err != nil {
		return 0, err
	}
	if !ok {
		return s.sweepAll(now, pace)
	}
	return s.sweepDue(now, pace)
}

// sweepDue sweeps the records the expiry index holds due before now.
func (s *DB) sweepDue(now time.Time, pace Pace) (int, error) {
	expired := func(t time.Time) bool { return !t.IsZero() && t.Before(now) }
	keys, err := s.due(now, pace)
	if err != nil {
		return 0, err
	}
	return s.inBatches(keys, pace, func(t *Txn, ik []byte) (int, error) {
		if err := t.del(ik); err != nil {
			return 0, err
		}
		_, k, ok := parseExpiryKey(ik)
		if !ok {
			return 0, nil
		}
		switch k[0] {
		case pCustomer:
			return dropExpiredVars(t, k, expired)
		case pCall:
			return dropExpiredCall(t, k, expired)
		}
		return 0, nil
	})
}

// sweepAll is the sweep of a store the expiry index does not cover yet: it
// reads every customer and call record, sweeps what expired, indexes the
// rest, and marks the store indexed once it got through.
func (s *DB) sweepAll(now time.Time, pace Pace) (int, error) {
	expired := func(t time.Time) bool { return !t.IsZero() && t.Before(now) }
	total := 0
	// customers holding expired variables, and the index keys of the
	// records kept, written every few thousand so a store of millions
	// does not hold them all in memory
	var refs, index [][]byte
	flush := func() error {
		// A record written since the scan read it indexed itself; the
		// key written here for its older expiry is then a stale one,
		// which the sweep that finds it due drops.
		_, err := s.inBatches(index, pace, func(t *Txn, ik []byte) (int, error) { return 0, t.set(ik, nil) })
		index = index[:0]
		return err
	}
	err := s.scanChunks([]byte{pCustomer}, pace, func(k []byte, item *badger.Item) error {
		var found bool
		var first int64
		err := item.Value(func(b []byte) (err error) {
			found, err = customerVarExpiring(b, func(t time.Time) bool {
				if sec := expiryNanos(t); sec != 0 && (first == 0 || sec < first) {
					first = sec
				}
				return expired(t)
			})
			return err
		})
		if err != nil {
			return fmt.Errorf("%w: decode customer: %v", ErrUnavailable, err)
		}
		switch {
		case found: // its rewrite indexes it
			refs = append(refs, append([]byte(nil), k...))
		case first != 0:
			index = append(index, expiryKey(first, k))
		}
		if len(index) >= indexFlushEvery {
			return flush()
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	n, err := s.inBatches(refs, pace, func(t *Txn, k []byte) (int, error) {
		return dropExpiredVars(t, k, expired)
	})
	total += n
	if err != nil {
		return total, err
	}
	// expired call records, and those to index
	var calls [][]byte
	err = s.scanChunks([]byte{pCall}, pace, func(k []byte, item *badger.Item) error {
		var at time.Time
		err := item.Value(func(b []byte) (err error) {
			at, err = callExpiry(b)
			return err
		})
		if err != nil {
			return fmt.Errorf("%w: decode call: %v", ErrUnavailable, err)
		}
		switch {
		case expired(at):
			calls = append(calls, append([]byte(nil), k...))
		case !at.IsZero():
			index = append(index, expiryKey(expiryNanos(at), k))
		}
		if len(index) >= indexFlushEvery {
			return flush()
		}
		return nil
	})
	if err != nil {
		return total, err
	}
	n, err = s.inBatches(calls, pace, func(t *Txn, k []byte) (int, error) {
		return dropExpiredCall(t, k, expired)
	})
	total += n
	if err != nil {
		return total, err
	}
	if err := flush(); err != nil {
		return total, err
	}
	return total, s.Update(func(t *Txn) error { return t.markIndexed() })
}

// dropExpiredVars drops the expired variables of the customer at k.
func dropExpiredVars(t *Txn, k []byte, expired func(time.Time) bool) (int, error) {
	var c Customer
	if ok, err := t.get(k, &c); err != nil || !ok {
		return 0, err
	}
	before := len(c.Variables)
	c.Variables = slices.DeleteFunc(c.Variables, func(v Variable) bool { return expired(v.ExpiresAt) })
	if len(c.Variables) == before {
		return 0, nil
	}
	return before - len(c.Variables), t.put(k, &c)
}

// dropExpiredCall deletes the call record at k if it expired.
func dropExpiredCall(t *Txn, k []byte, expired func(time.Time) bool) (int, error) {
	var c Call
	if ok, err := t.get(k, &c); err != nil || !ok || !expired(c.ExpiresAt) {
		return 0, err
	}
	if err := t.del(k); err != nil {
		return 0, err
	}
	if err := t.DeleteCallStart(c); err != nil {
		return 0, err
	}
	return 1, t.del(key(pCustCall, c.CustomerRef, c.ID))
}

// inBatches calls fn for each key, sweepBatch keys per write transaction,
// with pace (when not nil) before every batch after the first.
func (s *DB) inBatches(keys [][]byte, pace Pace, fn func(*Txn, []byte) (int, error)) (int, error) {
	total := 0
	for first := true; len(keys) > 0; first = false {
		if !first && pace != nil {
			if err := pace(); err != nil {
				return total, err
			}
		}
		batch := keys[:min(sweepBatch, len(keys))]
		keys = keys[len(batch):]
		n := 0
		err := s.Update(func(t *Txn) error {
			n = 0
			for _, k := range batch {
				m, err := fn(t, k)
				if err != nil {
					return err
				}
				n += m
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}
