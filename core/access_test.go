package core_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/core/store"
	"github.com/sticky-cc/sticky/core/store/storetest"
)

// accessEngine is an engine on Badger in dir with its access-log writer
// running; stop ends the writer (which flushes) and closes the store.
func accessEngine(t *testing.T, dir string, clk *clock, opts core.Options) (e *core.Engine, db *store.DB, stop func()) {
	t.Helper()
	db, err := store.Open(store.Options{Dir: dir, MinFreeBytes: -1, Compression: "none"})
	if err != nil {
		t.Fatal(err)
	}
	opts.Store, opts.Now, opts.Node = db, clk.Now, "node-a"
	e = core.New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.RunAccessLog(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("access log writer: %v", err)
			}
			if err := db.Close(); err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(stop)
	return e, db, stop
}

func accessOf(t *testing.T, e *core.Engine, ref string) []core.Access {
	t.Helper()
	if err := e.FlushAccess(context.Background()); err != nil {
		t.Fatal(err)
	}
	page, err := e.AccessLog(context.Background(), ref, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	return page.Access
}

func endFor(t *testing.T, e *core.Engine, call, ref, email string) {
	t.Helper()
	_, err := e.End(context.Background(), core.EndRequest{CallID: call, CustomerRef: ref,
		Hints: &core.Hints{ExternalIDs: map[string]string{"email": email}}})
	if err != nil {
		t.Fatal(err)
	}
}

func TestAccessLogHoldsReadsAndChangesWithTheirActors(t *testing.T) {
	clk := &clock{t: monday}
	e, _, _ := accessEngine(t, t.TempDir(), clk, core.Options{})
	endFor(t, e, "c1", "cust_anna", "anna@example.test")
	endFor(t, e, "c2", "cust_anna2", "anna.old@example.test")
	crm := core.WithActor(context.Background(), "crm-sync")
	admin := core.WithActor(context.Background(), "dpo-key")

	e.RecordAccess(crm, core.Access{CustomerRef: "cust_anna", Kind: core.AccessRead})
	clk.Add(time.Minute)
	e.RecordAccess(context.Background(), core.Access{CustomerRef: "cust_anna2", Kind: core.AccessPop, Actor: "1001", CallID: "c9"})
	clk.Add(time.Minute)
	if _, err := e.Merge(admin, "cust_anna", "cust_anna2"); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Minute)
	if err := e.Unlink(admin, "cust_anna", "email", "anna.old@example.test"); err != nil {
		t.Fatal(err)
	}

	got := accessOf(t, e, "cust_anna")
	want := []struct{ kind, actor, call string }{
		{core.AccessUnlink, "dpo-key", ""},
		{core.AccessMerge, "dpo-key", ""},
		{core.AccessPop, "1001", "c9"}, // the merged customer's record moved over
		{core.AccessRead, "crm-sync", ""},
	}
	if len(got) != len(want) {
		t.Fatalf("access log %+v, want %d records", got, len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Kind != w.kind || g.Actor != w.actor || g.CallID != w.call || g.Node != "node-a" || g.CustomerRef != "" {
			t.Errorf("record %d: %+v, want %+v", i, g, w)
		}
	}
	if !got[0].Time.Equal(monday.Add(3*time.Minute)) || !got[3].Time.Equal(monday) {
		t.Errorf("times %v … %v", got[0].Time, got[3].Time)
	}
	// the merged ref answers with the customer it lives on as
	if page, err := e.AccessLog(context.Background(), "cust_anna2", "", 0); err != nil || page.CustomerRef != "cust_anna" || len(page.Access) != 4 {
		t.Errorf("merged ref: %+v %v", page, err)
	}
	// no actor in the context: system
	clk.Add(time.Minute)
	e.RecordAccess(context.Background(), core.Access{CustomerRef: "cust_anna", Kind: core.AccessIdentify})
	if got := accessOf(t, e, "cust_anna"); got[0].Actor != core.ActorSystem {
		t.Errorf("actor %q, want %q", got[0].Actor, core.ActorSystem)
	}
}

func TestAccessLogPages(t *testing.T) {
	clk := &clock{t: monday}
	e, _, _ := accessEngine(t, t.TempDir(), clk, core.Options{})
	endFor(t, e, "c1", "cust_anna", "anna@example.test")
	// five records at one instant, and two later ones
	for range 5 {
		e.RecordAccess(context.Background(), core.Access{CustomerRef: "cust_anna", Kind: core.AccessRead})
	}
	clk.Add(time.Hour)
	e.RecordAccess(context.Background(), core.Access{CustomerRef: "cust_anna", Kind: core.AccessPop, Actor: "1001"})
	clk.Add(time.Hour)
	e.RecordAccess(context.Background(), core.Access{CustomerRef: "cust_anna", Kind: core.AccessPop, Actor: "1002"})
	if err := e.FlushAccess(context.Background()); err != nil {
		t.Fatal(err)
	}
	var all []core.Access
	before := ""
	for pages := 0; ; pages++ {
		if pages > 7 {
			t.Fatal("paging does not end")
		}
		p, err := e.AccessLog(context.Background(), "cust_anna", before, 2)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, p.Access...)
		if p.NextBefore == "" {
			break
		}
		before = p.NextBefore
	}
	if len(all) != 7 || all[0].Actor != "1002" || all[1].Actor != "1001" {
		t.Fatalf("paged through %d records: %+v", len(all), all)
	}
	for _, a := range all[2:] {
		if a.Kind != core.AccessRead {
			t.Errorf("%+v", a)
		}
	}
	// before as a time: strictly older
	p, err := e.AccessLog(context.Background(), "cust_anna", monday.Add(time.Hour).Format(time.RFC3339Nano), 0)
	if err != nil || len(p.Access) != 5 {
		t.Fatalf("before a time: %d records, %v", len(p.Access), err)
	}
	if _, err := e.AccessLog(context.Background(), "cust_anna", "yesterday", 0); core.ErrorCode(err) != core.CodeInvalid {
		t.Errorf("bad before: %v", err)
	}
}

func TestAccessRetentionSweep(t *testing.T) {
	clk := &clock{t: monday}
	e, _, _ := accessEngine(t, t.TempDir(), clk, core.Options{AccessRetention: 30 * 24 * time.Hour})
	endFor(t, e, "c1", "cust_anna", "anna@example.test")
	e.RecordAccess(context.Background(), core.Access{CustomerRef: "cust_anna", Kind: core.AccessRead, Actor: "old"})
	clk.Add(20 * 24 * time.Hour)
	e.RecordAccess(context.Background(), core.Access{CustomerRef: "cust_anna", Kind: core.AccessRead, Actor: "recent"})
	if err := e.FlushAccess(context.Background()); err != nil {
		t.Fatal(err)
	}
	clk.Add(11 * 24 * time.Hour) // the first is 31 days old, the second 11
	if _, err := e.Sweep(); err != nil {
		t.Fatal(err)
	}
	got := accessOf(t, e, "cust_anna")
	if len(got) != 1 || got[0].Actor != "recent" {
		t.Fatalf("after the sweep: %+v", got)
	}
}

// An erasure deletes the customer's access log and keeps one record that
// an erasure happened, by whom, under no ref: after the scrub that follows
// an erasure, the ref is in none of the store's files.
func TestErasureKeepsOnlyAnAnonymousRecord(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{t: monday}
	e, db, stop := accessEngine(t, dir, clk, core.Options{})
	const ref = "cust_erasemeplease"
	endFor(t, e, "c1", ref, "erase.me@example.test")
	endFor(t, e, "c2", "cust_keep", "keep@example.test")
	for _, r := range []string{ref, "cust_keep"} {
		e.RecordAccess(context.Background(), core.Access{CustomerRef: r, Kind: core.AccessPop, Actor: "1001", CallID: "c1"})
	}
	if n := len(accessOf(t, e, ref)); n != 1 {
		t.Fatalf("%d records before the erasure", n)
	}
	clk.Add(time.Hour)
	if err := e.DeleteCustomer(core.WithActor(context.Background(), "dpo-key"), ref); err != nil {
		t.Fatal(err)
	}
	// a read recorded just before the erasure, written after it
	e.RecordAccess(context.Background(), core.Access{CustomerRef: ref, Kind: core.AccessRead})
	if err := e.FlushAccess(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.AccessLog(context.Background(), ref, "", 0); core.ErrorCode(err) != core.CodeNotFound {
		t.Fatalf("access log of an erased customer: %v, want not found", err)
	}
	if n := len(accessOf(t, e, "cust_keep")); n != 1 {
		t.Errorf("the other customer's log has %d records", n)
	}
	var erasures []store.Access
	if err := db.View(func(tx *store.Txn) (err error) { erasures, err = tx.ErasureRecords(); return err }); err != nil {
		t.Fatal(err)
	}
	if len(erasures) != 1 || erasures[0].Kind != core.AccessErasure || erasures[0].Actor != "dpo-key" ||
		!erasures[0].Time.Equal(monday.Add(time.Hour)) || erasures[0].Ref != "" || erasures[0].Node != "node-a" {
		t.Fatalf("erasure records %+v", erasures)
	}
	// nothing the store holds names the erased ref, and once the store is
	// scrubbed (as Run does after an erasure) and closed, no file does
	if dump := storetest.Dump(t, db); strings.Contains(dump, ref) {
		t.Errorf("the store still names the erased ref:\n%s", dump)
	} else if !strings.Contains(dump, "cust_keep") {
		t.Fatal("the dump does not name the kept customer either: the check would prove nothing")
	}
	if err := e.Scrub(); err != nil {
		t.Fatal(err)
	}
	stop()
	if !inFiles(t, dir, "cust_keep") {
		t.Fatal("the kept customer is in no file: the grep would prove nothing")
	}
	if inFiles(t, dir, ref) {
		t.Errorf("the erased ref is still in the store's files")
	}
}

func inFiles(t *testing.T, dir, s string) bool {
	t.Helper()
	found := false
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		found = found || bytes.Contains(b, []byte(s))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// With the queue full, recording returns at once and counts the drop; what
// was queued is still written.
func TestFullAccessQueueDropsAndNeverBlocks(t *testing.T) {
	clk := &clock{t: monday}
	db, err := store.Open(store.Options{Dir: t.TempDir(), MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// no writer running: nothing drains the queue of 4
	e := core.New(core.Options{Store: db, Now: clk.Now, AccessQueue: 4})
	endFor(t, e, "c1", "cust_anna", "anna@example.test")
	for range 10 {
		e.RecordAccess(context.Background(), core.Access{CustomerRef: "cust_anna", Kind: core.AccessRead})
	}
	if n := e.AccessDropped(); n != 6 {
		t.Errorf("dropped %d, want 6", n)
	}
	if got := accessOf(t, e, "cust_anna"); len(got) != 4 {
		t.Errorf("%d records written, want the 4 queued", len(got))
	}
}
