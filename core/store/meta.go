package store

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Node-local bookkeeping of a cluster node lives under the 'Z' prefix: how
// far this store has applied the shared log, and which log that is. It is
// left out of the state digest, which covers only what every node must
// hold alike.
//
//	Zapplied   <seq uvarint><digest 32 bytes>
//	Zmemory    the id of the shared log this store applies
const pMeta = 'Z'

var (
	keyApplied = []byte{pMeta, 'a', 'p', 'p', 'l', 'i', 'e', 'd'}
	keyMemory  = []byte{pMeta, 'm', 'e', 'm', 'o', 'r', 'y'}
)

// Applied is how far the store has applied the shared log: the sequence of
// the last entry applied and the digest chained over every entry so far.
func (t *Txn) Applied() (seq uint64, digest [32]byte, err error) {
	item, err := t.bt.Get(keyApplied)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, digest, nil
	}
	if err != nil {
		return 0, digest, fmt.Errorf("%w: read applied: %v", ErrUnavailable, err)
	}
	err = item.Value(func(b []byte) error {
		s, n := binary.Uvarint(b)
		if n <= 0 || len(b)-n != len(digest) {
			return errors.New("corrupt applied record")
		}
		seq = s
		copy(digest[:], b[n:])
		return nil
	})
	if err != nil {
		return 0, digest, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return seq, digest, nil
}

// PutApplied records how far the store has applied the shared log, in the
// same transaction as the entry's own writes, so that a restart resumes
// exactly after the last entry whose effects are in the store.
func (t *Txn) PutApplied(seq uint64, digest [32]byte) error {
	b := binary.AppendUvarint(make([]byte, 0, 10+len(digest)), seq)
	b = append(b, digest[:]...)
	return t.set(keyApplied, b)
}

// Memory is the id of the shared log this store applies ("" if none yet).
func (t *Txn) Memory() (string, error) {
	item, err := t.bt.Get(keyMemory)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	b, err := item.ValueCopy(nil)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return string(b), nil
}

// PutMemory binds the store to a shared log.
func (t *Txn) PutMemory(id string) error {
	return t.set(keyMemory, []byte(id))
}

// Empty says whether the store holds no customer data (bookkeeping aside).
func (t *Txn) Empty() (bool, error) {
	it := t.bt.NewIterator(scanOptions(nil))
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		if k := it.Item().Key(); len(k) > 0 && k[0] != pMeta {
			return false, nil
		}
	}
	return true, nil
}

// StateDigest hashes every key and value the store holds except the
// node-local bookkeeping, in key order: two nodes that applied the same log
// have the same digest. It reads the whole store.
func (s *DB) StateDigest() (string, int, error) {
	h := sha256.New()
	n := 0
	err := s.View(func(t *Txn) error {
		it := t.bt.NewIterator(scanOptions(nil))
		defer it.Close()
		var lb [binary.MaxVarintLen64]byte
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			k := item.Key()
			if len(k) > 0 && k[0] == pMeta {
				continue
			}
			h.Write(lb[:binary.PutUvarint(lb[:], uint64(len(k)))])
			h.Write(k)
			if err := item.Value(func(v []byte) error {
				h.Write(lb[:binary.PutUvarint(lb[:], uint64(len(v)))])
				h.Write(v)
				return nil
			}); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return "", 0, fmt.Errorf("%w: digest: %v", ErrUnavailable, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// Try runs fn in a read-write transaction that is never committed: fn sees
// its own writes, and nothing of them stays. A node that cannot reach the
// shared log answers a ringing call this way from its own copy.
func (s *DB) Try(fn func(*Txn) error) error {
	defer s.readers.leave(s.readers.enter())
	bt := s.bdb.NewTransaction(true)
	defer bt.Discard()
	return fn(&Txn{bt: bt, writes: true})
}
