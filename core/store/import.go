package store

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Where a bulk import got to is node-local bookkeeping, like the applied
// position: it lives under the 'Z' prefix, out of the state digest. Every
// node of a cluster writes the same record (it travels in the import's log
// entry), so an import can be resumed against any node.
//
//	Zimport\0<source>   ImportProgress (JSON: written once per batch)
var importPrefix = []byte{pMeta, 'i', 'm', 'p', 'o', 'r', 't', 0}

// ImportReject is one row a batch rejected: its line in the file and why.
// Reasons never hold customer data.
type ImportReject struct {
	Line   int64  `json:"line"`
	Reason string `json:"reason"`
}

// ImportProgress is how far the import of one source file has got: the
// place after the last batch whose rows are in the store, written in the
// same transaction as that batch.
type ImportProgress struct {
	// Source identifies the file (a hash of its content and how it was
	// read), so that a different file never resumes at this place.
	Source string `json:"source"`
	// Offset is the byte offset in the file after the batch; Line the last
	// line it read; Rows the data rows read so far.
	Offset int64 `json:"offset"`
	Line   int64 `json:"line"`
	Rows   int64 `json:"rows"`
	// Counts of every run of this source so far, this batch included.
	Imported  int64 `json:"imported"`
	Updated   int64 `json:"updated"`
	Unchanged int64 `json:"unchanged"`
	Rejected  int64 `json:"rejected"`
	// RejectsAt is the size of the rejects file before this batch's
	// rejects, and Rejects are those: a resumed run truncates the file
	// there and writes them again, so a kill between the commit and the
	// rejects file loses nothing and doubles nothing.
	RejectsAt int64          `json:"rejects_at"`
	Rejects   []ImportReject `json:"rejects,omitempty"`
	// Done marks the last batch: its transaction deletes the record, so
	// the next run of the same file reads it all again (and changes
	// nothing).
	Done bool `json:"done,omitempty"`
}

func importKey(source string) []byte { return append(append([]byte(nil), importPrefix...), source...) }

// ImportProgress returns the recorded place of source, if any.
func (t *Txn) ImportProgress(source string) (ImportProgress, bool, error) {
	var p ImportProgress
	item, err := t.bt.Get(importKey(source))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return p, false, nil
	}
	if err != nil {
		return p, false, fmt.Errorf("%w: read import progress: %v", ErrUnavailable, err)
	}
	if err := item.Value(func(b []byte) error { return json.Unmarshal(b, &p) }); err != nil {
		return p, false, fmt.Errorf("%w: decode import progress: %v", ErrUnavailable, err)
	}
	return p, true, nil
}

// PutImportProgress records p, or forgets the source's place if p.Done.
func (t *Txn) PutImportProgress(p ImportProgress) error {
	if p.Source == "" {
		return errors.New("import progress without a source")
	}
	if p.Done {
		return t.del(importKey(p.Source))
	}
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return t.set(importKey(p.Source), b)
}

// DeleteImportProgress forgets where source got to (an import started over).
func (t *Txn) DeleteImportProgress(source string) error { return t.del(importKey(source)) }
