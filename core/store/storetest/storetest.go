// Package storetest holds helpers for tests that check what a store holds.
package storetest

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/sticky-cc/sticky/core/store"
)

// Dump returns every key and value of db in key order, so a test can show
// that a refused request changed nothing: compare a dump before and after.
func Dump(tb testing.TB, db *store.DB) string {
	tb.Helper()
	var buf bytes.Buffer
	err := db.Badger().View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			fmt.Fprintf(&buf, "%q=%q\n", it.Item().Key(), v)
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return buf.String()
}
