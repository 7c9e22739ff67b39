package core_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/core/store"
	"github.com/sticky-cc/sticky/core/store/storetest"
)

func TestUnassignedCallKeepsItsEndUntilIdentified(t *testing.T) {
	ctx := context.Background()
	e, clk, db := household(t)
	if _, err := e.Start(ctx, core.StartRequest{CallID: "c1", Hints: core.Hints{ANI: line}}); err != nil {
		t.Fatal(err)
	}
	clk.Add(3 * time.Minute)
	hangup := core.EndRequest{CallID: "c1", Channel: "phone", Merge: true, Intent: "refund", Variables: map[string]string{"summary": "asked about a refund"},
		Hints: &core.Hints{ANI: line}}
	end, err := e.End(ctx, hangup)
	if err != nil {
		t.Fatal(err)
	}
	if !end.Unassigned || end.CustomerRef != "" || end.DurationSeconds != 180 {
		t.Fatalf("end %+v: want it kept, unassigned", end)
	}
	for _, ref := range []string{"cust_h1", "cust_h2", "cust_h3"} {
		if p, _ := e.Customer(ctx, ref, 0); len(p.History) != 1 || len(p.OpenIntents) != 0 {
			t.Fatalf("%s got the unassigned call: %+v", ref, p.History)
		}
	}
	if got := customers(t, db); len(got) != 0 {
		t.Fatalf("created %v", got)
	}
	// the agent's wrap-up arrives too, still before anyone says who
	clk.Add(time.Minute)
	if _, err := e.End(ctx, core.EndRequest{CallID: "c1", Merge: true, Intent: "refund", IntentStatus: core.StatusResolved, Variables: map[string]string{"summary": "refund sent"}}); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Minute)
	res, err := e.Identify(ctx, core.IdentifyRequest{CallID: "c1", CustomerRef: "cust_h2", By: "key:test"})
	if err != nil {
		t.Fatal(err)
	}
	if res.CustomerRef != "cust_h2" || res.Decision != core.DecisionAssigned || res.Saved == nil || res.Saved.CustomerRef != "cust_h2" || res.Saved.DurationSeconds != 180 {
		t.Fatalf("identify: %+v (saved %+v)", res, res.Saved)
	}
	p, err := e.Customer(ctx, "cust_h2", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.History) != 2 || p.History[0].CallID != "c1" || p.History[0].Summary != "refund sent" || p.History[0].IntentStatus != core.StatusResolved {
		t.Fatalf("h2's history: %+v", p.History)
	}
	if p.History[0].EndedAt.Time != monday.Add(3*time.Minute) {
		t.Errorf("the call ended at %v, not when it was identified", p.History[0].EndedAt)
	}
	// the PBX redelivering its hang-up changes nothing
	again, err := e.End(ctx, hangup)
	if err != nil || again.CustomerRef != "cust_h2" {
		t.Fatalf("redelivered hang-up: %+v %v", again, err)
	}
	if p, _ := e.Customer(ctx, "cust_h2", 0); len(p.History) != 2 || p.Intents[0].AttemptCount != 1 {
		t.Fatalf("after the redelivery: %+v %+v", p.History, p.Intents)
	}
	// the decision is kept with the call record
	err = db.View(func(tx *store.Txn) error {
		c, _, err := tx.Call("c1")
		if err != nil || c.CustomerRef != "cust_h2" || c.Identity == nil || len(c.Identity.Decisions) != 1 || len(c.Identity.Pending) != 0 {
			t.Errorf("call record: %+v (%v)", c, err)
		} else if d := c.Identity.Decisions[0]; d.By != "key:test" || d.Ref != "cust_h2" || !d.At.Equal(monday.Add(5*time.Minute)) {
			t.Errorf("decision %+v", d)
		}
		if ids, _ := tx.CallIDs(""); len(ids) != 0 {
			t.Errorf("still listed as unassigned: %v", ids)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestIdentifyAKeptChat(t *testing.T) {
	ctx := context.Background()
	e, _, db := household(t)
	end, err := e.End(ctx, core.EndRequest{CallID: "chat_1", Channel: "chat", Hints: &core.Hints{ExternalIDs: map[string]string{"phone": line}},
		Intent: "delivery", Variables: map[string]string{"summary": "where is my parcel"}})
	if err != nil || !end.Unassigned || end.CustomerRef != "" {
		t.Fatalf("end: %+v %v", end, err)
	}
	if got := customers(t, db); len(got) != 0 {
		t.Fatalf("created %v", got)
	}
	res, err := e.Identify(ctx, core.IdentifyRequest{CallID: "chat_1", CustomerRef: "cust_h1"})
	if err != nil || res.Saved == nil || res.Saved.CustomerRef != "cust_h1" {
		t.Fatalf("identify: %+v %v", res, err)
	}
	if p, _ := e.Customer(ctx, "cust_h1", 0); p.History[0].CallID != "chat_1" || p.History[0].Channel != "chat" {
		t.Fatalf("h1's history: %+v", p.History)
	}
}

func TestNotThisPersonIsReversible(t *testing.T) {
	ctx := context.Background()
	e, clk, db := newEngine(t, monday)
	seed(t, e, clk, monday.Add(-24*time.Hour), "cust_a", core.Hints{ANI: "+14155550001"})
	clk.Set(monday)
	res, err := e.Start(ctx, core.StartRequest{CallID: "c1", Hints: core.Hints{ANI: "+14155550001"}})
	if err != nil || res.CustomerRef != "cust_a" {
		t.Fatalf("start: %+v %v", res, err)
	}
	before, _ := e.Customer(ctx, "cust_a", 0)
	not, err := e.Identify(ctx, core.IdentifyRequest{CallID: "c1", CustomerRef: "cust_a", Not: true, Agent: "", By: "key:x"})
	if err != nil {
		t.Fatal(err)
	}
	if not.CustomerRef != "" || not.Decision != core.DecisionNot || len(not.Unlinked) != 1 || not.Unlinked[0].Value != "+14155550001" {
		t.Fatalf("not: %+v", not)
	}
	if p, _ := e.Customer(ctx, "cust_a", 0); len(p.Identifiers) != 0 {
		t.Fatalf("the number is still cust_a's: %+v", p.Identifiers)
	}
	// it was cust_a after all
	back, err := e.Identify(ctx, core.IdentifyRequest{CallID: "c1", CustomerRef: "cust_a"})
	if err != nil || back.CustomerRef != "cust_a" {
		t.Fatalf("identify: %+v %v", back, err)
	}
	after, _ := e.Customer(ctx, "cust_a", 0)
	if !slices.Equal(after.Identifiers, before.Identifiers) {
		t.Fatalf("identifiers %+v, want them back as they were: %+v", after.Identifiers, before.Identifiers)
	}
	err = db.View(func(tx *store.Txn) error {
		c, _, err := tx.Call("c1")
		if err == nil && (c.Identity == nil || len(c.Identity.Decisions) != 2 || !c.Identity.Decisions[0].Not || c.Identity.Decisions[1].Not) {
			t.Errorf("decisions: %+v", c.Identity)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestNotThisPersonKeepsASharedLine(t *testing.T) {
	ctx := context.Background()
	e, _, _ := household(t)
	if _, err := e.Start(ctx, core.StartRequest{CallID: "c1", Hints: core.Hints{ANI: line}}); err != nil {
		t.Fatal(err)
	}
	res, err := e.Identify(ctx, core.IdentifyRequest{CallID: "c1", CustomerRef: "cust_h1", Not: true})
	if err != nil || len(res.Unlinked) != 0 || !slices.Equal(res.Candidates, []string{"cust_h2", "cust_h3"}) {
		t.Fatalf("not h1: %+v %v", res, err)
	}
	if p, _ := e.Customer(ctx, "cust_h1", 0); len(p.Identifiers) != 2 {
		t.Fatalf("h1 lost an identifier: %+v", p.Identifiers)
	}
}

func TestNewCustomerForSomeoneNewOnAKnownLine(t *testing.T) {
	ctx := context.Background()
	e, _, _ := household(t)
	if _, err := e.Start(ctx, core.StartRequest{CallID: "c1", Hints: core.Hints{ANI: line}}); err != nil {
		t.Fatal(err)
	}
	res, err := e.Identify(ctx, core.IdentifyRequest{CallID: "c1", NewCustomer: true})
	if err != nil || res.Decision != core.DecisionNewCustomer || res.CustomerRef != "cust_agen" {
		t.Fatalf("identify: %+v %v", res, err)
	}
	if p, err := e.Customer(ctx, "cust_agen", 0); err != nil || len(p.Identifiers) != 1 || p.Identifiers[0].Value != line {
		t.Fatalf("the new member: %+v %v", p, err)
	}
}

func TestIdentifyRefusalsWriteNothing(t *testing.T) {
	ctx := context.Background()
	e, clk, db := household(t)
	seed(t, e, clk, monday.Add(-time.Hour), "cust_a", core.Hints{ANI: "+14155550001"})
	clk.Set(monday)
	for _, c := range []struct{ id, ani string }{{"shared", line}, {"mine", "+14155550001"}} {
		if _, err := e.Start(ctx, core.StartRequest{CallID: c.id, Hints: core.Hints{ANI: c.ani}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Popped(ctx, "shared", "1001"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		req  core.IdentifyRequest
		code core.Code
	}{
		{"unknown call", core.IdentifyRequest{CallID: "nope", CustomerRef: "cust_h1"}, core.CodeNotFound},
		{"unknown customer", core.IdentifyRequest{CallID: "shared", CustomerRef: "cust_nobody"}, core.CodeNotFound},
		{"assigned to someone else", core.IdentifyRequest{CallID: "mine", CustomerRef: "cust_h1"}, core.CodeConflict},
		{"agent it was not popped to", core.IdentifyRequest{CallID: "shared", CustomerRef: "cust_h1", Agent: "1002"}, core.CodeForbidden},
		{"agent of a call never popped", core.IdentifyRequest{CallID: "mine", CustomerRef: "cust_a", Agent: "1001"}, core.CodeForbidden},
		{"no customer", core.IdentifyRequest{CallID: "shared"}, core.CodeInvalid},
		{"new and a ref", core.IdentifyRequest{CallID: "shared", CustomerRef: "cust_h1", NewCustomer: true}, core.CodeInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := storetest.Dump(t, db)
			_, err := e.Identify(ctx, tc.req)
			if core.ErrorCode(err) != tc.code {
				t.Fatalf("error %v (code %d), want code %d", err, core.ErrorCode(err), tc.code)
			}
			if after := storetest.Dump(t, db); after != before {
				t.Fatal("a refused identify changed the store")
			}
			var ce *core.Error
			if tc.code == core.CodeConflict && (!errors.As(err, &ce) || ce.Refs == nil || ce.Refs.Assigned != "cust_a" || ce.Refs.Requested != "cust_h1") {
				t.Fatalf("conflict without both refs: %+v", err)
			}
		})
	}
	// the agent it rang may
	res, err := e.Identify(ctx, core.IdentifyRequest{CallID: "shared", CustomerRef: "cust_h1", Agent: "1001", By: "nats:1001"})
	if err != nil || res.CustomerRef != "cust_h1" || res.Agent != "1001" {
		t.Fatalf("identify by the popped agent: %+v %v", res, err)
	}
	// and saying it again changes nothing but the time the links were seen
	if _, err := e.Identify(ctx, core.IdentifyRequest{CallID: "shared", CustomerRef: "cust_h1", Agent: "1001", By: "nats:1001"}); err != nil {
		t.Fatal(err)
	}
}

func TestPoppedNeedsAStartedCall(t *testing.T) {
	e, _, _ := newEngine(t, monday)
	if err := e.Popped(context.Background(), "never", "1001"); core.ErrorCode(err) != core.CodeNotFound {
		t.Fatalf("err %v, want not found", err)
	}
}
