package adapters_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sticky-cc/sticky/adapters"
	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/core/api"
	"github.com/sticky-cc/sticky/core/redact"
	"github.com/sticky-cc/sticky/core/store"
	"github.com/sticky-cc/sticky/screenpop"
	"github.com/sticky-cc/sticky/screenpop/screenpoptest"
)

// syncBuffer is a log destination shared by the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// secrets are what the customers typed, in the forms they typed them.
var secrets = []string{
	"4111 1111 1111 1111", "4111111111111111",
	"5555-5555-5555-4444", "5555555555554444",
	"3782 822463 10005", "378282246310005",
	"6011.1111.1111.1117", "6011111111111117",
	"123-45-6789", "DE89 3704 0044 0532 0130 00", "DE89370400440532013000",
}

func secretIn(b []byte) string {
	for _, s := range secrets {
		if bytes.Contains(b, []byte(s)) {
			return s
		}
	}
	return ""
}

// Every channel, through the real HTTP API and adapters, on an engine on
// Badger: what the customers typed is redacted in the stored profile, in
// the next start's context and in the screen-pop, in no log line, and
// nowhere in the Badger directory once it is closed.
func TestRedactionInEveryChannel(t *testing.T) {
	dir := t.TempDir()
	db, err := store.Open(store.Options{Dir: dir, Compression: "none"})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			db.Close()
		}
	})
	r, err := redact.New()
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	clk := &clock{t: monday}
	eng := core.New(core.Options{Store: db, Now: clk.Now, Redactor: r, Logger: log})
	srv := api.New(api.Options{Engine: eng, Keys: []string{key}, Logger: log})
	if err := adapters.Mount(srv, adapters.Options{Calls: eng, Now: clk.Now, Logger: log}); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	e := &env{t: t, url: hs.URL, clk: clk, db: db, engine: eng, srv: srv}
	auth := bearer(key)

	// Monday: a chat whose transcript holds a card number (no summary
	// given, so the adapter summarises the transcript).
	chat := `{"session_id": "s1", "customer": {"email": "jane@example.test"},
		"transcript": [
			{"from": "customer", "text": "Hi, my card 4111 1111 1111 1111 was charged twice", "at": "2026-01-26T14:00:00Z"},
			{"from": "agent", "text": "Sorry about that, I will look into it", "at": "2026-01-26T14:02:00Z"}],
		"intent": "billing_inquiry", "intent_status": "open"}`
	res := e.post(adapters.ChatPath, "application/json", []byte(chat), auth).ok(t)
	ref, _ := res.body["customer_ref"].(string)
	if ref == "" {
		t.Fatalf("no customer_ref: %s", res.raw)
	}
	// an email whose subject and body hold another
	clk.Add(time.Hour)
	mail := `{"from": "Jane <jane@example.test>", "subject": "Card 5555-5555-5555-4444 charged twice [TKT-789]",
		"text": "Hello,\nthe card 5555555555554444 exp 12/27 was charged twice.\nJane", "message_id": "<m1@example.test>",
		"date": "2026-01-26T15:00:00Z"}`
	e.post(adapters.EmailPath, "application/json", []byte(mail), auth).ok(t)
	// a Zendesk ticket whose description holds an Amex, an SSN and an IBAN
	clk.Add(time.Hour)
	ticket := `{"ticket": {"id": "42", "status": "open", "subject": "Refund",
		"description": "Refund to 3782 822463 10005 please; SSN 123-45-6789; or IBAN DE89 3704 0044 0532 0130 00",
		"requester": {"email": "jane@example.test"}, "created_at": "2026-01-26T16:00:00Z", "updated_at": "2026-01-26T16:00:00Z"}}`
	e.post(adapters.ZendeskPath, "application/json", []byte(ticket), auth).ok(t)
	// and an end from any other system, with a wrap-up variable
	end := `{"call_id": "wrap_1", "identity_hints": {"external_ids": {"email": "jane@example.test"}},
		"variables": {"summary": "Customer read out 6011.1111.1111.1117 before I could stop them", "wrapup_note": "card 4111111111111111 cvv 123"}}`
	e.post("/v1/calls/end", "application/json", []byte(end), auth).ok(t)

	// the stored profile
	prof := e.get("/v1/customers/" + ref)
	if prof.status != 200 {
		t.Fatalf("profile: %d %s", prof.status, prof.raw)
	}
	if s := secretIn([]byte(prof.raw)); s != "" {
		t.Errorf("the profile holds %q: %s", s, prof.raw)
	}
	for _, want := range []string{"card ending 1111", "card ending 4444", "card ending 0005", "card ending 1117",
		"[ssn]", "iban ending 3000", "cvv [cvv]", "exp [expiry]", "Customer: Hi, my card [card ending 1111] was charged twice"} {
		if !strings.Contains(prof.raw, want) {
			t.Errorf("the profile lacks %q: %s", want, prof.raw)
		}
	}

	// the next start's context
	start := e.post("/v1/calls/start", "application/json",
		[]byte(`{"call_id": "phone_1", "identity_hints": {"ani": "+14155551234", "external_ids": {"email": "jane@example.test"}}}`), auth).ok(t)
	if start.body["customer_ref"] != ref || !strings.Contains(start.raw, "card ending 1111") || secretIn([]byte(start.raw)) != "" {
		t.Errorf("start context: %s", start.raw)
	}

	// the screen-pop of a ringing call, through the real screen-pop service
	svc, nc := screenpoptest.Start(t, eng)
	sub, err := nc.SubscribeSync(screenpop.AgentSubject("1001"))
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ctxRes, err := eng.Start(ctx, core.StartRequest{CallID: "phone_2", Hints: core.Hints{ExternalIDs: map[string]string{"email": "jane@example.test"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Pop(ctx, core.Pop{CallID: "phone_2", PBX: "asterisk", PBXCallID: "1714566897.18", Agent: "1001", RangAt: clk.Now(), Context: ctxRes}); err != nil {
		t.Fatal(err)
	}
	msg, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("no pop: %v", err)
	}
	var pop screenpoptest.Pop
	if err := json.Unmarshal(msg.Data, &pop); err != nil || pop.Context == nil || pop.Context.CustomerRef != ref {
		t.Fatalf("pop %v: %s", err, msg.Data)
	}
	if !bytes.Contains(msg.Data, []byte("card ending 1111")) || !bytes.Contains(msg.Data, []byte("card ending 0005")) {
		t.Errorf("the pop lacks the redacted cards: %s", msg.Data)
	}
	if s := secretIn(msg.Data); s != "" {
		t.Errorf("the pop holds %q: %s", s, msg.Data)
	}

	// no log line holds what was typed (the adapters never log bodies)
	if s := secretIn([]byte(logs.String())); s != "" {
		t.Errorf("a log line holds %q:\n%s", s, logs.String())
	}
	if !strings.Contains(logs.String(), "adapter delivery") {
		t.Errorf("the adapters logged nothing, so the check above proves nothing:\n%s", logs.String())
	}

	// and nothing of it reached the disk
	hs.Close()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	found := 0
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(p)
		if s := secretIn(b); s != "" {
			t.Errorf("%s holds %q", filepath.Base(p), s)
		}
		if bytes.Contains(b, []byte("card ending 1111")) {
			found++
		}
		return nil
	})
	if found == 0 {
		t.Error("the redacted text is not on disk either: the grep above looked in the wrong place")
	}
}
