package store

import (
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

const sweepBatch = 512

type expiring interface {
	record
	expiry() time.Time
}

func (v *Variable) expiry() time.Time { return v.ExpiresAt }
func (c *Call) expiry() time.Time     { return c.ExpiresAt }

// Sweep deletes variables and call records whose expiry is before now. Each
// batch re-checks expiry inside its own transaction, so a variable set again
// between the scan and the delete is kept.
func (s *DB) Sweep(now time.Time) (int, error) {
	total := 0
	for _, p := range []struct {
		prefix byte
		zero   func() expiring
	}{
		{pVariable, func() expiring { return new(Variable) }},
		{pCall, func() expiring { return new(Call) }},
	} {
		isExpired := func(item *badger.Item) (bool, error) {
			rec := p.zero()
			if err := item.Value(func(b []byte) error { return unmarshal(b, rec) }); err != nil {
				return false, fmt.Errorf("%w: decode: %v", ErrUnavailable, err)
			}
			exp := rec.expiry()
			return !exp.IsZero() && exp.Before(now), nil
		}
		var expired [][]byte
		err := s.View(func(t *Txn) error {
			return t.scan([]byte{p.prefix}, true, func(k []byte, item *badger.Item) (bool, error) {
				ok, err := isExpired(item)
				if ok {
					expired = append(expired, append([]byte(nil), k...))
				}
				return err == nil, err
			})
		})
		if err != nil {
			return total, err
		}
		for len(expired) > 0 {
			batch := expired[:min(sweepBatch, len(expired))]
			expired = expired[len(batch):]
			n := 0
			err := s.Update(func(t *Txn) error {
				n = 0
				for _, k := range batch {
					item, err := t.bt.Get(k)
					if err != nil {
						continue // already gone
					}
					if ok, err := isExpired(item); err != nil || !ok {
						continue
					}
					if err := t.del(k); err != nil {
						return err
					}
					n++
				}
				return nil
			})
			if err != nil {
				return total, err
			}
			total += n
		}
	}
	return total, nil
}
