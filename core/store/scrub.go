package store

import (
	"fmt"

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
func (s *DB) Scrub() error {
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
