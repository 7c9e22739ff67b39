package cluster_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/core/store"
)

// An import on one node is one log entry per batch: every node applies it,
// finds the customers, holds the same memory, and knows where the file got
// to. Importing the same rows again changes nothing on any node.
func TestImportReachesEveryNode(t *testing.T) {
	c, nodes := threeNodes(t)
	a := nodes[0]
	ctx := context.Background()
	var rows []core.ImportRow
	for i := range 250 { // the -url batch is 200; the race detector makes a 1000-row apply outlast ApplyTimeout
		rows = append(rows, core.ImportRow{Line: int64(i + 2), Name: fmt.Sprintf("Customer %d", i),
			Phones: []string{fmt.Sprintf("+1415556%04d", i)}, Emails: []string{fmt.Sprintf("c%d@example.test", i)},
			CustomerID: fmt.Sprintf("K-%d", i), Variables: map[string]string{"plan": "gold"}})
	}
	rows[7].Phones = []string{"not a number"}
	res, err := a.eng.Import(ctx, rows, &store.ImportProgress{Source: "crm1", Offset: 4096, Line: 251, Rows: 250})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Outcome != "imported" || res[7].Outcome != "rejected" {
		t.Fatalf("%+v %+v", res[0], res[7])
	}
	sameState(t, nodes...)
	// The batch is sealed for its customers: no imported email is in the
	// NATS servers' files in the clear.
	for i := range 3 {
		if hits := grepTree(t, c.StoreDir(i), []byte("c42@example.test")); len(hits) > 0 {
			t.Fatalf("an imported email is readable in NATS server %d's files %v", i, hits)
		}
	}
	for i, n := range nodes {
		st, err := n.eng.Start(ctx, core.StartRequest{CallID: fmt.Sprintf("call_%d", i), Hints: core.Hints{ANI: "+14155560042"}})
		if err != nil || st.CustomerRef != res[42].CustomerRef || st.Variables["name"].Value != "Customer 42" {
			t.Fatalf("node %d: %+v %v", i, st, err)
		}
		p, ok, err := n.eng.ImportProgress("crm1")
		if err != nil || !ok || p.Offset != 4096 || p.Imported != 249 || p.Rejected != 1 {
			t.Fatalf("node %d progress: %+v %v %v", i, p, ok, err)
		}
	}
	// The starts wrote call records; the rerun is compared after them.
	sameState(t, nodes...)
	before, _, _ := a.eng.StateDigest()
	again, err := nodes[1].eng.Import(ctx, rows, &store.ImportProgress{Source: "crm1", Offset: 4096, Line: 251, Rows: 250, Done: true})
	if err != nil {
		t.Fatal(err)
	}
	if again[0].Outcome != "unchanged" || again[0].CustomerRef != res[0].CustomerRef {
		t.Fatalf("rerun: %+v", again[0])
	}
	sameState(t, nodes...)
	for i, n := range nodes {
		if d, _, _ := n.eng.StateDigest(); d != before {
			t.Fatalf("node %d: the rerun changed the memory", i)
		}
		if _, ok, _ := n.eng.ImportProgress("crm1"); ok {
			t.Fatalf("node %d kept the place of a finished import", i)
		}
	}
}
