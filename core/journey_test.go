package core_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/core/store"
)

// clock is an injectable clock for tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time)     { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newEngine(t testing.TB, now time.Time) (*core.Engine, *clock, *store.DB) {
	t.Helper()
	db, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	clk := &clock{t: now}
	n := 0
	var mu sync.Mutex
	e := core.New(core.Options{Store: db, Now: clk.Now, NewRef: func() string {
		mu.Lock()
		defer mu.Unlock()
		n++
		return "cust_" + string(rune('a'+n-1)) + "gen"
	}})
	return e, clk, db
}

// monday is 2026-01-26, a Monday.
var monday = time.Date(2026, 1, 26, 14, 0, 0, 0, time.UTC)

func TestMultiChannelJourney(t *testing.T) {
	ctx := context.Background()
	e, clk, _ := newEngine(t, monday)

	// Monday: a chat ends.
	_, err := e.End(ctx, core.EndRequest{
		CallID: "chat_session_123", CustomerRef: "cust_abc123",
		Intent: "billing_inquiry", IntentStatus: core.StatusOpen,
		Variables: map[string]string{"channel": "chat", "email": "customer@example.test",
			"summary": "Reported a duplicate charge on the January invoice"},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Tuesday: an email ends.
	clk.Set(monday.Add(24*time.Hour - 4*time.Hour))
	_, err = e.End(ctx, core.EndRequest{
		CallID: "email_thread_456", CustomerRef: "cust_abc123",
		Intent: "refund_status", IntentStatus: core.StatusOpen,
		Variables: map[string]string{"channel": "email", "ticket_id": "TKT-789", "summary": "Asked for refund status"},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Wednesday: the phone rings.
	clk.Set(monday.Add(2*24*time.Hour + time.Hour))
	res, err := e.Start(ctx, core.StartRequest{CallID: "phone_call_789", Hints: core.Hints{
		ANI: "+14155551234", ExternalIDs: map[string]string{"email": "customer@example.test"}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.CustomerRef != "cust_abc123" {
		t.Fatalf("customer_ref = %q, want cust_abc123", res.CustomerRef)
	}
	var open []string
	for _, in := range res.OpenIntents {
		open = append(open, in.Intent)
	}
	if !slices.Equal(open, []string{"refund_status", "billing_inquiry"}) {
		t.Fatalf("open intents (newest first) = %v", open)
	}
	if len(res.History) != 2 || res.History[0].CallID != "email_thread_456" || res.History[1].CallID != "chat_session_123" {
		t.Fatalf("history = %+v", res.History)
	}
	if res.History[0].Channel != "email" || res.History[1].Channel != "chat" {
		t.Fatalf("history channels = %s, %s", res.History[0].Channel, res.History[1].Channel)
	}
	if !slices.Contains(res.Identity.Sources, "external_id") {
		t.Fatalf("sources %v do not name the email", res.Identity.Sources)
	}
	// A rare email identifies the customer even from a new number: it was
	// "confirm" under the contract's additive weights, which left callers
	// on a new phone unrecognised (issue 14).
	if res.Identity.Recommendation != core.RecommendReuse || res.Identity.Level != core.LevelVeryHigh {
		t.Fatalf("identity = %+v", res.Identity)
	}
	if got := res.Variables["summary"].Value; got != "Asked for refund status" {
		t.Fatalf("summary variable = %q", got)
	}
	if src := res.Variables["ticket_id"].Source; src == nil || *src != "email" {
		t.Fatalf("ticket_id source = %v", src)
	}
	if res.Headline != "Chatted Mon about billing_inquiry · emailed Tue about refund_status" {
		t.Fatalf("headline = %q", res.Headline)
	}
	// The call ends; its ANI is now linked.
	clk.Add(5 * time.Minute)
	end, err := e.End(ctx, core.EndRequest{CallID: "phone_call_789", Intent: "refund_status", IntentStatus: core.StatusOpen})
	if err != nil {
		t.Fatal(err)
	}
	if end.CustomerRef != "cust_abc123" || end.DurationSeconds != 300 {
		t.Fatalf("end = %+v", end)
	}
	// Thursday: the same number alone finds the same customer.
	clk.Add(24 * time.Hour)
	res, err = e.Start(ctx, core.StartRequest{CallID: "phone_call_790", Hints: core.Hints{ANI: "(415) 555-1234"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.CustomerRef != "cust_abc123" {
		t.Fatalf("ANI-only start found %q (identity %+v)", res.CustomerRef, res.Identity)
	}
	if res.OpenIntents[0].Intent != "refund_status" || res.OpenIntents[0].AttemptCount != 2 {
		t.Fatalf("open intents = %+v", res.OpenIntents)
	}
}
