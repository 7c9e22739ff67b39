package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// The expiry index (issue 17). Every customer record holding a variable
// with an expiry, and every call record with one, has a key
//
//	Zexp\0<8-byte big-endian Unix nanoseconds><record key>
//
// at its earliest expiry, so the periodic sweep
// reads the few keys due instead of every record in the store. At a
// million customers the full scan read the whole store every ten minutes
// (about 1 GiB of tables), emptied the block cache the calls read from, and
// was the slowest stretch of the mixed load.
//
// The index may hold stale keys: a record written again with a later
// expiry, or deleted, leaves its old key behind unless the same
// transaction read it first. The sweep re-reads each record a due key
// names, does what the record itself says, and deletes the key, so a
// stale key costs one read when its time comes. What the index must never
// miss is a record's current earliest expiry: every write of a customer or
// call record goes through Txn.put, which writes it.
//
// The index is node-local bookkeeping under pMeta: StateDigest leaves it
// out, and snapshots carry it. A store written before the index existed
// has no keyExpiryIndexed; its first sweep reads every record as before,
// indexes what it keeps, and sets the key.
var (
	expiryPrefix     = []byte{pMeta, 'e', 'x', 'p', 0}
	keyExpiryIndexed = []byte{pMeta, 'e', 'x', 'p', 'v', '1'}
)

// expiryKey is the index key of record key k due at at (expiryNanos).
func expiryKey(at int64, k []byte) []byte {
	b := make([]byte, 0, len(expiryPrefix)+8+len(k))
	b = append(b, expiryPrefix...)
	b = binary.BigEndian.AppendUint64(b, uint64(at))
	return append(b, k...)
}

// parseExpiryKey splits an index key into its time and record key.
func parseExpiryKey(b []byte) (int64, []byte, bool) {
	if len(b) < len(expiryPrefix)+8+1 {
		return 0, nil, false
	}
	b = b[len(expiryPrefix):]
	return int64(binary.BigEndian.Uint64(b)), b[8:], true
}

// expiryNanos is the index's time of expiry t: Unix nanoseconds, so a
// key is due exactly when its expiry is before the sweep's now; 0 for no
// expiry, 1 for one before 1970 and the largest value for one past 2262.
func expiryNanos(t time.Time) int64 {
	switch {
	case t.IsZero():
		return 0
	case t.Unix() >= math.MaxInt64/int64(time.Second):
		return math.MaxInt64
	}
	return max(t.UnixNano(), 1)
}

// expiryOf is the time (expiryNanos) of a record's earliest expiry, 0 for none or
// for a record the index does not cover.
func expiryOf(v record) int64 {
	switch r := v.(type) {
	case *Customer:
		var first int64
		for _, x := range r.Variables {
			if s := expiryNanos(x.ExpiresAt); s != 0 && (first == 0 || s < first) {
				first = s
			}
		}
		return first
	case *Call:
		return expiryNanos(r.ExpiresAt)
	}
	return 0
}

// indexed says whether the index covers records under k's prefix.
func indexed(k []byte) bool { return len(k) > 0 && (k[0] == pCustomer || k[0] == pCall) }

// readExpiry notes the earliest expiry of a record a writing transaction
// read, so a write of it changes the index only when the expiry changed.
// Reads in View (a ringing call's lookups) note nothing.
func (t *Txn) readExpiry(k []byte, v record) {
	if t.writes && indexed(k) {
		t.noteExpiry(k, expiryOf(v))
	}
}

func (t *Txn) noteExpiry(k []byte, at int64) {
	if t.exp == nil {
		t.exp = make(map[string]int64)
	}
	t.exp[string(k)] = at
}

// indexExpiry keeps the index in step with the write of record v at k.
func (t *Txn) indexExpiry(k []byte, v record) error {
	if !indexed(k) {
		return nil
	}
	now := expiryOf(v)
	was, read := t.exp[string(k)]
	if read && was == now {
		return nil
	}
	if read && was != 0 {
		if err := t.del(expiryKey(was, k)); err != nil {
			return err
		}
	}
	if now != 0 {
		if err := t.set(expiryKey(now, k), nil); err != nil {
			return err
		}
	}
	t.noteExpiry(k, now)
	return nil
}

// markIndexed records that the index covers the whole store.
func (t *Txn) markIndexed() error { return t.set(keyExpiryIndexed, []byte{1}) }

// expiryIndexed says whether the store's expiry index covers every record.
func (s *DB) expiryIndexed() (bool, error) {
	var ok bool
	err := s.View(func(t *Txn) error {
		_, err := t.bt.Get(keyExpiryIndexed)
		switch {
		case err == nil:
			ok = true
		case err != badger.ErrKeyNotFound:
			return fmt.Errorf("%w: read: %v", ErrUnavailable, err)
		}
		return nil
	})
	return ok, err
}

// markEmptyIndexed sets keyExpiryIndexed on a store holding no records,
// which the index covers from its first write.
func (s *DB) markEmptyIndexed() error {
	return s.Update(func(t *Txn) error {
		if _, err := t.bt.Get(keyExpiryIndexed); err == nil {
			return nil
		}
		empty, err := t.Empty()
		if err != nil || !empty {
			return err
		}
		return t.markIndexed()
	})
}

// errDueEnd ends the scan of due at the first key not yet due.
var errDueEnd = errors.New("no more keys due")

// due lists the index keys due before now, ScanChunk of them per
// transaction with pace between chunks (scanChunks).
func (s *DB) due(now time.Time, pace Pace) ([][]byte, error) {
	cut := expiryNanos(now) // due: before now
	var out [][]byte
	err := s.scanChunks(expiryPrefix, pace, func(k []byte, _ *badger.Item) error {
		if at, _, ok := parseExpiryKey(k); ok && at >= cut {
			return errDueEnd
		}
		out = append(out, append([]byte(nil), k...)) // a malformed key is dropped
		return nil
	})
	if errors.Is(err, errDueEnd) {
		err = nil
	}
	return out, err
}
