package store

import (
	"fmt"
	"io"
)

// WriteSnapshot writes a consistent copy of the whole store to w (Badger's
// backup format). The copy holds the node-local bookkeeping too, so a node
// restored from it knows exactly how far the copy had applied the shared
// log.
func (s *DB) WriteSnapshot(w io.Writer) error {
	defer s.readers.leave(s.readers.enter())
	if _, err := s.bdb.Backup(w, 0); err != nil {
		return fmt.Errorf("%w: snapshot: %v", ErrUnavailable, err)
	}
	return nil
}

// ReplaceWith drops everything the store holds and loads the snapshot r in
// its place.
func (s *DB) ReplaceWith(r io.Reader) error {
	if err := s.bdb.DropAll(); err != nil {
		return fmt.Errorf("%w: restore: %v", ErrUnavailable, err)
	}
	if err := s.bdb.Load(r, 256); err != nil {
		return fmt.Errorf("%w: restore: %v", ErrUnavailable, err)
	}
	return nil
}
