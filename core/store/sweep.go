package store

import (
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
)

const sweepBatch = 512

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
	expired := func(t time.Time) bool { return !t.IsZero() && t.Before(now) }
	expiredVar := func(v Variable) bool { return expired(v.ExpiresAt) }
	total := 0
	// customers holding expired variables
	var refs [][]byte
	err := s.scanChunks([]byte{pCustomer}, pace, func(k []byte, item *badger.Item) error {
		var found bool
		err := item.Value(func(b []byte) (err error) {
			found, err = customerVarExpiring(b, expired)
			return err
		})
		if err != nil {
			return fmt.Errorf("%w: decode customer: %v", ErrUnavailable, err)
		}
		if found {
			refs = append(refs, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	n, err := s.inBatches(refs, pace, func(t *Txn, k []byte) (int, error) {
		var c Customer
		if ok, err := t.get(k, &c); err != nil || !ok {
			return 0, err
		}
		before := len(c.Variables)
		c.Variables = slices.DeleteFunc(c.Variables, expiredVar)
		if len(c.Variables) == before {
			return 0, nil
		}
		return before - len(c.Variables), t.put(k, &c)
	})
	total += n
	if err != nil {
		return total, err
	}
	// expired call records
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
		if expired(at) {
			calls = append(calls, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil {
		return total, err
	}
	n, err = s.inBatches(calls, pace, func(t *Txn, k []byte) (int, error) {
		var c Call
		if ok, err := t.get(k, &c); err != nil || !ok || !expired(c.ExpiresAt) {
			return 0, err
		}
		if err := t.del(k); err != nil {
			return 0, err
		}
		return 1, t.del(key(pCustCall, c.CustomerRef, c.ID))
	})
	return total + n, err
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
