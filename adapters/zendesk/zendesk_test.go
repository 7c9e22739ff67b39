package zendesk

import (
	"os"
	"strings"
	"testing"

	"github.com/sticky-cc/sticky/core"
)

func TestParseTicket(t *testing.T) {
	b, err := os.ReadFile("../testdata/zendesk-ticket.json")
	if err != nil {
		t.Fatal(err)
	}
	tk, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	req := tk.Request()
	if req.CallID != "zendesk_35436" || req.Channel != "email" || req.Intent != "ticket_35436" || req.IntentStatus != "open" ||
		req.Hints.ANI != "+14155551234" || req.Hints.ExternalIDs["email"] != "customer@example.test" || req.Hints.ExternalIDs[IDKind] != "20978392" ||
		req.Variables["ticket_id"] != "35436" || !strings.HasPrefix(req.Variables["summary"], "Hello,") || req.StartedAt.IsZero() {
		t.Fatalf("request = %+v %+v", req, req.Hints)
	}
}

func TestStatusAndChannel(t *testing.T) {
	for status, want := range map[string]string{"new": "open", "Pending": "open", "hold": "open", "SOLVED": "resolved", "closed": "resolved", "": "open"} {
		tk, err := Parse([]byte(`{"ticket":{"id":"7","status":"` + status + `","requester":{"id":1},"intent":"refund_status"}}`))
		if err != nil {
			t.Fatal(err)
		}
		if got := tk.Request(); got.IntentStatus != want || got.Intent != "refund_status" {
			t.Errorf("status %q → %q, want %q", status, got.IntentStatus, want)
		}
	}
	for via, want := range map[string]string{"email": "email", "Web Form": "web", "voice": "phone", "native_messaging": "chat", "": "zendesk", "Twitter DM!": "twitter_dm", "...": "zendesk"} {
		if got := Channel(via); got != want {
			t.Errorf("Channel(%q) = %q, want %q", via, got, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("../testdata/zendesk-ticket.json"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"ticket":{"id":"1","status":"solved","via":{"channel":"web"},"requester":{"phone":"+1 415 555 1234"}}}`))
	f.Add([]byte(`{"ticket":{"id":1.5,"requester":null}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		tk, err := Parse(b)
		if err != nil {
			if core.ErrorCode(err) != core.CodeInvalid {
				t.Fatalf("not a validation error: %v", err)
			}
			return
		}
		req := tk.Request()
		if ch := req.Channel; ch == "" || len(ch) > core.MaxChannelLen || strings.Trim(ch, "abcdefghijklmnopqrstuvwxyz0123456789_-") != "" {
			t.Fatalf("channel %q", ch)
		}
		if len(req.Variables["summary"]) > core.MaxVarValueBytes {
			t.Fatalf("summary of %d bytes", len(req.Variables["summary"]))
		}
		if req.IntentStatus != core.StatusOpen && req.IntentStatus != core.StatusResolved {
			t.Fatalf("status %q", req.IntentStatus)
		}
	})
}
