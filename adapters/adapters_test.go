package adapters_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sticky-cc/sticky/adapters"
	"github.com/sticky-cc/sticky/adapters/webhook"
	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/core/api"
	"github.com/sticky-cc/sticky/core/api/apitest"
	"github.com/sticky-cc/sticky/core/store"
	"github.com/sticky-cc/sticky/core/store/storetest"
)

const key = "test-key-0123456789"

var secret = []byte("whsec-test-0123456789abcdef")

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time)     { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// monday is 2026-01-26, a Monday.
var monday = time.Date(2026, 1, 26, 14, 15, 0, 0, time.UTC)

type env struct {
	t      *testing.T
	url    string
	clk    *clock
	db     *store.DB
	engine *core.Engine
	srv    *api.Server
}

type config struct {
	keys          []string
	opts          adapters.Options
	noDefaultAuth bool
}

func newEnv(t *testing.T, c config) *env {
	t.Helper()
	db, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	clk := &clock{t: monday}
	e := core.New(core.Options{Store: db, Now: clk.Now})
	if c.keys == nil && !c.noDefaultAuth {
		c.keys = []string{key}
	}
	srv := api.New(api.Options{Engine: e, Keys: c.keys})
	opts := c.opts
	opts.Calls = e
	opts.Now = clk.Now
	if opts.Secret == nil && !c.noDefaultAuth {
		opts.Secret = secret
	}
	if err := adapters.Mount(srv, opts); err != nil {
		t.Fatal(err)
	}
	keys := map[string][]api.Scope{}
	for _, k := range c.keys {
		keys[k] = nil
	}
	doc := apitest.Options{Keys: keys, Open: len(keys) == 0, SignedWebhooks: len(opts.Secret) > 0 || len(opts.ZendeskSecret) > 0}
	hs := httptest.NewServer(apitest.Handler(t, srv, doc))
	t.Cleanup(hs.Close)
	return &env{t: t, url: hs.URL, clk: clk, db: db, engine: e, srv: srv}
}

type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// auth says how a request authenticates.
type auth func(r *http.Request, body []byte)

func bearer(k string) auth {
	return func(r *http.Request, _ []byte) { r.Header.Set("Authorization", "Bearer "+k) }
}

func signedAt(e *env, at time.Time, s []byte) auth {
	return func(r *http.Request, body []byte) { webhook.SignRequest(r, s, at, body) }
}

func (e *env) signed() auth { return signedAt(e, e.clk.Now(), secret) }

func noAuth(*http.Request, []byte) {}

func (e *env) post(path, ctype string, body []byte, a auth, hdr ...string) reply {
	e.t.Helper()
	req, err := http.NewRequest("POST", e.url+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	a(req, body)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

func (e *env) get(path string) reply {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

func (e *env) profile(ref string) *core.Profile {
	e.t.Helper()
	p, err := e.engine.Customer(e.t.Context(), ref, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

// snapshot is every key and value in the store: a bad request must leave
// it unchanged.
func (e *env) snapshot() string { return storetest.Dump(e.t, e.db) }

func file(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (r reply) ok(t *testing.T) reply {
	t.Helper()
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	return r
}

func (r reply) envelope(t *testing.T, status int, path ...any) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	if r.body["error"] != http.StatusText(status) || r.body["message"] == nil || r.body["message"] == "" {
		t.Fatalf("not the error envelope: %s", r.raw)
	}
	if path == nil {
		return
	}
	d, _ := r.body["details"].(map[string]any)
	issues, _ := d["issues"].([]any)
	want, _ := json.Marshal(path)
	for _, is := range issues {
		got, _ := json.Marshal(is.(map[string]any)["path"])
		if string(got) == string(want) {
			return
		}
	}
	t.Fatalf("no issue at %s: %s", want, r.raw)
}

func TestChatSession(t *testing.T) {
	e := newEnv(t, config{})
	r := e.post(adapters.ChatPath, "application/json", file(t, "testdata/chat-session.json"), e.signed()).ok(t)
	if r.body["call_id"] != "chat_session_123" || r.body["channel"] != "chat" || r.body["duration_seconds"] != 760.0 ||
		r.body["call_start"] != "2026-01-26T14:00:00.000Z" || r.body["intents_updated"] != 1.0 {
		t.Fatalf("answer: %s", r.raw)
	}
	p := e.profile(r.body["customer_ref"].(string))
	h := p.History[0]
	want := `Customer: I was charged twice for my January invoice (INV-2026-01), $49 each. / Agent: I have opened a billing inquiry; ` +
		`the billing team will confirm the refund by email within 2 business days. (5 messages)`
	if len(p.History) != 1 || h.Channel != "chat" || h.Summary != want || h.Intent != "billing_inquiry" {
		t.Fatalf("history: %+v", p.History)
	}
	ids := map[string]string{}
	for _, id := range p.Identifiers {
		ids[id.Kind] = id.Value
	}
	if ids["email"] != "customer@example.test" || ids["phone"] != "+14155551234" || ids["customer_id"] != "crm-88213" {
		t.Fatalf("identifiers: %+v", p.Identifiers)
	}
	// A session id that does not name the channel gets a prefix, so it
	// cannot collide with a PBX's call ids.
	r = e.post(adapters.ChatPath, "", []byte(`{"session_id":8812,"customer":{"email":"x@example.test"},"summary":"Asked about delivery"}`), bearer(key)).ok(t)
	if r.body["call_id"] != "chat_8812" {
		t.Fatalf("call_id: %s", r.raw)
	}
}

func TestEmailRawMultipart(t *testing.T) {
	e := newEnv(t, config{})
	raw := file(t, "email/testdata/reply.eml")
	e.clk.Set(time.Date(2026, 1, 27, 10, 0, 5, 0, time.UTC))
	r := e.post(adapters.EmailPath+"?intent=refund_status", "message/rfc822", raw, e.signed()).ok(t)
	if r.body["call_id"] != "email_CAJane-000@mail.example.com" || r.body["channel"] != "email" || r.body["call_end"] != "2026-01-27T10:00:00.000Z" {
		t.Fatalf("answer: %s", r.raw)
	}
	p := e.profile(r.body["customer_ref"].(string))
	if p.Variables["ticket_id"].Value != "TKT-789" || *p.Variables["ticket_id"].Source != "email" {
		t.Fatalf("variables: %+v", p.Variables)
	}
	sum := p.Variables["summary"].Value
	if !strings.HasPrefix(sum, "[TKT-789] Refund for order #4521 – still waiting — I still haven't received the refund") ||
		strings.Contains(sum, "Hello Jane") || strings.Contains(sum, "Customer since") {
		t.Fatalf("summary: %q", sum)
	}
	if len(p.OpenIntents) != 1 || p.OpenIntents[0].Intent != "refund_status" || p.Identifiers[0].Value != "customer@example.test" {
		t.Fatalf("profile: %+v", p)
	}
}

func TestEmailHTMLOnlyAndJSON(t *testing.T) {
	e := newEnv(t, config{})
	e.clk.Set(time.Date(2026, 1, 29, 9, 0, 0, 0, time.UTC))
	r := e.post(adapters.EmailPath, "message/rfc822", file(t, "email/testdata/html-only.eml"), bearer(key)).ok(t)
	p := e.profile(r.body["customer_ref"].(string))
	if p.History[0].Summary != "Double charge – invoice INV-2026-01 — My invoice INV-2026-01 shows a charge of €49 twice. Please refund one of them." {
		t.Fatalf("summary: %q", p.History[0].Summary)
	}
	body := []byte(`{"from":"Marc Dupont <marc@example.org>","to":"billing@shop.example","subject":"RE: Double charge",
		"text":"Any update?\n\nOn Wed, Jan 28, 2026 Marc wrote:\n> My invoice shows a charge twice.","message_id":"<m2@example.org>",
		"in_reply_to":"<DB9PR01MB0001@eurprd01.prod.outlook.com>","references":"<DB9PR01MB0001@eurprd01.prod.outlook.com>",
		"date":"2026-01-29T08:00:00Z","intent":"refund_status"}`)
	r2 := e.post(adapters.EmailPath, "application/json", body, bearer(key)).ok(t)
	if r2.body["call_id"] != r.body["call_id"] || r2.body["customer_ref"] != r.body["customer_ref"] {
		t.Fatalf("a reply joins its thread: %s vs %s", r2.raw, r.raw)
	}
	p = e.profile(r.body["customer_ref"].(string))
	if len(p.History) != 1 || p.History[0].Summary != "Double charge — Any update?" || p.History[0].Intent != "refund_status" ||
		p.History[0].StartedAt.Format(time.RFC3339) != "2026-01-28T08:15:00Z" || p.History[0].EndedAt.Format(time.RFC3339) != "2026-01-29T08:00:00Z" {
		t.Fatalf("thread after the reply: %+v", p.History)
	}
	// A date far ahead of the receiving clock is not believed.
	future := []byte(`{"from":"marc@example.org","subject":"clock","text":"x","message_id":"<f1@example.org>","date":"2027-01-01T00:00:00Z"}`)
	if r3 := e.post(adapters.EmailPath, "application/json", future, bearer(key)).ok(t); r3.body["call_end"] != "2026-01-29T09:00:00.000Z" {
		t.Fatalf("future date: %s", r3.raw)
	}
}

func TestZendeskWebhook(t *testing.T) {
	e := newEnv(t, config{opts: adapters.Options{ZendeskSecret: []byte("zd-signing-secret")}})
	body := file(t, "testdata/zendesk-ticket.json")
	ts := e.clk.Now().UTC().Format(time.RFC3339)
	zd := func(b []byte) auth {
		return func(r *http.Request, _ []byte) {
			r.Header.Set(webhook.ZendeskTimestampHeader, ts)
			r.Header.Set(webhook.ZendeskSignatureHeader, webhook.SignZendesk([]byte("zd-signing-secret"), ts, b))
		}
	}
	r := e.post(adapters.ZendeskPath, "application/json", body, zd(body)).ok(t)
	if r.body["call_id"] != "zendesk_35436" || r.body["channel"] != "email" {
		t.Fatalf("answer: %s", r.raw)
	}
	ref := r.body["customer_ref"].(string)
	p := e.profile(ref)
	if len(p.OpenIntents) != 1 || p.OpenIntents[0].Intent != "ticket_35436" || p.Variables["ticket_id"].Value != "35436" ||
		!strings.HasPrefix(p.History[0].Summary, "Hello,\n\nthe parcel for order #4521 arrived today") {
		t.Fatalf("profile: %+v", p)
	}
	kinds := map[string]string{}
	for _, id := range p.Identifiers {
		kinds[id.Kind] = id.Value
	}
	if kinds["email"] != "customer@example.test" || kinds["phone"] != "+14155551234" || kinds["x.zendesk_user_id"] != "20978392" {
		t.Fatalf("identifiers: %+v", p.Identifiers)
	}
	// The ticket is solved: the same interaction is updated, the intent
	// resolved and gone from the open ones.
	e.clk.Add(26 * time.Hour)
	solved := bytes.Replace(body, []byte(`"status": "open"`), []byte(`"status": "solved"`), 1)
	solved = bytes.Replace(solved, []byte(`"updated_at": "2026-01-27T08:30:00Z"`), []byte(`"updated_at": "2026-01-28T10:00:00Z"`), 1)
	r = e.post(adapters.ZendeskPath, "application/json", solved, e.signed()).ok(t)
	if r.body["call_end"] != "2026-01-28T10:00:00.000Z" || r.body["customer_ref"] != ref {
		t.Fatalf("update: %s", r.raw)
	}
	p = e.profile(ref)
	if len(p.OpenIntents) != 0 || len(p.History) != 1 || p.History[0].IntentStatus != "resolved" || p.Variables["ticket_status"].Value != "solved" {
		t.Fatalf("after solved: %+v", p)
	}
	// A Zendesk signature on another adapter is refused.
	e.post(adapters.ChatPath, "application/json", body, zd(body)).envelope(t, 401)
}

func TestAuthentication(t *testing.T) {
	e := newEnv(t, config{})
	body := []byte(`{"session_id":"chat_auth_1","customer":{"email":"a@example.test"},"summary":"hi"}`)
	before := e.snapshot()
	now := e.clk.Now()
	for name, a := range map[string]auth{
		"missing":        noAuth,
		"unknown key":    bearer("wrong-key"),
		"stale":          signedAt(e, now.Add(-6*time.Minute), secret),
		"future":         signedAt(e, now.Add(6*time.Minute), secret),
		"forged":         signedAt(e, now, []byte("another secret")),
		"body changed":   func(r *http.Request, b []byte) { webhook.SignRequest(r, secret, now, append([]byte(" "), b...)) },
		"signature only": func(r *http.Request, _ []byte) { r.Header.Set(webhook.SignatureHeader, "sha256=00") },
		"timestamp only": func(r *http.Request, _ []byte) {
			r.Header.Set(webhook.TimestampHeader, strconv.FormatInt(now.Unix(), 10))
		},
		"malformed sig": func(r *http.Request, _ []byte) {
			r.Header.Set(webhook.TimestampHeader, "x")
			r.Header.Set(webhook.SignatureHeader, "md5=1")
		},
		"zendesk disabled": func(r *http.Request, _ []byte) { r.Header.Set(webhook.ZendeskSignatureHeader, "AAAA") },
	} {
		r := e.post(adapters.ChatPath, "application/json", body, a)
		if r.status != 401 || r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
		r.envelope(t, 401)
	}
	if e.snapshot() != before {
		t.Fatal("a refused request wrote to the store")
	}
	// Inside the window, either side of now.
	e.post(adapters.ChatPath, "application/json", body, signedAt(e, now.Add(-4*time.Minute), secret)).ok(t)
	e.post(adapters.ChatPath, "application/json", body, signedAt(e, now.Add(4*time.Minute), secret)).ok(t)
	// An API key works alone, and a wrong key with a good signature passes
	// on the signature.
	e.post(adapters.ChatPath, "application/json", body, bearer(key)).ok(t)
	e.post(adapters.ChatPath, "application/json", body, func(r *http.Request, b []byte) {
		bearer("wrong")(r, b)
		e.signed()(r, b)
	}).ok(t)
}

func TestAuthModes(t *testing.T) {
	body := []byte(`{"session_id":"chat_mode_1","customer":{"email":"a@example.test"},"summary":"hi"}`)
	// No keys, no secret: open like the rest of the API (loopback only).
	open := newEnv(t, config{noDefaultAuth: true})
	open.post(adapters.ChatPath, "", body, noAuth).ok(t)
	// ...but a signature that is present must still be right.
	open.post(adapters.ChatPath, "", body, signedAt(open, open.clk.Now(), secret)).envelope(t, 401)
	// No keys but a secret: signatures are required.
	sec := newEnv(t, config{noDefaultAuth: true, opts: adapters.Options{Secret: secret}})
	sec.post(adapters.ChatPath, "", body, noAuth).envelope(t, 401)
	sec.post(adapters.ChatPath, "", body, bearer("anything")).envelope(t, 401)
	sec.post(adapters.ChatPath, "", body, sec.signed()).ok(t)
	// Keys but no secret: keys only, signatures are refused.
	keys := newEnv(t, config{keys: []string{key}, noDefaultAuth: true})
	keys.post(adapters.ChatPath, "", body, keys.signed()).envelope(t, 401)
	keys.post(adapters.ChatPath, "", body, bearer(key)).ok(t)
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t, config{opts: adapters.Options{RatePerSecond: 0.001, Burst: 2}})
	body := []byte(`{"session_id":"chat_rl","customer":{"email":"a@example.test"},"summary":"hi"}`)
	e.post(adapters.ChatPath, "", body, bearer(key)).ok(t)
	e.post(adapters.ChatPath, "", body, bearer(key)).ok(t)
	r := e.post(adapters.ChatPath, "", body, bearer(key))
	r.envelope(t, 429)
	if r.header.Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
	// Signed senders have their own bucket.
	e.post(adapters.ChatPath, "", body, e.signed()).ok(t)
}

func TestRedeliveryIsIdempotent(t *testing.T) {
	e := newEnv(t, config{})
	raw := file(t, "email/testdata/reply.eml")
	first := e.post(adapters.EmailPath, "message/rfc822", raw, e.signed()).ok(t)
	snap := e.snapshot()
	e.clk.Add(time.Minute)
	again := e.post(adapters.EmailPath, "message/rfc822", raw, e.signed()).ok(t)
	if again.raw != first.raw || e.snapshot() != snap {
		t.Fatalf("redelivery changed something:\n%s\n%s", first.raw, again.raw)
	}
	chatBody := file(t, "testdata/chat-session.json")
	c1 := e.post(adapters.ChatPath, "application/json", chatBody, bearer(key)).ok(t)
	snap = e.snapshot()
	c2 := e.post(adapters.ChatPath, "application/json", chatBody, e.signed()).ok(t)
	if c1.raw != c2.raw || e.snapshot() != snap {
		t.Fatalf("chat redelivery changed something:\n%s\n%s", c1.raw, c2.raw)
	}
}

func TestThreadUpdateAndItsRedelivery(t *testing.T) {
	e := newEnv(t, config{})
	e.clk.Set(time.Date(2026, 1, 27, 10, 1, 0, 0, time.UTC))
	r1 := e.post(adapters.EmailPath+"?intent=refund_status", "message/rfc822", file(t, "email/testdata/reply.eml"), e.signed()).ok(t)
	ref := r1.body["customer_ref"].(string)
	// A later message of the same thread, from the same customer.
	e.clk.Add(3 * time.Hour)
	later := []byte("From: Jane Doe <customer@example.test>\r\nTo: support@shop.example\r\n" +
		"Subject: Re: [TKT-789] Refund for order #4521\r\nDate: Tue, 27 Jan 2026 13:00:00 +0000\r\n" +
		"Message-ID: <CAJane-004@mail.example.com>\r\nIn-Reply-To: <agent-003@shop.example>\r\n" +
		"References: <CAJane-000@mail.example.com> <agent-001@shop.example> <CAJane-002@mail.example.com> <agent-003@shop.example>\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n\r\nThe refund arrived, thank you!\r\n\r\nOn Tue, Jan 27, 2026 Shop wrote:\r\n> It was sent today.\r\n")
	r2 := e.post(adapters.EmailPath+"?intent=refund_status&intent_status=resolved", "message/rfc822", later, e.signed()).ok(t)
	if r2.body["call_id"] != r1.body["call_id"] || r2.body["customer_ref"] != ref || r2.body["call_end"] != "2026-01-27T13:00:00.000Z" {
		t.Fatalf("update: %s", r2.raw)
	}
	p := e.profile(ref)
	if len(p.History) != 1 || p.History[0].Summary != "[TKT-789] Refund for order #4521 — The refund arrived, thank you!" ||
		len(p.OpenIntents) != 0 || p.Intents[0].AttemptCount != 1 {
		t.Fatalf("thread after update: %+v", p)
	}
	ttl := p.Variables["summary"].TTLSeconds
	// Redelivering that later message changes nothing: the summary's TTL
	// keeps running down instead of starting over.
	snap := e.snapshot()
	e.clk.Add(time.Minute)
	r3 := e.post(adapters.EmailPath+"?intent=refund_status&intent_status=resolved", "message/rfc822", later, e.signed()).ok(t)
	if r3.raw != r2.raw || e.snapshot() != snap {
		t.Fatalf("redelivery of the update wrote: %s", r3.raw)
	}
	if got := e.profile(ref).Variables["summary"].TTLSeconds; got != ttl-60 {
		t.Fatalf("summary ttl %d, want %d", got, ttl-60)
	}
	// And the first message, delivered again late, is no conflict either.
	e.post(adapters.EmailPath+"?intent=refund_status", "message/rfc822", file(t, "email/testdata/reply.eml"), e.signed()).ok(t)
}

func TestMalformedInput(t *testing.T) {
	e := newEnv(t, config{})
	e.post(adapters.ChatPath, "", file(t, "testdata/chat-session.json"), bearer(key)).ok(t)
	before := e.snapshot()
	big := `{"session_id":"chat_big","customer":{"email":"a@example.test"},"summary":"` + strings.Repeat("x", 70<<10) + `"}`
	for _, tc := range []struct {
		name, path, ctype, body string
		status                  int
		issue                   []any
	}{
		{"chat not json", adapters.ChatPath, "application/json", `{"session_id":`, 400, []any{}},
		{"chat no session", adapters.ChatPath, "", `{"customer":{"email":"a@example.test"}}`, 400, []any{"session_id"}},
		{"chat no customer", adapters.ChatPath, "", `{"session_id":"chat_x"}`, 400, []any{"customer"}},
		{"chat bad transcript", adapters.ChatPath, "", `{"session_id":"chat_x","customer":{"email":"a@example.test"},"transcript":[{"from":"alien","text":"hi"}]}`, 400, []any{"transcript", 0.0, "from"}},
		{"chat bad time", adapters.ChatPath, "", `{"session_id":"chat_x","customer":{"email":"a@example.test"},"ended_at":"monday"}`, 400, []any{"ended_at"}},
		{"chat bad status", adapters.ChatPath, "", `{"session_id":"chat_x","customer":{"email":"a@example.test"},"intent":"x","intent_status":"done"}`, 400, []any{"intent_status"}},
		{"chat long session", adapters.ChatPath, "", `{"session_id":"chat_` + strings.Repeat("x", 130) + `","customer":{"email":"a@example.test"}}`, 400, []any{"session_id"}},
		{"chat only bad ids", adapters.ChatPath, "", `{"session_id":"chat_x","customer":{"email":"not-an-email","phone":"call me later"}}`, 400, []any{"customer", "email"}},
		{"chat nested variable", adapters.ChatPath, "", `{"session_id":"chat_x","customer":{"email":"a@example.test"},"summary":{"a":1}}`, 400, []any{"summary"}},
		{"chat xml", adapters.ChatPath, "application/xml", `<chat/>`, 415, nil},
		{"chat too big", adapters.ChatPath, "", big, 413, nil},
		{"email no from", adapters.EmailPath, "message/rfc822", "Subject: hi\r\n\r\nbody", 400, []any{"From"}},
		{"email not a message", adapters.EmailPath, "message/rfc822", "garbage without headers", 400, []any{}},
		{"email json bad from", adapters.EmailPath, "application/json", `{"from":"nobody"}`, 400, []any{"from"}},
		{"email bad intent status", adapters.EmailPath + "?intent=x&intent_status=maybe", "application/json", `{"from":"a@example.test"}`, 400, []any{"intent_status"}},
		{"email text/plain", adapters.EmailPath, "text/plain", "hi", 415, nil},
		{"zendesk no ticket", adapters.ZendeskPath, "", `{"id":1}`, 400, []any{"ticket"}},
		{"zendesk bad status", adapters.ZendeskPath, "", `{"ticket":{"id":1,"status":"exploded","requester":{"email":"a@example.test"}}}`, 400, []any{"ticket", "status"}},
		{"zendesk no requester", adapters.ZendeskPath, "", `{"ticket":{"id":1,"status":"open"}}`, 400, []any{"ticket", "requester"}},
		{"zendesk id object", adapters.ZendeskPath, "", `{"ticket":{"id":{"x":1},"requester":{"email":"a@example.test"}}}`, 400, []any{"ticket", "id"}},
		{"zendesk trailing", adapters.ZendeskPath, "", `{"ticket":{}} {}`, 400, []any{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.post(tc.path, tc.ctype, []byte(tc.body), bearer(key))
			if tc.issue == nil {
				r.envelope(t, tc.status)
			} else {
				r.envelope(t, tc.status, tc.issue...)
			}
			if e.snapshot() != before {
				t.Fatal("a bad request wrote to the store")
			}
		})
	}
}

func TestUnusableIdentifierIsReported(t *testing.T) {
	e := newEnv(t, config{})
	r := e.post(adapters.ChatPath, "", []byte(`{"session_id":"chat_ign","customer":{"email":"a@example.test","phone":"call me after 5"},"summary":"hi"}`), bearer(key)).ok(t)
	ign, _ := r.body["ignored"].([]any)
	if len(ign) != 1 || !strings.Contains(r.raw, `"path":["customer","phone"]`) {
		t.Fatalf("ignored: %s", r.raw)
	}
}

func TestRawEmailSizeLimit(t *testing.T) {
	e := newEnv(t, config{opts: adapters.Options{MaxEmailBytes: 128 << 10}})
	raw := file(t, "email/testdata/reply.eml")
	// A 100 KiB attachment passes the limit for raw mail (not the JSON one).
	pad := "--000000000000mixed01\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment\r\n\r\n" + strings.Repeat("QUJD", 25<<10) + "\r\n"
	withAttachment := bytes.Replace(raw, []byte("--000000000000mixed01--"), []byte(pad+"--000000000000mixed01--"), 1)
	e.post(adapters.EmailPath, "message/rfc822", withAttachment, bearer(key)).ok(t)
	huge := bytes.Replace(raw, []byte("--000000000000mixed01--"), []byte(pad+pad+"--000000000000mixed01--"), 1)
	e.post(adapters.EmailPath, "message/rfc822", huge, bearer(key)).envelope(t, 413)
}

// TestJourney is the contract's multi-channel journey through the
// adapters: chat Monday, email Tuesday, and a phone call Wednesday whose
// start shows both.
func TestJourney(t *testing.T) {
	e := newEnv(t, config{})
	e.clk.Set(time.Date(2026, 1, 26, 14, 13, 0, 0, time.UTC)) // Monday
	chat := e.post(adapters.ChatPath, "application/json", file(t, "testdata/chat-session.json"), e.signed()).ok(t)
	e.clk.Set(time.Date(2026, 1, 27, 10, 0, 4, 0, time.UTC)) // Tuesday
	mail := e.post(adapters.EmailPath+"?intent=refund_status", "message/rfc822", file(t, "email/testdata/reply.eml"), e.signed()).ok(t)
	if mail.body["customer_ref"] != chat.body["customer_ref"] {
		t.Fatalf("the email's sender was not found as the chat's customer: %s vs %s", mail.raw, chat.raw)
	}
	e.clk.Set(time.Date(2026, 1, 28, 15, 0, 0, 0, time.UTC)) // Wednesday
	req, _ := http.NewRequest("POST", e.url+"/v1/calls/start", strings.NewReader(`{"call_id":"phone_call_789","identity_hints":{"ani":"+1 415-555-1234"}}`))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var start core.StartResult
	if err := json.NewDecoder(resp.Body).Decode(&start); err != nil || resp.StatusCode != 200 {
		t.Fatalf("start: %d %v", resp.StatusCode, err)
	}
	if start.CustomerRef != chat.body["customer_ref"] {
		t.Fatalf("the phone call found %q, not the chat's customer", start.CustomerRef)
	}
	if len(start.History) != 2 || start.History[0].CallID != "email_CAJane-000@mail.example.com" || start.History[0].Channel != "email" ||
		start.History[1].CallID != "chat_session_123" || start.History[1].Channel != "chat" {
		t.Fatalf("history: %+v", start.History)
	}
	if len(start.OpenIntents) != 2 || start.OpenIntents[0].Intent != "refund_status" || start.OpenIntents[1].Intent != "billing_inquiry" {
		t.Fatalf("open intents: %+v", start.OpenIntents)
	}
	if start.Headline != "Chatted Mon about billing_inquiry · emailed Tue about refund_status" {
		t.Fatalf("headline: %q", start.Headline)
	}
	if start.Variables["ticket_id"].Value != "TKT-789" || !strings.HasPrefix(start.Variables["summary"].Value, "[TKT-789] Refund for order #4521") {
		t.Fatalf("variables: %+v", start.Variables)
	}
	if start.Identity.Recommendation == core.RecommendIgnore {
		t.Fatalf("identity: %+v", start.Identity)
	}
}

func TestConcurrentDeliveries(t *testing.T) {
	e := newEnv(t, config{})
	first := []byte(`{"session_id":"chat_conc","customer":{"email":"c@example.test"},"summary":"first","intent":"x"}`)
	later := []byte(`{"session_id":"chat_conc","customer":{"email":"c@example.test"},"summary":"reopened","intent":"x"}`)
	e.post(adapters.ChatPath, "", first, bearer(key)).ok(t)
	var wg sync.WaitGroup
	answers := make([]string, 8)
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", e.url+adapters.ChatPath, bytes.NewReader(later))
			req.Header.Set("Authorization", "Bearer "+key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			answers[i] = strconv.Itoa(resp.StatusCode) + " " + string(b)
		}()
	}
	wg.Wait()
	for _, a := range answers {
		if a != answers[0] || !strings.HasPrefix(a, "200 ") {
			t.Fatalf("answers differ:\n%s\n%s", answers[0], a)
		}
	}
	e.clk.Add(time.Hour)
	p := e.profile(strings.Split(strings.Split(answers[0], `"customer_ref":"`)[1], `"`)[0])
	if len(p.History) != 1 || p.History[0].Summary != "reopened" || p.Intents[0].AttemptCount != 1 {
		t.Fatalf("after concurrent redeliveries: %+v", p)
	}
}

func TestOwnAddressesAreSkipped(t *testing.T) {
	e := newEnv(t, config{opts: adapters.Options{OwnAddresses: []string{"@shop.example"}}})
	before := e.snapshot()
	out := []byte("From: Shop Support <support@shop.example>\r\nTo: customer@example.test\r\nSubject: Re: refund\r\n" +
		"Message-ID: <agent-001@shop.example>\r\nIn-Reply-To: <CAJane-000@mail.example.com>\r\n\r\nYour refund has been issued.\r\n")
	r := e.post(adapters.EmailPath, "message/rfc822", out, bearer(key))
	if r.status != 202 || r.body["skipped"] != true || e.snapshot() != before {
		t.Fatalf("own mail: %d %s", r.status, r.raw)
	}
	e.post(adapters.EmailPath, "message/rfc822", file(t, "email/testdata/reply.eml"), bearer(key)).ok(t)
}
