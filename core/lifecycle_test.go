package core_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/core/store"
)

func code(err error) core.Code { return core.ErrorCode(err) }

func TestStartIsIdempotentWhileActive(t *testing.T) {
	ctx := context.Background()
	e, clk, _ := newEngine(t, monday)
	req := core.StartRequest{CallID: "c1", Hints: core.Hints{ANI: "+14155551234"}}
	first, err := e.Start(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Second)
	again, err := e.Start(ctx, core.StartRequest{CallID: "c1", Hints: core.Hints{ANI: "(415) 555-1234"}})
	if err != nil {
		t.Fatalf("retry with the same (normalised) hints: %v", err)
	}
	if again.CustomerRef != first.CustomerRef || !again.CallStart.Equal(first.CallStart.Time) {
		t.Fatalf("retry answered differently: %+v vs %+v", again, first)
	}
	_, err = e.Start(ctx, core.StartRequest{CallID: "c1", Hints: core.Hints{ANI: "+14155559999"}})
	if code(err) != core.CodeConflict {
		t.Fatalf("different hints on an active call: %v, want conflict", err)
	}
	if _, err := e.End(ctx, core.EndRequest{CallID: "c1"}); err != nil {
		t.Fatal(err)
	}
	if _, err = e.Start(ctx, req); code(err) != core.CodeConflict {
		t.Fatalf("start after end: %v, want conflict", err)
	}
}

// A call started by a version that fingerprinted starts as JSON is still
// retried idempotently, and still refuses different hints, after an upgrade.
func TestStartRetryOfACallStartedBeforeTheUpgrade(t *testing.T) {
	ctx := context.Background()
	e, _, db := newEngine(t, monday)
	req := core.StartRequest{CallID: "old", Hints: core.Hints{ANI: "+14155551234", DNIS: "+18005550100"}}
	first, err := e.Start(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *store.Txn) error {
		c, _, err := tx.Call("old")
		if err != nil {
			return err
		}
		c.StartFingerprint = core.LegacyStartFingerprint(c.Identifiers, "", c.DNIS, c.Channel)
		return tx.PutCall(c)
	})
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.Start(ctx, req)
	if err != nil || again.CustomerRef != first.CustomerRef {
		t.Fatalf("retry of a call with a legacy fingerprint: %v %+v", err, again)
	}
	req.Hints.ANI = "+14155559999"
	if _, err := e.Start(ctx, req); code(err) != core.CodeConflict {
		t.Fatalf("different hints on a call with a legacy fingerprint: %v, want conflict", err)
	}
}

func TestEndIsIdempotent(t *testing.T) {
	ctx := context.Background()
	e, clk, _ := newEngine(t, monday)
	if _, err := e.Start(ctx, core.StartRequest{CallID: "c1", Hints: core.Hints{ANI: "+14155551234"}}); err != nil {
		t.Fatal(err)
	}
	clk.Add(90 * time.Second)
	req := core.EndRequest{CallID: "c1", Intent: "billing", Variables: map[string]string{"summary": "asked"}}
	first, err := e.End(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if first.DurationSeconds != 90 || first.IntentsUpdated != 1 || first.VariablesUpdated != 1 {
		t.Fatalf("end = %+v", first)
	}
	clk.Add(time.Minute)
	again, err := e.End(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if *again != *first {
		t.Fatalf("retry answered %+v, first %+v", again, first)
	}
	p, err := e.Customer(ctx, first.CustomerRef, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.History) != 1 || p.OpenIntents[0].AttemptCount != 1 {
		t.Fatalf("a retried end changed the store: history %d, intents %+v", len(p.History), p.OpenIntents)
	}
	req.Variables["summary"] = "something else"
	if _, err := e.End(ctx, req); code(err) != core.CodeConflict {
		t.Fatalf("different end body: %v, want conflict", err)
	}
}

func TestEndWithoutStartNeedsACustomer(t *testing.T) {
	e, _, _ := newEngine(t, monday)
	_, err := e.End(context.Background(), core.EndRequest{CallID: "nobody", Intent: "x"})
	var ce *core.Error
	if !errors.As(err, &ce) || ce.Code != core.CodeInvalid || len(ce.Issues) == 0 {
		t.Fatalf("got %v, want a validation error", err)
	}
	// and nothing was written: the call id is still free
	if _, err := e.Start(context.Background(), core.StartRequest{CallID: "nobody", Hints: core.Hints{ANI: "+14155551234"}}); err != nil {
		t.Fatalf("call id was used up by a failed end: %v", err)
	}
}

func TestEndWithHintsOnlyResolvesLikeStart(t *testing.T) {
	ctx := context.Background()
	e, _, _ := newEngine(t, monday)
	a, err := e.End(ctx, core.EndRequest{CallID: "w1", Hints: &core.Hints{ExternalIDs: map[string]string{"email": "x@example.test", "crm_id": "9"}}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.End(ctx, core.EndRequest{CallID: "w2", Hints: &core.Hints{ExternalIDs: map[string]string{"email": "X@example.test", "crm_id": "9"}}})
	if err != nil {
		t.Fatal(err)
	}
	if a.CustomerRef != b.CustomerRef {
		t.Fatalf("second webhook made a new customer %s (first %s)", b.CustomerRef, a.CustomerRef)
	}
}

func TestAttemptCounting(t *testing.T) {
	ctx := context.Background()
	e, clk, _ := newEngine(t, monday)
	end := func(id, status string) {
		t.Helper()
		clk.Add(time.Hour)
		if _, err := e.End(ctx, core.EndRequest{CallID: id, CustomerRef: "cust_1", Intent: "refund", IntentStatus: status}); err != nil {
			t.Fatal(err)
		}
	}
	open := func() []core.OpenIntent {
		p, err := e.Customer(ctx, "cust_1", 0)
		if err != nil {
			t.Fatal(err)
		}
		return p.OpenIntents
	}
	end("a", "open")
	end("b", "abandoned")
	if o := open(); len(o) != 1 || o[0].AttemptCount != 2 || o[0].Status != "abandoned" {
		t.Fatalf("after two contacts: %+v", o)
	}
	end("c", "resolved")
	if o := open(); len(o) != 0 {
		t.Fatalf("resolved intent still open: %+v", o)
	}
	end("d", "open")
	if o := open(); len(o) != 1 || o[0].AttemptCount != 1 {
		t.Fatalf("raised again after resolution: %+v, want a new count at 1", o)
	}
	// 31 days without contact: the unresolved intent expires, and a new
	// contact starts over.
	clk.Add(31 * 24 * time.Hour)
	if o := open(); len(o) != 0 {
		t.Fatalf("expired intent still open: %+v", o)
	}
	end("e", "")
	if o := open(); len(o) != 1 || o[0].AttemptCount != 1 || o[0].Status != "open" {
		t.Fatalf("after expiry: %+v", o)
	}
}

func TestVariableExpiry(t *testing.T) {
	ctx := context.Background()
	e, clk, _ := newEngine(t, monday)
	if _, err := e.End(ctx, core.EndRequest{CallID: "a", CustomerRef: "cust_1", Variables: map[string]string{"long": "30 days"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.End(ctx, core.EndRequest{CallID: "b", CustomerRef: "cust_1", TTLSeconds: 3600, Variables: map[string]string{"short": "1 hour", "n": "1"}}); err != nil {
		t.Fatal(err)
	}
	vars := func() map[string]core.VariableView {
		p, err := e.Customer(ctx, "cust_1", 0)
		if err != nil {
			t.Fatal(err)
		}
		return p.Variables
	}
	v := vars()
	if v["short"].TTLSeconds != 3600 || v["long"].TTLSeconds != 30*24*3600 || *v["long"].Source != "phone" {
		t.Fatalf("variables = %+v", v)
	}
	clk.Add(59 * time.Minute)
	if v := vars(); v["short"].TTLSeconds != 60 {
		t.Fatalf("ttl left after 59 min: %d", v["short"].TTLSeconds)
	}
	clk.Add(2 * time.Minute)
	if v := vars(); len(v) != 1 || v["long"].Value != "30 days" {
		t.Fatalf("after an hour: %+v", v)
	}
	// the sweeper removes what expired, and only that
	n, err := e.Sweep()
	if err != nil || n != 2 {
		t.Fatalf("sweep removed %d (%v), want 2", n, err)
	}
	clk.Add(30 * 24 * time.Hour)
	if v := vars(); len(v) != 0 {
		t.Fatalf("after 30 days: %+v", v)
	}
	// last write wins per name
	if _, err := e.End(ctx, core.EndRequest{CallID: "c", CustomerRef: "cust_1", Channel: "chat", Variables: map[string]string{"n": "2"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.End(ctx, core.EndRequest{CallID: "d", CustomerRef: "cust_1", Channel: "email", Variables: map[string]string{"n": "3"}}); err != nil {
		t.Fatal(err)
	}
	if v := vars(); v["n"].Value != "3" || *v["n"].Source != "email" {
		t.Fatalf("last write: %+v", v["n"])
	}
}

func TestEraseRemovesEveryIndexEntry(t *testing.T) {
	ctx := context.Background()
	e, _, _ := newEngine(t, monday)
	if _, err := e.Start(ctx, core.StartRequest{CallID: "c1", Hints: core.Hints{ANI: "+14155551234", ExternalIDs: map[string]string{"email": "gone@example.test"}}}); err != nil {
		t.Fatal(err)
	}
	end, err := e.End(ctx, core.EndRequest{CallID: "c1", Variables: map[string]string{"account_number": "AC-1", "summary": "secret"}})
	if err != nil {
		t.Fatal(err)
	}
	ref := end.CustomerRef
	if err := e.DeleteCustomer(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Customer(ctx, ref, 0); code(err) != core.CodeNotFound {
		t.Fatalf("erased customer still readable: %v", err)
	}
	for i, h := range []core.Hints{
		{ANI: "+14155551234"}, {ExternalIDs: map[string]string{"email": "gone@example.test"}}, {ExternalIDs: map[string]string{"account_number": "AC-1"}},
	} {
		res, err := e.Start(ctx, core.StartRequest{CallID: "after" + string(rune('0'+i)), Hints: h})
		if err != nil {
			t.Fatal(err)
		}
		if res.CustomerRef == ref || res.Identity.Confidence != 0 || len(res.Identity.Candidates) != 0 || len(res.History) != 0 {
			t.Fatalf("after erasure %+v found %+v", h, res)
		}
	}
	// the erased customer's calls are gone too: the call id is free again
	if _, err := e.Start(ctx, core.StartRequest{CallID: "c1", Hints: core.Hints{ANI: "+14155550000"}}); err != nil {
		t.Fatalf("erased call record still blocks its id: %v", err)
	}
	if err := e.DeleteCustomer(ctx, ref); code(err) != core.CodeNotFound {
		t.Fatalf("second erase: %v, want not found", err)
	}
}

func TestMergeAndUnlink(t *testing.T) {
	ctx := context.Background()
	e, clk, _ := newEngine(t, monday)
	mustEnd := func(r core.EndRequest) {
		t.Helper()
		clk.Add(time.Hour)
		if _, err := e.End(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	mustEnd(core.EndRequest{CallID: "a1", CustomerRef: "cust_a", Hints: &core.Hints{ANI: "+14155550001"}, Intent: "refund", Variables: map[string]string{"tier": "gold"}})
	mustEnd(core.EndRequest{CallID: "b1", CustomerRef: "cust_b", Hints: &core.Hints{ExternalIDs: map[string]string{"email": "b@example.test"}}, Intent: "refund", Variables: map[string]string{"tier": "silver", "lang": "fr"}})
	p, err := e.Merge(ctx, "cust_a", "cust_b")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.History) != 2 || len(p.Identifiers) != 2 || p.OpenIntents[0].AttemptCount != 2 || p.Variables["tier"].Value != "silver" || p.Variables["lang"].Value != "fr" {
		t.Fatalf("merged profile = %+v", p)
	}
	// the old ref and the old email now find cust_a
	res, err := e.Start(ctx, core.StartRequest{CallID: "s1", Hints: core.Hints{CustomerRef: "cust_b"}})
	if err != nil || res.CustomerRef != "cust_a" {
		t.Fatalf("old ref: %v %+v", err, res)
	}
	res, err = e.Start(ctx, core.StartRequest{CallID: "s2", Hints: core.Hints{ExternalIDs: map[string]string{"email": "b@example.test"}}})
	if err != nil || res.CustomerRef != "cust_a" {
		t.Fatalf("old email: %v %+v", err, res)
	}
	// unlink the phone number: it no longer finds cust_a
	if err := e.Unlink(ctx, "cust_a", "phone", "(415) 555-0001"); err != nil {
		t.Fatal(err)
	}
	res, err = e.Start(ctx, core.StartRequest{CallID: "s3", Hints: core.Hints{ANI: "+14155550001"}})
	if err != nil || res.CustomerRef == "cust_a" || res.Identity.Confidence != 0 {
		t.Fatalf("unlinked number still finds: %v %+v", err, res)
	}
	if err := e.Unlink(ctx, "cust_a", "phone", "+14155550001"); code(err) != core.CodeNotFound {
		t.Fatalf("second unlink: %v", err)
	}
	if _, err := e.Merge(ctx, "cust_a", "cust_a"); code(err) != core.CodeInvalid {
		t.Fatalf("self merge: %v", err)
	}
}

func TestMergeWrapUpAfterHangup(t *testing.T) {
	ctx := context.Background()
	e, clk, _ := newEngine(t, monday)
	if _, err := e.Start(ctx, core.StartRequest{CallID: "pbx-1", Hints: core.Hints{ANI: "+14155551234", DNIS: "5551000"}}); err != nil {
		t.Fatal(err)
	}
	clk.Add(2 * time.Minute)
	// the PBX reports the hang-up first
	if _, err := e.End(ctx, core.EndRequest{CallID: "pbx-1", Merge: true}); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Minute)
	// then the agent's wrap-up arrives
	res, err := e.End(ctx, core.EndRequest{CallID: "pbx-1", Merge: true, Intent: "refund", IntentStatus: "resolved", Variables: map[string]string{"summary": "refund sent"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.DurationSeconds != 120 {
		t.Fatalf("merge changed the call's duration: %+v", res)
	}
	p, err := e.Customer(ctx, res.CustomerRef, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.History) != 1 || p.History[0].Summary != "refund sent" || p.History[0].IntentStatus != "resolved" || p.History[0].DNIS != "5551000" {
		t.Fatalf("history = %+v", p.History)
	}
	if len(p.Intents) != 1 || p.Intents[0].AttemptCount != 1 {
		t.Fatalf("intents = %+v", p.Intents)
	}
	// a second identical wrap-up does not count another attempt
	if _, err := e.End(ctx, core.EndRequest{CallID: "pbx-1", Merge: true, Intent: "refund", IntentStatus: "resolved"}); err != nil {
		t.Fatal(err)
	}
	if p, _ := e.Customer(ctx, res.CustomerRef, 0); p.Intents[0].AttemptCount != 1 || len(p.History) != 1 {
		t.Fatalf("after a repeated wrap-up: %+v", p.Intents)
	}
}

// An unassigned start creates nobody and links nothing, so repeated calls
// from a shared line do not dilute the evidence for the next one.
func TestWeakStartDoesNotDiluteIdentifiers(t *testing.T) {
	ctx := context.Background()
	e, clk, db := newEngine(t, monday)
	for _, ref := range []string{"cust_a", "cust_b"} {
		seed(t, e, clk, monday.Add(-time.Hour), ref, core.Hints{ANI: "+14155550003"})
	}
	clk.Set(monday)
	var first float64
	for i := range 3 {
		res, err := e.Start(ctx, core.StartRequest{CallID: "weak" + string(rune('0'+i)), Hints: core.Hints{ANI: "+14155550003"}})
		if err != nil {
			t.Fatal(err)
		}
		c := res.Identity.Candidates
		if res.CustomerRef != "" || res.Identity.Recommendation != core.RecommendConfirm || len(c) != 2 {
			t.Fatalf("start %d: %q %+v", i, res.CustomerRef, res.Identity)
		}
		if i == 0 {
			first = c[0].Score
		} else if c[0].Score != first {
			t.Fatalf("start %d: score %.3f, first %.3f: weak starts diluted the number", i, c[0].Score, first)
		}
	}
	err := db.View(func(tx *store.Txn) error {
		refs, err := tx.Refs(core.KindPhone, "+14155550003")
		if err != nil || len(refs) != 2 {
			t.Errorf("the number is held by %v (%v)", refs, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
