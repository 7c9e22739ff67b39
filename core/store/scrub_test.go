package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
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

// scrubFixture is a store holding a customer (the canary) whose record
// is in a table, for the tests to erase.
func scrubFixture(t *testing.T) (db *DB, dir, canary string) {
	t.Helper()
	dir = t.TempDir()
	db, err := Open(Options{Dir: dir, MinFreeBytes: -1, Compression: "none"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	canary = "canary-9d4e@example.com"
	if err := db.Update(func(tx *Txn) error {
		return tx.PutCustomer(Customer{Ref: "cust_gone", Identifiers: []Identifier{{Kind: "email", Value: canary}}})
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Scrub(); err != nil {
		t.Fatal(err)
	}
	return db, dir, canary
}

func eraseCanary(t *testing.T, db *DB) {
	t.Helper()
	if err := db.Update(func(tx *Txn) error { return tx.DeleteCustomer("cust_gone") }); err != nil {
		t.Fatal(err)
	}
}

// holdReader opens a read transaction and keeps it open until release
// is closed. finishing is closed as its function returns (the store then
// ends the transaction), ended once View has returned.
func holdReader(t *testing.T, db *DB) (release, finishing, ended chan struct{}) {
	release, finishing, ended = make(chan struct{}), make(chan struct{}), make(chan struct{})
	opened := make(chan struct{})
	go func() {
		defer close(ended)
		db.View(func(*Txn) error {
			close(opened)
			<-release
			close(finishing)
			return nil
		})
	}()
	<-opened
	return release, finishing, ended
}

// A read transaction open since before the erasure would keep the erased
// record in the compacted tables: Scrub waits for it to end first.
func TestScrubWaitsForOlderReaders(t *testing.T) {
	db, dir, canary := scrubFixture(t)
	release, finishing, _ := holdReader(t, db)
	eraseCanary(t, db)
	waiting := make(chan struct{}, 1)
	drainWaits = func() { waiting <- struct{}{} }
	var endedFirst bool
	scrubBeforeFlatten = func() {
		select {
		case <-finishing:
			endedFirst = true
		default:
		}
	}
	t.Cleanup(func() { drainWaits, scrubBeforeFlatten = nil, nil })
	done := make(chan error, 1)
	go func() { done <- db.Scrub() }()
	select {
	case <-waiting: // Scrub waits for the reader: let it go
		close(release)
	case err := <-done:
		close(release)
		t.Fatalf("Scrub did not wait for the open reader (it returned %v)", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !endedFirst {
		t.Fatal("Scrub compacted before the older reader ended")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if hits := grepDir(t, dir, []byte(canary)); len(hits) > 0 {
		t.Fatalf("the erased record is still in %v after the scrub", hits)
	}
}

// A reader that outlives Scrub's wait keeps the erased record in the
// compacted tables; Scrub must say so rather than report success.
func TestScrubReportsVersionsAReaderHeld(t *testing.T) {
	db, dir, canary := scrubFixture(t)
	release, _, ended := holdReader(t, db)
	eraseCanary(t, db)
	was := scrubDrain
	scrubDrain = time.Millisecond
	t.Cleanup(func() { scrubDrain = was })
	err := db.Scrub()
	close(release)
	<-ended
	if err == nil {
		if hits := grepDir(t, dir, []byte(canary)); len(hits) > 0 {
			t.Fatalf("Scrub reported success with the erased record still in %v", hits)
		}
		t.Fatal("Scrub reported success although a reader older than the erasure was open through it")
	}
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Scrub failed with %v, not ErrUnavailable", err)
	}
}
