package store

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// The access log (who saw what, issue 15) is append-only and kept apart
// from the customer record, so that recording a read never rewrites it:
//
//	W<ref>\0<^time ns><id>   Access, a customer's records newest first
//	X<^time ns><id>          Access of an erasure, tied to no ref
//
//	W<ref>                   (empty) written with every batch for ref
//
// The customer's records are one range scan; an erasure deletes them and
// writes one record under X, which names who erased, not whom. The empty
// W<ref> is what a merge or an erasure reads before it moves or deletes
// the records: a batch committed after that read then conflicts with it,
// and the merge or erasure runs again and sees the batch's records (a
// range scan alone would not see records added behind it).
const (
	pAccess  = 'W'
	pErasure = 'X'
)

// Access is one access-log record. ID tells records of the same instant
// apart; it is made where the access happened and travels with the record,
// so every node of a cluster stores it under the same key.
type Access struct {
	ID     string    `json:"id"`
	Ref    string    `json:"ref,omitempty"` // not stored in the value: the key holds it
	Time   time.Time `json:"time"`
	Kind   string    `json:"kind"`
	Actor  string    `json:"actor"`
	CallID string    `json:"call_id,omitempty"`
	Node   string    `json:"node,omitempty"`
}

func (a *Access) encode(e *enc) {
	e.str(a.ID)
	e.time(a.Time)
	e.str(a.Kind)
	e.str(a.Actor)
	e.str(a.CallID)
	e.str(a.Node)
}

func (a *Access) decode(d *dec) {
	a.ID, a.Time, a.Kind, a.Actor, a.CallID, a.Node = d.str(), d.time(), d.str(), d.str(), d.str(), d.str()
}

// accessSuffix orders records newest first and keeps same-instant ones apart.
func accessSuffix(at time.Time, id string) []byte {
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], math.MaxUint64-uint64(at.UnixNano()))
	return append(ts[:], id...)
}

func accessKey(ref string, at time.Time, id string) []byte {
	return append(key(pAccess, ref, ""), accessSuffix(at, id)...)
}

// AccessCursor is where a page of a customer's access log ends: pass it as
// AccessPage.After to read on from there.
func AccessCursor(a Access) string { return hex.EncodeToString(accessSuffix(a.Time, a.ID)) }

// PutAccess appends a record to a.Ref's access log.
func (t *Txn) PutAccess(a Access) error {
	if err := t.set(key(pAccess, a.Ref), nil); err != nil {
		return err
	}
	return t.put(accessKey(a.Ref, a.Time, a.ID), &a)
}

// accessHead reads ref's W<ref> (see the key layout) and says whether ref
// has access records.
func (t *Txn) accessHead(ref string) (bool, error) {
	_, err := t.bt.Get(key(pAccess, ref))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("%w: read: %v", ErrUnavailable, err)
	}
	return true, nil
}

// PutErasureRecord keeps the record that an erasure happened, without the
// erased ref: a.Ref is ignored.
func (t *Txn) PutErasureRecord(a Access) error {
	a.Ref = ""
	return t.put(append([]byte{pErasure}, accessSuffix(a.Time, a.ID)...), &a)
}

// AccessPage says which part of a customer's log to read: records older
// than Before (zero: from the newest), or after the record of the cursor
// After; at most Limit of them.
type AccessPage struct {
	Before time.Time
	After  string
	Limit  int
}

// AccessLog returns ref's records, newest first, and whether more follow.
func (t *Txn) AccessLog(ref string, p AccessPage) (out []Access, more bool, err error) {
	prefix := key(pAccess, ref, "")
	seek := prefix
	var skip []byte
	switch {
	case p.After != "":
		s, err := hex.DecodeString(p.After)
		if err != nil || len(s) < 8 {
			return nil, false, fmt.Errorf("bad access cursor")
		}
		skip = append(append([]byte(nil), prefix...), s...)
		seek = skip
	case !p.Before.IsZero() && p.Before.UnixNano() > 0:
		// the first key of an instant before p.Before
		seek = accessKey(ref, p.Before.Add(-time.Nanosecond), "")
	}
	it := t.bt.NewIterator(scanOptions(prefix))
	defer it.Close()
	for it.Seek(seek); it.ValidForPrefix(prefix); it.Next() {
		item := it.Item()
		if skip != nil && bytes.Equal(item.Key(), skip) {
			continue
		}
		if p.Limit > 0 && len(out) == p.Limit {
			return out, true, nil
		}
		a := Access{Ref: ref}
		if err := item.Value(func(b []byte) error { return unmarshal(b, &a) }); err != nil {
			return nil, false, fmt.Errorf("%w: decode access: %v", ErrUnavailable, err)
		}
		out = append(out, a)
	}
	return out, false, nil
}

// ErasureRecords lists the anonymous records of erasures, newest first.
func (t *Txn) ErasureRecords() ([]Access, error) {
	var out []Access
	err := t.scan([]byte{pErasure}, func(_ []byte, item *badger.Item) (bool, error) {
		var a Access
		if err := item.Value(func(b []byte) error { return unmarshal(b, &a) }); err != nil {
			return false, fmt.Errorf("%w: decode access: %v", ErrUnavailable, err)
		}
		out = append(out, a)
		return true, nil
	})
	return out, err
}

// DeleteAccess deletes ref's whole access log (erasure).
func (t *Txn) DeleteAccess(ref string) error {
	if ok, err := t.accessHead(ref); err != nil || !ok {
		return err
	}
	keys := [][]byte{key(pAccess, ref)}
	err := t.scan(key(pAccess, ref, ""), func(k []byte, _ *badger.Item) (bool, error) {
		keys = append(keys, append([]byte(nil), k...))
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := t.del(k); err != nil {
			return err
		}
	}
	return nil
}

// MoveAccess moves from's access log to into (a merge): the records are
// about the person into now stands for.
func (t *Txn) MoveAccess(from, into string) error {
	if ok, err := t.accessHead(from); err != nil || !ok {
		return err
	}
	if err := t.del(key(pAccess, from)); err != nil {
		return err
	}
	prefix := key(pAccess, from, "")
	var recs []Access
	err := t.scan(prefix, func(_ []byte, item *badger.Item) (bool, error) {
		var a Access
		if err := item.Value(func(b []byte) error { return unmarshal(b, &a) }); err != nil {
			return false, fmt.Errorf("%w: decode access: %v", ErrUnavailable, err)
		}
		recs = append(recs, a)
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, a := range recs {
		if err := t.del(accessKey(from, a.Time, a.ID)); err != nil {
			return err
		}
		a.Ref = into
		if err := t.PutAccess(a); err != nil {
			return err
		}
	}
	return nil
}

// SweepAccess deletes access records, the erasures' included, older than
// before (zero: none). It reads only keys, which hold the time.
func (s *DB) SweepAccess(before time.Time) (int, error) { return s.SweepAccessPaced(before, nil) }

// SweepAccessPaced is SweepAccess in chunks with pace between them, as
// SweepPaced.
func (s *DB) SweepAccessPaced(before time.Time, pace Pace) (int, error) {
	if before.IsZero() {
		return 0, nil
	}
	cut := math.MaxUint64 - uint64(before.UnixNano())
	old := func(suffix []byte) bool { return len(suffix) >= 8 && binary.BigEndian.Uint64(suffix) > cut }
	var keys [][]byte
	err := s.scanChunks([]byte{pAccess}, pace, func(k []byte, _ *badger.Item) error {
		if i := bytes.IndexByte(k, 0); i > 0 && old(k[i+1:]) {
			keys = append(keys, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	err = s.scanChunks([]byte{pErasure}, pace, func(k []byte, _ *badger.Item) error {
		if old(k[1:]) {
			keys = append(keys, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return s.inBatches(keys, pace, func(t *Txn, k []byte) (int, error) { return 1, t.del(k) })
}
