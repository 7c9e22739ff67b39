package store

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

// After a ReadAhead, the transaction reads what it would have read without
// one: what was read ahead while nothing changed it, and its own writes
// (puts and deletes made after the read-ahead) where it changed them.
func TestReadAheadReadsWhatTheTransactionWouldRead(t *testing.T) {
	db := tempDB(t)
	const n = 200
	err := db.Update(func(tx *Txn) error {
		for i := range n {
			if err := tx.PutCustomer(Customer{Ref: fmt.Sprintf("c%03d", i), LastChannel: fmt.Sprintf("before %d", i)}); err != nil {
				return err
			}
			if _, err := tx.AddRef("phone", fmt.Sprintf("+1555%04d", i), fmt.Sprintf("c%03d", i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *Txn) error {
		// read every customer and phone, and one customer that is not there
		err := tx.ReadAhead(4, n+1, func(w *Txn, i int) error {
			if _, _, err := w.Customer(fmt.Sprintf("c%03d", i)); err != nil {
				return err
			}
			_, err := w.Refs("phone", fmt.Sprintf("+1555%04d", i))
			return err
		})
		if err != nil {
			return err
		}
		// each customer and its phone; the missing one also looked for an alias
		if got := len(tx.ahead.got); got != 2*n+3 {
			t.Errorf("the read-ahead kept %d records, not %d", got, 2*n+3)
		}
		// written after the read-ahead: the transaction's writes win
		if err := tx.PutCustomer(Customer{Ref: "c007", LastChannel: "after"}); err != nil {
			return err
		}
		if err := tx.DeleteCustomer("c008"); err != nil {
			return err
		}
		if _, err := tx.AddRef("phone", "+15550009", "c100"); err != nil {
			return err
		}
		if err := tx.PutCustomer(Customer{Ref: fmt.Sprintf("c%03d", n), LastChannel: "new"}); err != nil {
			return err
		}
		for i := range n + 1 {
			ref := fmt.Sprintf("c%03d", i)
			c, found, err := tx.Customer(ref)
			if err != nil {
				return err
			}
			want, wantFound := fmt.Sprintf("before %d", i), true
			switch i {
			case 7:
				want = "after"
			case 8:
				want, wantFound = "", false
			case n:
				want = "new"
			}
			if found != wantFound || c.LastChannel != want {
				t.Errorf("%s: found %v, last channel %q; want %v, %q", ref, found, c.LastChannel, wantFound, want)
			}
			refs, err := tx.Refs("phone", fmt.Sprintf("+1555%04d", i))
			if err != nil {
				return err
			}
			wantRefs := []string{ref}
			switch i {
			case 9:
				wantRefs = []string{"c009", "c100"}
			case n:
				wantRefs = nil
			}
			if !slices.Equal(refs, wantRefs) {
				t.Errorf("refs of phone %d: %v, want %v", i, refs, wantRefs)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A read function may not write, and its first error stops the read-ahead
// and comes back.
func TestReadAheadRefusesWritesAndStopsAtAnError(t *testing.T) {
	db := tempDB(t)
	writes := map[string]func(w *Txn, i int) error{
		"a record":  func(w *Txn, i int) error { return w.PutCustomer(Customer{Ref: fmt.Sprintf("c%d", i)}) },
		"a raw key": func(w *Txn, i int) error { return w.PutCall(Call{ID: fmt.Sprintf("k%d", i)}) },
		"a delete":  func(w *Txn, i int) error { return w.DeleteCustomer(fmt.Sprintf("c%d", i)) },
	}
	for name, write := range writes {
		err := db.Update(func(tx *Txn) error { return tx.ReadAhead(2, 10, write) })
		if !errors.Is(err, errReadAheadWrite) {
			t.Fatalf("%s written in the read function: %v, want errReadAheadWrite", name, err)
		}
	}
	var empty bool
	if err := db.View(func(tx *Txn) (err error) { empty, err = tx.Empty(); return err }); err != nil || !empty {
		t.Fatalf("the refused writes reached the store: empty %v, %v", empty, err)
	}

	boom := errors.New("boom")
	calls := 0
	err := db.Update(func(tx *Txn) error {
		return tx.ReadAhead(1, 100, func(w *Txn, i int) error {
			calls++
			if i == 3 {
				return boom
			}
			return nil
		})
	})
	if !errors.Is(err, boom) || calls != 4 {
		t.Fatalf("got %v after %d calls, want boom after 4", err, calls)
	}
}

// tempDB opens a store in a temporary directory, closed with the test.
func tempDB(t *testing.T) *DB {
	t.Helper()
	db, err := Open(Options{Dir: t.TempDir(), MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
