package core_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/core/store"
)

const line = "+14155550003" // a household's landline

// household seeds three customers on one line, the most recent contact
// first: h1 an hour ago, h2 a day ago, h3 five days ago.
func household(t *testing.T) (*core.Engine, *clock, *store.DB) {
	t.Helper()
	e, clk, db := newEngine(t, monday)
	for _, s := range []struct {
		ref   string
		ago   time.Duration
		email string
	}{{"cust_h3", 5 * 24 * time.Hour, "h3@example.test"}, {"cust_h2", 24 * time.Hour, "h2@example.test"}, {"cust_h1", time.Hour, "h1@example.test"}} {
		seed(t, e, clk, monday.Add(-s.ago), s.ref, core.Hints{ANI: line, ExternalIDs: map[string]string{"email": s.email}})
	}
	clk.Set(monday)
	return e, clk, db
}

func refsOf(cs []core.Candidate) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.CustomerRef)
	}
	return out
}

func customers(t *testing.T, db *store.DB) []string {
	t.Helper()
	var refs []string
	err := db.View(func(tx *store.Txn) error {
		for _, ref := range []string{"cust_agen", "cust_bgen", "cust_cgen"} { // what newEngine would have made
			if _, ok, err := tx.Customer(ref); err != nil {
				return err
			} else if ok {
				refs = append(refs, ref)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return refs
}

func TestSharedLineAloneOffersEveryHolderAndCreatesNobody(t *testing.T) {
	e, _, db := household(t)
	res, err := e.Start(context.Background(), core.StartRequest{CallID: "c1", Hints: core.Hints{ANI: line}})
	if err != nil {
		t.Fatal(err)
	}
	id := res.Identity
	if res.CustomerRef != "" || id.Recommendation != core.RecommendConfirm {
		t.Fatalf("customer_ref %q, identity %+v; want unassigned, confirm", res.CustomerRef, id)
	}
	if got := refsOf(id.Candidates); !slices.Equal(got, []string{"cust_h1", "cust_h2", "cust_h3"}) {
		t.Fatalf("candidates %v, want every holder, the latest contact first", got)
	}
	if id.Confidence != id.Candidates[0].Score || id.Candidates[0].Score <= id.Candidates[1].Score {
		t.Errorf("confidence %.3f, candidates %+v", id.Confidence, id.Candidates)
	}
	if len(res.OpenIntents) != 0 || len(res.History) != 0 || len(res.Variables) != 0 {
		t.Errorf("an unassigned call shows nobody's context: %+v", res)
	}
	if got := customers(t, db); len(got) != 0 {
		t.Errorf("created %v", got)
	}
	// A retry answers the same.
	again, err := e.Start(context.Background(), core.StartRequest{CallID: "c1", Hints: core.Hints{ANI: line}})
	if err != nil || again.CustomerRef != "" || !slices.Equal(refsOf(again.Identity.Candidates), refsOf(id.Candidates)) {
		t.Fatalf("retry: %+v %v", again, err)
	}
}

func TestSwitchboardAloneOffersEveryone(t *testing.T) {
	e, clk, _ := newEngine(t, monday)
	const board = "+14155550900"
	var want []string
	for i := range 12 {
		ref := "cust_office" + string(rune('a'+i))
		seed(t, e, clk, monday.Add(-time.Duration(i+1)*time.Hour), ref, core.Hints{ANI: board})
		want = append(want, ref)
	}
	clk.Set(monday)
	res, err := e.Start(context.Background(), core.StartRequest{CallID: "c1", Hints: core.Hints{ANI: board}})
	if err != nil {
		t.Fatal(err)
	}
	if res.CustomerRef != "" || res.Identity.Recommendation != core.RecommendConfirm || !slices.Equal(refsOf(res.Identity.Candidates), want) {
		t.Fatalf("%q %+v", res.CustomerRef, res.Identity)
	}
}

func TestUnassignedCallKeepsItsEndsUntilAnEndSaysWho(t *testing.T) {
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
	// the same report again is the same answer
	if again, err := e.End(ctx, hangup); err != nil || !again.Unassigned {
		t.Fatalf("redelivered: %+v %v", again, err)
	}
	// the agent's wrap-up arrives, still without saying who
	clk.Add(time.Minute)
	if _, err := e.End(ctx, core.EndRequest{CallID: "c1", Merge: true, Intent: "refund", IntentStatus: core.StatusResolved, Variables: map[string]string{"summary": "refund sent"}}); err != nil {
		t.Fatal(err)
	}
	// then the CRM reports the call, naming the customer
	clk.Add(time.Minute)
	crm, err := e.End(ctx, core.EndRequest{CallID: "c1", CustomerRef: "cust_h2", Merge: true, Variables: map[string]string{"ticket": "T-1"}})
	if err != nil || crm.CustomerRef != "cust_h2" || crm.Unassigned || crm.DurationSeconds != 180 {
		t.Fatalf("end naming the customer: %+v %v", crm, err)
	}
	p, err := e.Customer(ctx, "cust_h2", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.History) != 2 || p.History[0].CallID != "c1" || p.History[0].Summary != "refund sent" || p.History[0].IntentStatus != core.StatusResolved ||
		p.Variables["ticket"].Value != "T-1" {
		t.Fatalf("h2: %+v %+v", p.History, p.Variables)
	}
	if p.History[0].EndedAt.Time != monday.Add(3*time.Minute) {
		t.Errorf("the call ended at %v, not when it was settled", p.History[0].EndedAt)
	}
	// the PBX redelivering its hang-up changes nothing
	again, err := e.End(ctx, hangup)
	if err != nil || again.CustomerRef != "cust_h2" {
		t.Fatalf("redelivered hang-up: %+v %v", again, err)
	}
	if p, _ := e.Customer(ctx, "cust_h2", 0); len(p.History) != 2 || p.Intents[0].AttemptCount != 1 {
		t.Fatalf("after the redelivery: %+v %+v", p.History, p.Intents)
	}
	err = db.View(func(tx *store.Txn) error {
		if ids, _ := tx.CallIDs(""); len(ids) != 0 {
			t.Errorf("still listed as unassigned: %v", ids)
		}
		if c, _, _ := tx.Call("c1"); c.CustomerRef != "cust_h2" || len(c.Identity.Pending) != 0 {
			t.Errorf("call record %+v", c)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestEndNamingTheCustomerAssignsAnUnassignedCall(t *testing.T) {
	ctx := context.Background()
	e, _, _ := household(t)
	if _, err := e.Start(ctx, core.StartRequest{CallID: "c1", Hints: core.Hints{ANI: line}}); err != nil {
		t.Fatal(err)
	}
	end, err := e.End(ctx, core.EndRequest{CallID: "c1", CustomerRef: "cust_h3", Intent: "billing"})
	if err != nil || end.CustomerRef != "cust_h3" || end.Unassigned {
		t.Fatalf("end: %+v %v", end, err)
	}
	if p, _ := e.Customer(ctx, "cust_h3", 0); len(p.History) != 2 || p.History[0].CallID != "c1" {
		t.Fatalf("h3's history: %+v", p.History)
	}
}

func TestWrapUpThatSaysWhoSettlesTheCall(t *testing.T) {
	ctx := context.Background()
	e, _, _ := household(t)
	if _, err := e.Start(ctx, core.StartRequest{CallID: "c1", Hints: core.Hints{ANI: line}}); err != nil {
		t.Fatal(err)
	}
	// the agent asked and typed the caller's email into the wrap-up
	end, err := e.End(ctx, core.EndRequest{CallID: "c1", Merge: true, Intent: "billing", Variables: map[string]string{"email": "h3@example.test"}})
	if err != nil || end.CustomerRef != "cust_h3" {
		t.Fatalf("end: %+v %v", end, err)
	}
}

func TestChatWithAmbiguousHintsIsKeptNotDuplicated(t *testing.T) {
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
	// the chat system's next report names the customer
	res, err := e.End(ctx, core.EndRequest{CallID: "chat_1", CustomerRef: "cust_h1", Channel: "chat", Merge: true})
	if err != nil || res.CustomerRef != "cust_h1" {
		t.Fatalf("end: %+v %v", res, err)
	}
	if p, _ := e.Customer(ctx, "cust_h1", 0); p.History[0].CallID != "chat_1" || p.History[0].Channel != "chat" || p.History[0].Summary != "where is my parcel" {
		t.Fatalf("h1's history: %+v", p.History)
	}
}
