package store

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// putCalls writes n call records for customer ref expiring at exp.
func putCalls(t *testing.T, db *DB, prefix, ref string, n int, exp time.Time) {
	t.Helper()
	for i := 0; i < n; i += sweepBatch {
		err := db.Update(func(tx *Txn) error {
			for j := i; j < min(i+sweepBatch, n); j++ {
				if err := tx.PutCall(Call{ID: fmt.Sprintf("%s-%05d", prefix, j), CustomerRef: ref, ExpiresAt: exp}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func countCalls(t *testing.T, db *DB) int {
	t.Helper()
	n := 0
	if err := db.EachCallStartPaced(nil, func(time.Time, []byte) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// sweepFixture is a store holding expired calls (over two chunks), live
// ones, and a customer with an expired and a live variable.
func sweepFixture(t *testing.T) (db *DB, now time.Time, expired, live int) {
	t.Helper()
	db = tempDB(t)
	now = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	expired, live = 2*ScanChunk+10, ScanChunk+5
	putCalls(t, db, "old", "cust_a", expired, now.Add(-time.Minute))
	putCalls(t, db, "new", "cust_a", live, now.Add(time.Hour))
	err := db.Update(func(tx *Txn) error {
		return tx.PutCustomer(Customer{Ref: "cust_a", Variables: []Variable{
			{Name: "gone", Value: "x", ExpiresAt: now.Add(-time.Second)},
			{Name: "kept", Value: "y", ExpiresAt: now.Add(time.Hour)},
		}})
	})
	if err != nil {
		t.Fatal(err)
	}
	return db, now, expired, live
}

// A paced sweep of a store the expiry index does not cover yet reads
// every record in chunks with pace between them and deletes what an
// unpaced one would; an error from pace stops it. (TestSweepDuePaced is
// the same for the indexed sweep.)
func TestSweepPaced(t *testing.T) {
	db, now, expired, live := sweepFixture(t)
	unindex(t, db)

	// Stopped by its pace at the first chance, after the first chunk of
	// calls: the customer's expired variable (one chunk, one batch) is
	// gone, no call is.
	stop := errors.New("stop")
	paces := 0
	n, err := db.SweepPaced(now, func() error { paces++; return stop })
	if !errors.Is(err, stop) || n != 1 || paces != 1 {
		t.Fatalf("stopped sweep: n=%d err=%v paces=%d, want 1, stop, 1", n, err, paces)
	}
	if got := countCalls(t, db); got != expired+live {
		t.Fatalf("stopped sweep left %d calls, want all %d", got, expired+live)
	}

	paces = 0
	n, err = db.SweepPaced(now, func() error { paces++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if n != expired {
		t.Fatalf("swept %d, want the %d expired calls", n, expired)
	}
	// the calls' chunks (expired+live = 3 chunks+) and their write batches
	if min := (expired+live)/ScanChunk + expired/sweepBatch; paces < min {
		t.Fatalf("pace called %d times, want at least %d", paces, min)
	}
	if got := countCalls(t, db); got != live {
		t.Fatalf("%d calls left, want the %d live ones", got, live)
	}
	var c Customer
	if err := db.View(func(tx *Txn) error { var err error; c, _, err = tx.Customer("cust_a"); return err }); err != nil {
		t.Fatal(err)
	}
	if len(c.Variables) != 1 || c.Variables[0].Name != "kept" {
		t.Fatalf("variables after the sweep: %+v", c.Variables)
	}
}
