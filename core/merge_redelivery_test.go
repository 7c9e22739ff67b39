package core_test

import (
	"context"
	"testing"
	"time"

	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/core/store"
	"github.com/sticky-cc/sticky/core/store/storetest"
)

// A report merged into an ended interaction and then delivered again (a
// webhook retried, a wrap-up sent twice) changes nothing, also after the
// process restarted; and a stale report (an older email of the thread
// arriving late) never moves the interaction back in time.
func TestMergeRedeliveryAndStaleReports(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := store.Open(store.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: monday}
	e := core.New(core.Options{Store: db, Now: clk.Now})

	first := core.EndRequest{CallID: "email_thread", CustomerRef: "cust_a", Channel: "email",
		StartedAt: monday.Add(-time.Hour), EndedAt: monday.Add(-time.Hour),
		Intent: "refund", Variables: map[string]string{"summary": "first mail"}}
	if _, err := e.End(ctx, first); err != nil {
		t.Fatal(err)
	}
	clk.Add(10 * time.Minute)
	second := core.EndRequest{CallID: "email_thread", CustomerRef: "cust_a", Channel: "email",
		StartedAt: monday.Add(-time.Hour), EndedAt: monday, Merge: true,
		Intent: "refund", Variables: map[string]string{"summary": "second mail"}}
	want, err := e.End(ctx, second)
	if err != nil {
		t.Fatal(err)
	}
	before := storetest.Dump(t, db)

	clk.Add(10 * time.Minute)
	got, err := e.End(ctx, second)
	if err != nil || *got != *want {
		t.Fatalf("redelivered merge: %+v, %v; want %+v", got, err, want)
	}
	if after := storetest.Dump(t, db); after != before {
		t.Fatal("a redelivered merge changed the store")
	}

	// Restart: the memory of merged reports is in the store.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = store.Open(store.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	e = core.New(core.Options{Store: db, Now: clk.Now})
	before = storetest.Dump(t, db)
	if _, err := e.End(ctx, second); err != nil {
		t.Fatal(err)
	}
	if after := storetest.Dump(t, db); after != before {
		t.Fatal("a merge redelivered after a restart changed the store")
	}

	// The first mail delivered again with Merge (as an adapter would after
	// a 409): stale, so the summary and end time stay the second mail's.
	stale := first
	stale.Merge = true
	if _, err := e.End(ctx, stale); err != nil {
		t.Fatal(err)
	}
	p, err := e.Customer(ctx, "cust_a", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.History) != 1 || p.History[0].Summary != "second mail" || !p.History[0].EndedAt.Equal(monday) {
		t.Fatalf("a stale report moved the interaction back: %+v", p.History)
	}
	if p.Intents[0].AttemptCount != 1 {
		t.Fatalf("redeliveries counted attempts: %+v", p.Intents)
	}
}
