package screenpop_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/screenpop"
)

// A desktop says who the caller of a pop is; only the agent the call was
// popped to may, and only on its own subject.
func TestAgentIdentifiesTheCallerOfItsPop(t *testing.T) {
	ctx := context.Background()
	e, clk := newEngine(t, time.Date(2026, 1, 26, 14, 0, 0, 0, time.UTC))
	for _, ref := range []string{"cust_kim", "cust_lee"} { // a household line
		if _, err := e.End(ctx, core.EndRequest{CallID: "seed_" + ref, CustomerRef: ref, Hints: &core.Hints{ANI: "+14155550003"}}); err != nil {
			t.Fatal(err)
		}
		clk.Add(time.Hour)
	}
	cnt := &counter{n: map[string]int{}}
	svc := startService(t, screenpop.Options{Calls: e, Count: cnt.Count})
	waitReady(t, svc)
	res, err := e.Start(ctx, core.StartRequest{CallID: "call1", Hints: core.Hints{ANI: "+14155550003"}})
	if err != nil || res.CustomerRef != "" || len(res.Identity.Candidates) != 2 {
		t.Fatalf("start: %+v %v", res, err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := svc.Pop(pctx, core.Pop{CallID: "call1", PBX: "asterisk", PBXCallID: "1.1", Agent: "alice", Context: res}); err != nil {
		t.Fatal(err)
	}

	alice, _ := connectAgent(t, svc, "alice", "alice-secret")
	bob, bobErrs := connectAgent(t, svc, "bob", "bob-secret")
	// the profile tells the desktop where to send it
	if _, v := askJSON(t, alice, screenpop.SubjectProfilePrefix+".alice", `{}`); v["identify_subject"] != screenpop.IdentifySubject("alice") {
		t.Fatalf("profile %v", v)
	}
	// bob rang nowhere: 403 on his own subject
	m, v := askJSON(t, bob, screenpop.IdentifySubject("bob"), `{"call_id":"call1","customer_ref":"cust_kim"}`)
	if m.Header.Get("Nats-Service-Error-Code") != "403" || v["code"] != 403.0 {
		t.Fatalf("bob: %s", m.Data)
	}
	// and may not speak as alice
	if _, err := bob.Request(screenpop.IdentifySubject("alice"), []byte(`{"call_id":"call1","customer_ref":"cust_kim"}`), 500*time.Millisecond); err == nil {
		t.Fatal("bob published on alice's identify subject")
	}
	select {
	case err := <-bobErrs:
		if !errors.Is(err, nats.ErrPermissionViolation) && !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			t.Fatalf("bob: %v, want a permissions violation", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no permission violation reported for bob")
	}
	// alice may; a body naming another agent is refused
	if m, _ := askJSON(t, alice, screenpop.IdentifySubject("alice"), `{"call_id":"call1","customer_ref":"cust_kim","agent":"bob"}`); m.Header.Get("Nats-Service-Error-Code") != "400" {
		t.Fatalf("agent in the body: %s", m.Data)
	}
	m, v = askJSON(t, alice, screenpop.IdentifySubject("alice"), `{"call_id":"call1","customer_ref":"cust_kim"}`)
	if m.Header.Get("Nats-Service-Error-Code") != "" || v["customer_ref"] != "cust_kim" || v["agent"] != "alice" || v["decided_by"] != "nats:alice" {
		t.Fatalf("alice: %s", m.Data)
	}
	// another customer now is a 409 naming both
	m, v = askJSON(t, alice, screenpop.IdentifySubject("alice"), `{"call_id":"call1","customer_ref":"cust_lee"}`)
	if d, _ := v["details"].(map[string]any); m.Header.Get("Nats-Service-Error-Code") != "409" || d["assigned_customer_ref"] != "cust_kim" || d["requested_customer_ref"] != "cust_lee" {
		t.Fatalf("conflict: %s", m.Data)
	}
	if cnt.Get("identify_saved") != 1 || cnt.Get("identify_failed") != 3 {
		t.Errorf("saved %d failed %d", cnt.Get("identify_saved"), cnt.Get("identify_failed"))
	}
}
