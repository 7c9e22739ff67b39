package screenpop_test

import (
	"context"
	"testing"
	"time"

	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/screenpop"
)

// A pop delivered through the real NATS service, wrapped as the bridges
// wrap it (core.Engine.RecordPops), is in the customer's access log: to
// which agent, for which call. A pop that was not delivered is not.
func TestDeliveredPopIsInTheAccessLog(t *testing.T) {
	e, clk := newEngine(t, time.Date(2026, 1, 26, 14, 0, 0, 0, time.UTC))
	seedJane(t, e, clk)
	svc := startService(t, screenpop.Options{Calls: e})
	waitReady(t, svc)
	popper := e.RecordPops(svc)

	pop := ring(t, e, "call1", "alice")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := popper.Pop(ctx, pop); err != nil {
		t.Fatal(err)
	}
	nc, _ := connectAgent(t, svc, "alice", "alice-secret")
	readPops(t, nc, screenpop.AgentSubject("alice"), 1)

	// not delivered: a pop without a call id is refused
	bad := pop
	bad.CallID = ""
	if err := popper.Pop(ctx, bad); err == nil {
		t.Fatal("a pop without a call id was delivered")
	}
	if err := e.FlushAccess(ctx); err != nil {
		t.Fatal(err)
	}
	page, err := e.AccessLog(ctx, pop.Context.CustomerRef, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Access) != 1 {
		t.Fatalf("access log %+v, want the one pop delivered", page.Access)
	}
	if a := page.Access[0]; a.Kind != core.AccessPop || a.Actor != "alice" || a.CallID != "call1" {
		t.Errorf("record %+v", a)
	}
}
