package screenpop_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/core/api/apitest"
	"github.com/sticky-cc/sticky/core/store"
	"github.com/sticky-cc/sticky/screenpop"
)

func newEngineWith(t testing.TB, now time.Time, opts core.Options) (*core.Engine, *clock) {
	t.Helper()
	db, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	clk := &clock{t: now}
	opts.Store, opts.Now = db, clk.Now
	return core.New(opts), clk
}

// What Jane's context holds that a withheld pop must not: her history,
// her open intent, the headline and the keys that would carry them.
var janesSecrets = []string{"duplicate charge", "refund_status", "Chatted", `"history"`, `"variables"`, `"open_intents"`, `"headline"`}

// Below the disclosure level (here never: even a reused caller is
// verified) no copy of the pop holds the context, neither on the wire nor
// in the stream's files; the context comes once the agent has said who
// the caller is, to that agent only.
func TestWithheldPopHoldsNoContext(t *testing.T) {
	e, clk := newEngineWith(t, time.Date(2026, 1, 26, 14, 0, 0, 0, time.UTC), core.Options{DiscloseLevel: core.DiscloseNever})
	seedJane(t, e, clk)
	storeDir := t.TempDir()
	cnt := &counter{n: map[string]int{}}
	svc := startService(t, screenpop.Options{Calls: e, StoreDir: storeDir, Count: cnt.Count,
		VerifyPrompts: []string{"Ask for the ZIP code"}})
	waitReady(t, svc)
	admin := adminConn(t, svc)
	live, err := admin.SubscribeSync(screenpop.SubjectPrefix + ".>")
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.Flush(); err != nil { // the server knows of the subscription before the pop
		t.Fatal(err)
	}
	pop := ring(t, e, "call1", "alice")
	if pop.Context.Identity.Recommendation != core.RecommendReuse || len(pop.Context.History) != 2 {
		t.Fatalf("the start did not reuse Jane: %+v", pop.Context)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := svc.Pop(ctx, pop); err != nil {
		t.Fatal(err)
	}

	check := func(where string, data []byte) {
		t.Helper()
		for _, s := range janesSecrets {
			if bytes.Contains(data, []byte(s)) {
				t.Errorf("%s holds %s: %s", where, s, data)
			}
		}
		var raw struct {
			Customer json.RawMessage `json:"customer"`
			Context  json.RawMessage `json:"context"`
		}
		if err := json.Unmarshal(data, &raw); err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		if err := apitest.ValidateJSON(t, "#/components/schemas/WithheldContext", raw.Context); err != nil {
			t.Errorf("%s: the context is not a WithheldContext (and only that): %v", where, err)
		}
		if string(raw.Customer) != "{}" {
			t.Errorf("%s: customer %s on a withheld pop", where, raw.Customer)
		}
	}
	// every copy as it went over the wire: agent, queue, call
	subjects := map[string]bool{}
	for range 3 {
		m, err := live.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("live copies %v: %v", subjects, err)
		}
		subjects[m.Subject] = true
		check(m.Subject, m.Data)
	}
	if !subjects[screenpop.AgentSubject("alice")] || !subjects[screenpop.QueueSubject("billing")] || !subjects[screenpop.CallSubject("call1")] {
		t.Errorf("copies on %v", subjects)
	}
	// and as the stream keeps them
	js, _ := jetstream.New(admin)
	st, err := js.Stream(ctx, screenpop.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= 3; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("stored message %d: %v", seq, err)
		}
		check("stored "+m.Subject, m.Data)
	}
	// nor in the stream's files (JetStream stores them in the clear)
	found := false
	_ = filepath.WalkDir(storeDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(path)
		found = found || bytes.Contains(b, []byte("verify"))
		for _, s := range janesSecrets[:3] {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds %q", path, s)
			}
		}
		return nil
	})
	if !found {
		t.Error("the stream's files hold no pop at all: the check above proved nothing")
	}

	// what the desktop reads
	alice, _ := connectAgent(t, svc, "alice", "alice-secret")
	got := readPops(t, alice, screenpop.AgentSubject("alice"), 1)[0]
	c := got.Context
	if c == nil || !c.Withheld || c.Verify == nil || !slices.Equal(c.Verify.Prompts, []string{"Ask for the ZIP code"}) ||
		c.Verify.ContextSubject != screenpop.ContextSubject("alice") || len(c.Candidates) != 1 ||
		c.Candidates[0].Name != "Jane Doe" || c.Candidates[0].CustomerRef != pop.Context.CustomerRef || len(c.Identity.Explanation) == 0 {
		t.Fatalf("withheld context %+v", c)
	}
	if cnt.Get("pop_withheld") != 1 {
		t.Errorf("pop_withheld = %d", cnt.Get("pop_withheld"))
	}

	ask := func(nc *nats.Conn, subject, body string) (string, map[string]any) {
		t.Helper()
		m, v := askJSON(t, nc, subject, body)
		return m.Header.Get("Nats-Service-Error-Code"), v
	}
	body := `{"call_id":"call1"}`
	// not yet: nobody said who the caller is
	if code, v := ask(alice, screenpop.ContextSubject("alice"), body); code != "409" {
		t.Fatalf("before identify: %s %v", code, v)
	}
	if code, v := ask(alice, screenpop.IdentifySubject("alice"), `{"call_id":"call1","customer_ref":"`+pop.Context.CustomerRef+`"}`); code != "" {
		t.Fatalf("identify: %s %v", code, v)
	}
	code, v := ask(alice, screenpop.ContextSubject("alice"), body)
	if h, _ := v["history"].([]any); code != "" || v["customer_ref"] != pop.Context.CustomerRef || v["name"] != "Jane Doe" || len(h) != 2 {
		t.Fatalf("context: %s %v", code, v)
	}
	ref := pop.Context.CustomerRef
	if !hasAccess(t, e, ref, core.AccessContext, "alice", "call1") || !hasAccess(t, e, ref, core.AccessIdentify, "alice", "call1") {
		t.Error("the access log lacks alice's identify or context record")
	}
}

// A desktop asking for the context of a call that was not popped to its
// agent gets a permission error, and the attempt is in the access log;
// it cannot ask on another agent's subject at all.
func TestContextOfACallNotPoppedToTheAgentIsRefused(t *testing.T) {
	e, clk := newEngine(t, time.Date(2026, 1, 26, 14, 0, 0, 0, time.UTC))
	seedJane(t, e, clk)
	cnt := &counter{n: map[string]int{}}
	svc := startService(t, screenpop.Options{Calls: e, Count: cnt.Count})
	waitReady(t, svc)
	pop := ring(t, e, "call1", "alice")
	popIt(t, svc, pop)
	bob, bobErrs := connectAgent(t, svc, "bob", "bob-secret")
	if _, v := askJSON(t, bob, screenpop.SubjectProfilePrefix+".bob", `{}`); v["context_subject"] != screenpop.ContextSubject("bob") {
		t.Fatalf("profile %v", v)
	}
	m, v := askJSON(t, bob, screenpop.ContextSubject("bob"), `{"call_id":"call1"}`)
	if m.Header.Get("Nats-Service-Error-Code") != "403" || v["code"] != 403.0 || v["history"] != nil {
		t.Fatalf("bob: %s", m.Data)
	}
	if _, err := bob.Request(screenpop.ContextSubject("alice"), []byte(`{"call_id":"call1"}`), 500*time.Millisecond); err == nil {
		t.Fatal("bob asked on alice's context subject")
	}
	select {
	case <-bobErrs:
	case <-time.After(5 * time.Second):
		t.Fatal("no permission violation reported for bob")
	}
	if !hasAccess(t, e, pop.Context.CustomerRef, core.AccessContextDenied, "bob", "call1") {
		t.Error("no context_denied record for bob")
	}
	// alice's pop was at the level (reuse): she may fetch without identifying
	alice, _ := connectAgent(t, svc, "alice", "alice-secret")
	if m, v := askJSON(t, alice, screenpop.ContextSubject("alice"), `{"call_id":"call1"}`); m.Header.Get("Nats-Service-Error-Code") != "" || v["customer_ref"] != pop.Context.CustomerRef {
		t.Fatalf("alice: %s", m.Data)
	}
	if cnt.Get("context_refused") != 1 || cnt.Get("context_disclosed") != 1 {
		t.Errorf("refused %d disclosed %d", cnt.Get("context_refused"), cnt.Get("context_disclosed"))
	}
}
