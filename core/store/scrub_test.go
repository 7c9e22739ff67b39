package store

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// grepDir says which files under dir hold needle.
func grepDir(t *testing.T, dir string, needle []byte) []string {
	t.Helper()
	var hits []string
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, needle) {
			hits = append(hits, filepath.Base(p))
		}
		return nil
	})
	return hits
}

func TestScrubLeavesNoDeletedRecordOnDisk(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(Options{Dir: dir, MinFreeBytes: -1, Compression: "none"})
	if err != nil {
		t.Fatal(err)
	}
	canary := "canary-7f3a@example.com"
	keep := "keeper-1b2c@example.com"
	for _, c := range []struct{ ref, email string }{{"cust_gone", canary}, {"cust_kept", keep}} {
		err := db.Update(func(tx *Txn) error {
			if _, err := tx.AddRef("email", c.email, c.ref); err != nil {
				return err
			}
			return tx.PutCustomer(Customer{Ref: c.ref, Identifiers: []Identifier{{Kind: "email", Value: c.email}}})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// An older table holds the canary too, as a busy store's would.
	if err := db.Scrub(); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *Txn) error {
		if err := tx.RemoveRef("email", canary, "cust_gone"); err != nil {
			return err
		}
		return tx.DeleteCustomer("cust_gone")
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Sync(); err != nil {
		t.Fatal(err)
	}
	if hits := grepDir(t, dir, []byte(canary)); len(hits) == 0 {
		t.Fatal("the canary is not on disk before the scrub: the test proves nothing")
	}
	if err := db.Scrub(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if hits := grepDir(t, dir, []byte(canary)); len(hits) > 0 {
		t.Fatalf("the erased record is still in %v after the scrub", hits)
	}
	if hits := grepDir(t, dir, []byte(keep)); len(hits) == 0 {
		t.Fatal("the scrub lost a record it had to keep")
	}
}
