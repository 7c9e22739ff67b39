package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// The statistics index (issue 17). The cross-channel figures (core/stats.go)
// count, for every interaction that ended in a window, what it was given
// the customer's history before it (a channel switch, a repeat contact, a
// resolution), and for every call that started in it, its identity level.
// Computed from the records, that is a read of every interaction and call
// in the store; at a million customers one pass read about 1 GiB of tables
// every five minutes and was the mixed load's worst stretch. So the engine
// writes what each interaction and call start counts as it writes them:
//
//	Zcon\0<8-byte big-endian Unix ns of EndedAt><8-byte hash of the history key>  what the interaction counts (core's bytes)
//	Ztly\0<ref>                                                 where the count of ref's history stands (core's bytes)
//	Zcst\0<8-byte big-endian Unix ns of StartedAt><call ID>      what the call's start counts (core's bytes)
//	Zstatsv1                                                    the index covers the store, for core's settings (core's bytes)
//
// and a pass reads only the keys of its window. The store keeps the keys'
// existence in step with the records: deleting an interaction (or a whole
// customer) deletes its contact key and the customer's tally, and the sweep
// deleting an expired call deletes its start key. What the values say is
// the engine's to keep right.
//
// The index is node-local bookkeeping under pMeta, like the expiry index:
// every node of a cluster writes it through the same applied code,
// StateDigest leaves it out, and snapshots carry it.
var (
	contactPrefix = []byte{pMeta, 'c', 'o', 'n', 0}
	tallyPrefix   = []byte{pMeta, 't', 'l', 'y', 0}
	startPrefix   = []byte{pMeta, 'c', 's', 't', 0}
	keyStatsIndex = []byte{pMeta, 's', 't', 'a', 't', 's', 'v', '1'}
)

// indexNanos is t as the index orders it: Unix nanoseconds, 0 for times
// before 1970 and the largest value for times past 2262.
func indexNanos(t time.Time) uint64 {
	switch {
	case t.Unix() < 0:
		return 0
	case t.Unix() >= math.MaxInt64/int64(time.Second):
		return math.MaxInt64
	}
	return uint64(t.UnixNano())
}

func timeKey(prefix []byte, at uint64, rest []byte) []byte {
	b := make([]byte, 0, len(prefix)+8+len(rest))
	b = append(b, prefix...)
	b = binary.BigEndian.AppendUint64(b, at)
	return append(b, rest...)
}

// contactKey is the index key of history key hk, whose EndedAt it holds
// (historyKey stores MaxUint64 minus its Unix nanoseconds). The key ends
// in a 64-bit hash of hk rather than hk itself: it is written on every
// end, and two interactions would have to end in the same nanosecond to
// need the hash to tell them apart.
func contactKey(hk []byte) ([]byte, bool) {
	i := bytes.IndexByte(hk[1:], 0)
	if i < 0 || len(hk) < 1+i+1+8 {
		return nil, false
	}
	ns := math.MaxUint64 - binary.BigEndian.Uint64(hk[1+i+1:])
	h := fnv.New64a()
	h.Write(hk)
	return timeKey(contactPrefix, indexNanos(time.Unix(0, int64(ns))), h.Sum(nil)), true
}

func tallyKey(ref string) []byte { return append(append([]byte(nil), tallyPrefix...), ref...) }

func startKey(c Call) []byte { return timeKey(startPrefix, indexNanos(c.StartedAt), []byte(c.ID)) }

// delHistory deletes k and, for an interaction, its contact key.
func (t *Txn) delHistory(k []byte) error {
	if len(k) > 0 && k[0] == pInteraction {
		if ck, ok := contactKey(k); ok {
			if err := t.del(ck); err != nil {
				return err
			}
		}
	}
	return t.del(k)
}

// PutContact writes what interaction h of ref counts for the statistics.
func (t *Txn) PutContact(ref string, h Interaction, class []byte) error {
	ck, _ := contactKey(historyKey(ref, h.EndedAt, h.CallID))
	return t.set(ck, class)
}

// Tally returns where the count of ref's history stands (PutTally).
func (t *Txn) Tally(ref string) ([]byte, bool, error) { return t.raw(tallyKey(ref)) }

// PutTally records where the count of ref's history stands.
func (t *Txn) PutTally(ref string, b []byte) error { return t.set(tallyKey(ref), b) }

// PutCallStart writes what call c's start counts for the statistics.
func (t *Txn) PutCallStart(c Call, summary []byte) error { return t.set(startKey(c), summary) }

// DeleteCallStart deletes call c's start key (erasure, expiry).
func (t *Txn) DeleteCallStart(c Call) error { return t.del(startKey(c)) }

// StatsIndex returns what PutStatsIndex last recorded.
func (t *Txn) StatsIndex() ([]byte, bool, error) { return t.raw(keyStatsIndex) }

// PutStatsIndex records that the statistics index covers the whole store,
// for the settings b names.
func (t *Txn) PutStatsIndex(b []byte) error { return t.set(keyStatsIndex, b) }

// raw reads a bookkeeping value.
func (t *Txn) raw(k []byte) ([]byte, bool, error) {
	item, err := t.bt.Get(k)
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("%w: read: %v", ErrUnavailable, err)
	}
	b, err := item.ValueCopy(nil)
	if err != nil {
		return nil, false, fmt.Errorf("%w: read: %v", ErrUnavailable, err)
	}
	return b, true, nil
}

// EachContactPaced calls fn with what every interaction that ended in
// [from, to) counts (PutContact), oldest first, ScanChunk keys per read
// transaction with pace between them (nil: one transaction). The bytes
// are valid only during fn.
func (s *DB) EachContactPaced(from, to time.Time, pace Pace, fn func(class []byte) error) error {
	return s.eachInWindow(contactPrefix, from, to, pace, fn)
}

// EachCallStartIndexedPaced is EachContactPaced for the calls that started
// in [from, to) (PutCallStart).
func (s *DB) EachCallStartIndexedPaced(from, to time.Time, pace Pace, fn func(summary []byte) error) error {
	return s.eachInWindow(startPrefix, from, to, pace, fn)
}

// errWindowEnd ends a window's scan at its first key past the window.
var errWindowEnd = errors.New("past the window")

func (s *DB) eachInWindow(prefix []byte, from, to time.Time, pace Pace, fn func([]byte) error) error {
	end := indexNanos(to)
	err := s.scanChunksFrom(prefix, timeKey(prefix, indexNanos(from), nil), pace, func(k []byte, item *badger.Item) error {
		if len(k) < len(prefix)+8 || binary.BigEndian.Uint64(k[len(prefix):]) >= end {
			return errWindowEnd
		}
		return item.Value(fn)
	})
	if errors.Is(err, errWindowEnd) {
		err = nil
	}
	return err
}

// EachCustomerRefPaced calls fn with the refs of every customer in the
// store, ScanChunk of them at a time, pace between chunks, outside any
// transaction (the index's backfill writes between them).
func (s *DB) EachCustomerRefPaced(pace Pace, fn func(refs []string) error) error {
	return s.eachIDChunk(pCustomer, pace, fn)
}

// EachCallIDPaced is EachCustomerRefPaced for the call records' IDs.
func (s *DB) EachCallIDPaced(pace Pace, fn func(ids []string) error) error {
	return s.eachIDChunk(pCall, pace, fn)
}

// eachIDChunk is eachKeyChunk for the keys under a one-byte prefix, handed
// to fn without it.
func (s *DB) eachIDChunk(prefix byte, pace Pace, fn func([]string) error) error {
	return s.eachKeyChunk([]byte{prefix}, pace, func(ks [][]byte) error {
		ids := make([]string, len(ks))
		for i, k := range ks {
			ids[i] = string(k[1:])
		}
		return fn(ids)
	})
}

// eachKeyChunk hands fn the keys under prefix, up to ScanChunk at a time,
// outside the read transaction that listed them.
func (s *DB) eachKeyChunk(prefix []byte, pace Pace, fn func([][]byte) error) error {
	var ks [][]byte
	flush := func() error {
		if len(ks) == 0 {
			return nil
		}
		err := fn(ks)
		ks = ks[:0]
		return err
	}
	wrap := pace
	if pace == nil {
		wrap = func() error { return nil }
	}
	err := s.scanChunks(prefix, func() error {
		if err := flush(); err != nil {
			return err
		}
		return wrap()
	}, func(k []byte, _ *badger.Item) error {
		ks = append(ks, append([]byte(nil), k...))
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}

// DropStatsIndex forgets the statistics index (every key above), so the
// next paced statistics pass walks the store again as if it were written
// before the index. The tests of that walk use it; no command calls it.
// It flushes the memtables (DropPrefix).
func (s *DB) DropStatsIndex() error {
	if err := s.bdb.DropPrefix(contactPrefix, tallyPrefix, startPrefix, keyStatsIndex); err != nil {
		return fmt.Errorf("%w: drop the statistics index: %v", ErrUnavailable, err)
	}
	return nil
}
