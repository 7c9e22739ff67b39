package store

import (
	"bytes"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

var keyScrub = []byte{pMeta, 's', 'c', 'r', 'u', 'b'}

// Scrub makes deleted and overwritten records leave the disk: it writes
// the memtables out to tables and compacts every level into one, which
// drops the older versions of each key. An erased customer's data is then
// in no file of the store (the old files are removed; like any deleted
// file, their blocks stay on the device until it reuses them). It blocks
// writes while the memtables are written out and rewrites the whole
// store, so it costs about as much as a backup.
//
// A compaction keeps every version a reader may still see: a transaction
// opened before the erasure (a paced scan's chunk, a snapshot being sent)
// and still open when the compaction reaches the erased keys keeps their
// old values on disk. So Scrub first waits (up to scrubDrain) for every
// transaction open when it began, and after compacting it checks that no
// key still has a version it should have dropped; if one has, it says so
// instead of reporting success.
func (s *DB) Scrub() error {
	// every write before the scrub began (the erasure that asked for it)
	cut := s.bdb.MaxVersion()
	if !s.readers.drain(scrubDrain) {
		s.log.Warn("scrub: transactions older than the scrub are still open; compacting anyway", "waited", scrubDrain)
	}
	if scrubBeforeFlatten != nil {
		scrubBeforeFlatten()
	}
	if err := s.flatten(); err != nil {
		return err
	}
	held, err := s.versionsHeld(cut)
	if err != nil {
		return err
	}
	if held > 0 {
		return fmt.Errorf("%w: scrub: older versions of %d key(s) were held by a transaction open during the compaction; the next scrub tries again", ErrUnavailable, held)
	}
	return nil
}

var (
	// scrubDrain bounds Scrub's wait for older transactions.
	scrubDrain = 30 * time.Second
	// scrubBeforeFlatten, when set (tests), runs between the wait and
	// the compaction.
	scrubBeforeFlatten func()
)

// flatten writes the memtables out and compacts every level into one.
func (s *DB) flatten() error {
	// DropPrefix writes every memtable out to a table, which nothing else
	// in Badger's API does on a running store; it needs a key to drop.
	if err := s.bdb.Update(func(t *badger.Txn) error { return t.Set(keyScrub, []byte{1}) }); err != nil {
		return fmt.Errorf("%w: scrub: %v", ErrUnavailable, err)
	}
	if err := s.bdb.DropPrefix(keyScrub); err != nil {
		return fmt.Errorf("%w: scrub: %v", ErrUnavailable, err)
	}
	if err := s.bdb.Flatten(2); err != nil {
		return fmt.Errorf("%w: scrub: %v", ErrUnavailable, err)
	}
	return nil
}

// versionsHeld counts the keys that still have two versions at or before
// cut: the older one is what a compaction that could discard up to cut
// drops (an erased value behind its deletion, an overwritten one behind
// the new value), so a reader older than cut kept it. It reads every key
// (not the values) of the store.
func (s *DB) versionsHeld(cut uint64) (int, error) {
	held := 0
	err := s.bdb.View(func(t *badger.Txn) error {
		it := t.NewIterator(badger.IteratorOptions{AllVersions: true})
		defer it.Close()
		var last []byte
		counted := false
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			if item.Version() > cut {
				continue
			}
			if bytes.Equal(item.Key(), last) {
				if !counted {
					held++
					counted = true
				}
				continue
			}
			last, counted = item.KeyCopy(last[:0]), false
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("%w: scrub: %v", ErrUnavailable, err)
	}
	return held, nil
}
