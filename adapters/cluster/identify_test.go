package cluster_test

import (
	"context"
	"testing"

	"github.com/sticky-cc/sticky/core"
)

// An agent's identify on one node is applied on all three alike: the pop
// that allows it, the unassigned call's kept end saved on the customer the
// agent named, and a new customer's ref, the same on every node.
func TestIdentifyAcrossNodes(t *testing.T) {
	_, nodes := threeNodes(t)
	a, b, c := nodes[0], nodes[1], nodes[2]
	ctx := context.Background()
	const line = "+14155550003" // a household's landline
	for i, ref := range []string{"cust_h1", "cust_h2", "cust_h3"} {
		end(t, nodes[i], core.EndRequest{CallID: "seed_" + ref, CustomerRef: ref, Intent: "billing_inquiry",
			Hints: &core.Hints{ANI: line, ExternalIDs: map[string]string{"email": ref + "@example.test"}}})
	}
	waitLevel(t, nodes...)

	// The line rings on A: any of three may be calling.
	st, err := a.eng.Start(ctx, core.StartRequest{CallID: "call_1", Hints: core.Hints{ANI: line}})
	if err != nil {
		t.Fatal(err)
	}
	if st.CustomerRef != "" || len(st.Identity.Candidates) < 2 {
		t.Fatalf("start on A: %+v, want it unassigned with candidates", st)
	}
	if err := a.eng.Popped(ctx, "call_1", "1001"); err != nil {
		t.Fatal(err)
	}
	// The call ends on C before anyone said who it was: the end is kept.
	if er := end(t, c, core.EndRequest{CallID: "call_1", Intent: "refund", Variables: map[string]string{"summary": "asked about a refund"}}); !er.Unassigned {
		t.Fatalf("end on C: %+v, want it kept", er)
	}
	// Only an agent the call rang may say who it was, on any node.
	if _, err := b.eng.Identify(ctx, core.IdentifyRequest{CallID: "call_1", CustomerRef: "cust_h2", Agent: "2002"}); core.ErrorCode(err) != core.CodeForbidden {
		t.Fatalf("identify by an agent it did not ring: %v", err)
	}
	res, err := b.eng.Identify(ctx, core.IdentifyRequest{CallID: "call_1", CustomerRef: "cust_h2", Agent: "1001", By: "nats:1001"})
	if err != nil {
		t.Fatal(err)
	}
	if res.CustomerRef != "cust_h2" || res.Decision != core.DecisionAssigned || res.Saved == nil || res.Saved.CustomerRef != "cust_h2" {
		t.Fatalf("identify on B: %+v", res)
	}
	waitLevel(t, nodes...)
	for i, n := range nodes {
		p, err := n.eng.Customer(ctx, "cust_h2", 0)
		if err != nil || len(p.History) != 2 || p.History[0].CallID != "call_1" || p.History[0].Intent != "refund" {
			t.Fatalf("node %d: cust_h2 %+v %v", i, p, err)
		}
	}

	// Someone new on the same line: the new customer's ref is made once,
	// on the writing node, and applied as is everywhere.
	if _, err := c.eng.Start(ctx, core.StartRequest{CallID: "call_2", Hints: core.Hints{ANI: line}}); err != nil {
		t.Fatal(err)
	}
	nc, err := c.eng.Identify(ctx, core.IdentifyRequest{CallID: "call_2", NewCustomer: true})
	if err != nil || nc.Decision != core.DecisionNewCustomer || nc.CustomerRef == "" {
		t.Fatalf("new customer on C: %+v %v", nc, err)
	}
	waitLevel(t, nodes...)
	for i, n := range nodes {
		if _, err := n.eng.Customer(ctx, nc.CustomerRef, 0); err != nil {
			t.Fatalf("node %d lacks the new customer %s: %v", i, nc.CustomerRef, err)
		}
	}
	// And "not them" on A undoes it on every node alike.
	if r, err := a.eng.Identify(ctx, core.IdentifyRequest{CallID: "call_2", CustomerRef: nc.CustomerRef, Not: true}); err != nil || r.CustomerRef != "" {
		t.Fatalf("not on A: %+v %v", r, err)
	}
	sameState(t, nodes...)
}
