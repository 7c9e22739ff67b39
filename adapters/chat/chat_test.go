package chat

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sticky-cc/sticky/core"
)

func TestParseAndRequest(t *testing.T) {
	s, err := Parse([]byte(`{"session_id":"chat_session_123","customer":{"email":"Jane@Example.com","phone":"4155551234","id":77},
		"transcript":[{"from":"customer","text":"  My parcel\nis late ","at":"2026-01-26T14:00:00Z"},
		{"from":"agent","text":"It ships tomorrow.","at":"2026-01-26T14:05:00Z"}],"intent":"delivery","intent_status":"Open"}`))
	if err != nil {
		t.Fatal(err)
	}
	req := s.Request()
	if req.CallID != "chat_session_123" || req.Channel != "chat" || req.IntentStatus != "open" ||
		req.Hints.ANI != "4155551234" || req.Hints.ExternalIDs["email"] != "Jane@Example.com" || req.Hints.ExternalIDs["customer_id"] != "77" {
		t.Fatalf("request = %+v %+v", req, req.Hints)
	}
	// Times come from the transcript when the session has none.
	if !req.StartedAt.Equal(time.Date(2026, 1, 26, 14, 0, 0, 0, time.UTC)) || !req.EndedAt.Equal(time.Date(2026, 1, 26, 14, 5, 0, 0, time.UTC)) {
		t.Fatalf("times %v %v", req.StartedAt, req.EndedAt)
	}
	if got := req.Variables["summary"]; got != "Customer: My parcel is late / Agent: It ships tomorrow. (2 messages)" {
		t.Fatalf("summary = %q", got)
	}
}

func TestSummarize(t *testing.T) {
	long := strings.Repeat("word ", 100)
	for _, tc := range []struct {
		in   []Message
		want string
	}{
		{nil, ""},
		{[]Message{{From: "bot", Text: "hi"}, {From: "system", Text: "closed"}}, "Chat of 2 messages"},
		{[]Message{{From: "customer", Text: "one"}, {From: "customer", Text: "two"}}, "Customer: one (2 messages)"},
		{[]Message{{From: "agent", Text: "a"}, {From: "customer", Text: ""}, {From: "agent", Text: "b"}}, "Agent: b (2 messages)"},
	} {
		if got := Summarize(tc.in); got != tc.want {
			t.Errorf("Summarize(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
	got := Summarize([]Message{{From: "customer", Text: long}, {From: "agent", Text: long}})
	if utf8.RuneCountInString(got) > 400 || !strings.Contains(got, "…") {
		t.Fatalf("long summary not clipped: %d runes", utf8.RuneCountInString(got))
	}
	// Deterministic: the same transcript, the same summary.
	in := []Message{{From: "customer", Text: "x"}, {From: "agent", Text: "y"}}
	if Summarize(in) != Summarize(in) {
		t.Fatal("not deterministic")
	}
}

func TestCallID(t *testing.T) {
	for in, want := range map[string]string{"chat_session_123": "chat_session_123", "Chat-9": "Chat-9", "9f1c": "chat_9f1c"} {
		if got := CallID(in); got != want {
			t.Errorf("CallID(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"session_id":"s1","customer":{"email":"a@b.example"},"transcript":[{"from":"customer","text":"hi","at":"2026-01-26T14:00:00Z"}]}`))
	f.Add([]byte(`{"session_id":12,"customer":{"id":"c"},"summary":"s","intent":"x","intent_status":"resolved"}`))
	f.Add([]byte(`{"session_id":null,"transcript":{}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse(b)
		if err != nil {
			if core.ErrorCode(err) != core.CodeInvalid {
				t.Fatalf("not a validation error: %v", err)
			}
			return
		}
		req := s.Request()
		if req.CallID == "" || req.Hints == nil {
			t.Fatalf("request = %+v", req)
		}
		if v := req.Variables["summary"]; v != "" && s.Summary == "" && utf8.RuneCountInString(v) > 400 {
			t.Fatalf("made summary too long: %d", utf8.RuneCountInString(v))
		}
	})
}
