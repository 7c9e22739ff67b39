package cluster_test

import (
	"context"
	"testing"

	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/core/store"
)

// The access log is part of the shared memory: a read recorded on A is in
// the log on C, and an erasure on B leaves every node with the anonymous
// record alone and the same state.
func TestAccessLogAcrossNodes(t *testing.T) {
	_, nodes := threeNodes(t)
	a, b, c := nodes[0], nodes[1], nodes[2]
	ctx := context.Background()
	end(t, a, core.EndRequest{CallID: "chat_1", CustomerRef: "cust_a", Variables: map[string]string{"email": "ann@example.test"}})
	end(t, a, core.EndRequest{CallID: "chat_2", CustomerRef: "cust_b", Variables: map[string]string{"email": "bob@example.test"}})

	// what GET /v1/customers/cust_a does on A, for the key crm-sync
	p, err := a.eng.Customer(ctx, "cust_a", 0)
	if err != nil {
		t.Fatal(err)
	}
	a.eng.RecordAccess(core.WithActor(ctx, "crm-sync"), core.Access{CustomerRef: p.CustomerRef, Kind: core.AccessRead})
	b.eng.RecordAccess(ctx, core.Access{CustomerRef: "cust_b", Kind: core.AccessPop, Actor: "1001", CallID: "call_9"})
	for _, n := range []*node{a, b} {
		if err := n.eng.FlushAccess(ctx); err != nil {
			t.Fatal(err)
		}
	}
	waitLevel(t, nodes...)
	page, err := c.eng.AccessLog(ctx, "cust_a", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Access) != 1 || page.Access[0].Kind != core.AccessRead || page.Access[0].Actor != "crm-sync" {
		t.Fatalf("access log of cust_a on C: %+v", page.Access)
	}
	sameState(t, nodes...)

	if err := b.eng.DeleteCustomer(core.WithActor(ctx, "dpo-key"), "cust_a"); err != nil {
		t.Fatal(err)
	}
	// a read of cust_a recorded on A before it heard of the erasure
	a.eng.RecordAccess(ctx, core.Access{CustomerRef: "cust_a", Kind: core.AccessRead})
	if err := a.eng.FlushAccess(ctx); err != nil {
		t.Fatal(err)
	}
	waitLevel(t, nodes...)
	for i, n := range nodes {
		if _, err := n.eng.AccessLog(ctx, "cust_a", "", 0); core.ErrorCode(err) != core.CodeNotFound {
			t.Errorf("node %d: access log of the erased customer: %v", i, err)
		}
		if page, err := n.eng.AccessLog(ctx, "cust_b", "", 0); err != nil || len(page.Access) != 1 || page.Access[0].Actor != "1001" {
			t.Errorf("node %d: cust_b's log %+v %v", i, page, err)
		}
		var erasures []store.Access
		if err := n.db.View(func(tx *store.Txn) (err error) { erasures, err = tx.ErasureRecords(); return err }); err != nil {
			t.Fatal(err)
		}
		if len(erasures) != 1 || erasures[0].Actor != "dpo-key" || erasures[0].Ref != "" {
			t.Errorf("node %d: erasure records %+v", i, erasures)
		}
	}
	sameState(t, nodes...)
}
