package store

import (
	"path/filepath"
	"strings"
	"testing"
)

// A store's tables keep the compression they were written with, so an
// operator may change STICKY_STORE_COMPRESSION at any start.
func TestCompressionMayChangeBetweenOpens(t *testing.T) {
	dir := t.TempDir()
	refs := []string{}
	for i, c := range []string{"none", "snappy", "zstd", ""} {
		db, err := Open(Options{Dir: dir, MinFreeBytes: -1, Compression: c})
		if err != nil {
			t.Fatalf("open with %q: %v", c, err)
		}
		for _, ref := range refs {
			err := db.View(func(tx *Txn) error {
				got, ok, err := tx.Customer(ref)
				if err == nil && (!ok || got.Ref != ref) {
					t.Errorf("with %q: customer %s written earlier reads as %v, %+v", c, ref, ok, got)
				}
				return err
			})
			if err != nil {
				t.Fatalf("with %q: %v", c, err)
			}
		}
		ref := "cust_" + string(rune('a'+i))
		if err := db.Update(func(tx *Txn) error {
			return tx.PutCustomer(Customer{Ref: ref, LastChannel: strings.Repeat("x", 10)})
		}); err != nil {
			t.Fatal(err)
		}
		refs = append(refs, ref)
		// Closing flushes the memtable into a table of this compression:
		// the next open reads it beside the tables written before.
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		if tables, _ := filepath.Glob(filepath.Join(dir, "*.sst")); len(tables) != i+1 {
			t.Fatalf("after the open with %q: %d tables, want %d", c, len(tables), i+1)
		}
	}
}

func TestUnknownCompressionIsRefused(t *testing.T) {
	_, err := Open(Options{Dir: t.TempDir(), MinFreeBytes: -1, Compression: "lz4"})
	if err == nil || !strings.Contains(err.Error(), `"lz4"`) {
		t.Fatalf("Open with compression lz4: %v", err)
	}
}
