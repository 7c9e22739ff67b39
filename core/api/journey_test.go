package api_test

import (
	"testing"
	"time"

	"github.com/sticky-cc/sticky/core/api"
)

// TestJourneyOverHTTP is the multi-channel journey of the contract, with
// the bodies a chat system, an email system and a PBX would send.
func TestJourneyOverHTTP(t *testing.T) {
	e := newEnv(t, api.Options{})
	e.clk.t = time.Date(2026, 1, 26, 14, 0, 0, 0, time.UTC) // a Monday
	r := e.do("POST", "/v1/calls/end", `{"call_id":"chat_session_123","customer_ref":"cust_abc123",
		"intent":"billing_inquiry","intent_status":"open",
		"variables":{"channel":"chat","email":"customer@example.test","summary":"Reported a duplicate charge"}}`)
	if r.status != 200 {
		t.Fatal(r.raw)
	}
	e.clk.Add(20 * time.Hour) // Tuesday
	r = e.do("POST", "/v1/calls/end", `{"call_id":"email_thread_456","customer_ref":"cust_abc123",
		"intent":"refund_status","intent_is_open":true,
		"variables":{"channel":"email","ticket_id":"TKT-789","summary":"Asked for the refund status"}}`)
	if r.status != 200 {
		t.Fatal(r.raw)
	}
	e.clk.Add(29 * time.Hour) // Wednesday
	r = e.do("POST", "/v1/calls/start", `{"call_id":"phone_call_789",
		"identity_hints":{"ani":"+14155551234","external_ids":{"email":"customer@example.test"}}}`)
	if r.status != 200 || r.body["customer_ref"] != "cust_abc123" {
		t.Fatalf("start: %s", r.raw)
	}
	open := r.body["open_intents"].([]any)
	if len(open) != 2 || open[0].(map[string]any)["intent"] != "refund_status" || open[1].(map[string]any)["intent"] != "billing_inquiry" {
		t.Fatalf("open_intents: %v", open)
	}
	hist := r.body["history"].([]any)
	if len(hist) != 2 || hist[0].(map[string]any)["channel"] != "email" || hist[1].(map[string]any)["channel"] != "chat" {
		t.Fatalf("history: %v", hist)
	}
	sources := r.body["identity"].(map[string]any)["sources"].([]any)
	found := false
	for _, s := range sources {
		found = found || s == "external_id"
	}
	if !found {
		t.Fatalf("identity.sources %v does not name the email", sources)
	}
	if r.body["headline"] != "Chatted Mon about billing_inquiry · emailed Tue about refund_status" {
		t.Fatalf("headline: %v", r.body["headline"])
	}
	e.clk.Add(4 * time.Minute)
	if r = e.do("POST", "/v1/calls/end", `{"call_id":"phone_call_789","intent":"refund_status","variables":{"summary":"Refund confirmed by phone"}}`); r.status != 200 {
		t.Fatal(r.raw)
	}
	e.clk.Add(24 * time.Hour)
	r = e.do("POST", "/v1/calls/start", `{"call_id":"phone_call_790","identity_hints":{"ani":"+1 415-555-1234"}}`)
	if r.status != 200 || r.body["customer_ref"] != "cust_abc123" {
		t.Fatalf("ANI-only start: %s", r.raw)
	}
}
