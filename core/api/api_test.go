package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/core/api"
	"github.com/sticky-cc/sticky/core/api/apitest"
	"github.com/sticky-cc/sticky/core/store"
	"github.com/sticky-cc/sticky/core/store/storetest"
)

const key = "test-key-0123456789"

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type env struct {
	t   *testing.T
	srv *httptest.Server
	clk *clock
	db  *store.DB
	e   *core.Engine
	api *api.Server
}

func newEnv(t *testing.T, opts api.Options) *env {
	t.Helper()
	return newEnvWith(t, opts, nil)
}

// newEnvWith builds the server as newEnv does and lets mount add routes
// (the adapters) before it serves. Every exchange is held to the OpenAPI
// document (apitest.Handler).
func newEnvWith(t *testing.T, opts api.Options, mount func(*api.Server, core.Calls, *clock)) *env {
	t.Helper()
	return build(t, opts, mount, true)
}

// newEnvWithTestRoutes is newEnvWith for tests that mount routes of their
// own, which the document does not have.
func newEnvWithTestRoutes(t *testing.T, opts api.Options, mount func(*api.Server, core.Calls, *clock)) *env {
	t.Helper()
	return build(t, opts, mount, false)
}

func build(t *testing.T, opts api.Options, mount func(*api.Server, core.Calls, *clock), checked bool) *env {
	t.Helper()
	db, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	clk := &clock{t: time.Date(2026, 2, 6, 15, 30, 0, 0, time.UTC)}
	e := core.New(core.Options{Store: db, Now: clk.Now})
	opts.Engine = e
	if opts.Keys == nil && opts.NamedKeys == nil {
		opts.Keys = []string{key}
	}
	s := api.New(opts)
	if mount != nil {
		mount(s, e, clk)
	}
	var h http.Handler = s
	if checked {
		h = apitest.Handler(t, s, docOptions(opts))
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &env{t, srv, clk, db, e, s}
}

// docOptions tells the document check which keys the server has.
func docOptions(opts api.Options) apitest.Options {
	keys := map[string][]api.Scope{}
	for _, k := range opts.Keys {
		if k != "" {
			keys[k] = nil
		}
	}
	for _, k := range opts.NamedKeys {
		secret := k.Secret
		if secret == "" {
			secret = secretOf[k.Name] // a key configured by its hash
		}
		keys[secret] = k.Scopes
	}
	return apitest.Options{Keys: keys, Open: len(keys) == 0}
}

type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (e *env) do(method, path, body string, hdr ...string) reply {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
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

func (r reply) errorEnvelope(t *testing.T, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	if r.body["error"] != http.StatusText(status) || r.body["message"] == "" || r.body["message"] == nil {
		t.Fatalf("not the error envelope: %s", r.raw)
	}
}

func TestStartResponseShape(t *testing.T) {
	e := newEnv(t, api.Options{})
	r := e.do("POST", "/v1/calls/start", `{"call_id":"phone_call_789","identity_hints":{"ani":"+1 415-555-1234","dnis":"5551000"},"telco":{"line_type":"mobile"}}`)
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	for _, k := range []string{"call_id", "customer_ref", "call_start", "identity", "open_intents", "variables", "history", "headline"} {
		if _, ok := r.body[k]; !ok {
			t.Errorf("response lacks %q: %s", k, r.raw)
		}
	}
	if r.body["call_start"] != "2026-02-06T15:30:00.000Z" {
		t.Errorf("call_start = %v", r.body["call_start"])
	}
	id := r.body["identity"].(map[string]any)
	if id["confidence"] != 0.0 || id["level"] != "low" || id["recommendation"] != "ignore" {
		t.Errorf("unknown caller identity = %v", id)
	}
	if !strings.HasPrefix(r.body["customer_ref"].(string), "cust_") {
		t.Errorf("customer_ref = %v", r.body["customer_ref"])
	}
}

func TestLegacyBodyAndIntentIsOpen(t *testing.T) {
	e := newEnv(t, api.Options{})
	r := e.do("POST", "/v1/calls/start", `{"call_id":"legacy-1","ani":"4155551234","external_ids":{"crm_id":"42"}}`)
	if r.status != 200 {
		t.Fatalf("legacy start: %d %s", r.status, r.raw)
	}
	ref := r.body["customer_ref"].(string)
	e.clk.Add(3 * time.Minute)
	r = e.do("POST", "/v1/calls/end", `{"call_id":"legacy-1","intent":"cancel","intent_is_open":true,"variables":{"summary":"wants to cancel","vip":true,"score":7.5}}`)
	if r.status != 200 || r.body["customer_ref"] != ref || r.body["duration_seconds"] != 180.0 || r.body["intents_updated"] != 1.0 || r.body["variables_updated"] != 3.0 {
		t.Fatalf("end: %d %s", r.status, r.raw)
	}
	for _, k := range []string{"call_id", "customer_ref", "call_start", "call_end", "duration_seconds", "intents_updated", "variables_updated"} {
		if _, ok := r.body[k]; !ok {
			t.Errorf("end response lacks %q", k)
		}
	}
	r = e.do("GET", "/v1/customers/"+ref, "")
	if r.status != 200 {
		t.Fatalf("get: %d %s", r.status, r.raw)
	}
	vars := r.body["variables"].(map[string]any)
	if vars["vip"].(map[string]any)["value"] != "true" || vars["score"].(map[string]any)["value"] != "7.5" {
		t.Fatalf("numbers and booleans not stored as strings: %v", vars)
	}
	open := r.body["open_intents"].([]any)
	if len(open) != 1 || open[0].(map[string]any)["status"] != "open" {
		t.Fatalf("open intents = %v", open)
	}
	// intent_is_open:false resolves it
	r = e.do("POST", "/v1/calls/end", `{"call_id":"legacy-2","customer_ref":"`+ref+`","intent":"cancel","intent_is_open":false}`)
	if r.status != 200 {
		t.Fatal(r.raw)
	}
	if r = e.do("GET", "/v1/customers/"+ref, ""); len(r.body["open_intents"].([]any)) != 0 {
		t.Fatalf("intent_is_open:false did not resolve: %s", r.raw)
	}
}

func TestAuth(t *testing.T) {
	e := newEnv(t, api.Options{Keys: []string{"first-key", key}})
	body := `{"call_id":"a","identity_hints":{"ani":"+14155551234"}}`
	e.do("POST", "/v1/calls/start", body, "Authorization", "").errorEnvelope(t, 401)
	e.do("POST", "/v1/calls/start", body, "Authorization", "Bearer wrong").errorEnvelope(t, 401)
	e.do("POST", "/v1/calls/start", body, "Authorization", "Basic "+key).errorEnvelope(t, 401)
	e.do("POST", "/v1/calls/start", body, "Authorization", "Bearer "+key+"x").errorEnvelope(t, 401)
	if r := e.do("POST", "/v1/calls/start", body, "Authorization", "Bearer first-key"); r.status != 200 {
		t.Fatalf("second configured key refused: %s", r.raw)
	}
	e.do("GET", "/v1/customers/x", "", "Authorization", "").errorEnvelope(t, 401)
	// health needs no key
	if r := e.do("GET", "/healthz", "", "Authorization", ""); r.status != 200 {
		t.Fatalf("healthz: %d", r.status)
	}
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t, api.Options{RatePerSecond: 0.001, Burst: 3})
	body := `{"call_id":"rl","identity_hints":{"ani":"+14155551234"}}`
	for i := range 3 {
		if r := e.do("POST", "/v1/calls/start", body); r.status != 200 {
			t.Fatalf("request %d: %d", i, r.status)
		}
	}
	r := e.do("POST", "/v1/calls/start", body)
	r.errorEnvelope(t, 429)
	if ra := r.header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Fatalf("Retry-After = %q", ra)
	}
}

func TestRoutingErrorsUseTheEnvelope(t *testing.T) {
	e := newEnv(t, api.Options{})
	e.do("GET", "/v1/calls/start", "").errorEnvelope(t, 405)
	e.do("GET", "/v1/nothing", "").errorEnvelope(t, 404)
	e.do("GET", "/v1/customers/cust_unknown", "").errorEnvelope(t, 404)
	e.do("DELETE", "/v1/customers/cust_unknown", "").errorEnvelope(t, 404)
	e.do("POST", "/v1/calls/start", `{}`, "Content-Type", "text/plain").errorEnvelope(t, 415)
	big := `{"call_id":"big","identity_hints":{"ani":"+14155551234"},"pad":"` + strings.Repeat("x", 70<<10) + `"}`
	e.do("POST", "/v1/calls/start", big).errorEnvelope(t, 413)
}

func TestCustomerEndpoints(t *testing.T) {
	e := newEnv(t, api.Options{})
	for _, b := range []string{
		`{"call_id":"c1","customer_ref":"cust_one","identity_hints":{"ani":"+14155550001"},"intent":"a"}`,
		`{"call_id":"c2","customer_ref":"cust_two","identity_hints":{"external_ids":{"email":"two@example.test"}},"intent":"a"}`,
	} {
		if r := e.do("POST", "/v1/calls/end", b); r.status != 200 {
			t.Fatal(r.raw)
		}
	}
	r := e.do("POST", "/v1/customers/cust_one/merge", `{"from":"cust_two"}`)
	if r.status != 200 || len(r.body["history"].([]any)) != 2 {
		t.Fatalf("merge: %d %s", r.status, r.raw)
	}
	e.do("POST", "/v1/customers/cust_one/merge", `{}`).errorEnvelope(t, 400)
	if r := e.do("DELETE", "/v1/customers/cust_one/identifiers/email/two@example.test", ""); r.status != 200 {
		t.Fatalf("unlink: %d %s", r.status, r.raw)
	}
	e.do("DELETE", "/v1/customers/cust_one/identifiers/email/two@example.test", "").errorEnvelope(t, 404)
	if r := e.do("DELETE", "/v1/customers/cust_one", ""); r.status != 200 {
		t.Fatalf("delete: %d %s", r.status, r.raw)
	}
	e.do("GET", "/v1/customers/cust_one", "").errorEnvelope(t, 404)
	r = e.do("POST", "/v1/calls/start", `{"call_id":"c9","identity_hints":{"ani":"+14155550001"}}`)
	if r.status != 200 || r.body["customer_ref"] == "cust_one" {
		t.Fatalf("erased number still found: %s", r.raw)
	}
}

func TestIdempotencyOverHTTP(t *testing.T) {
	e := newEnv(t, api.Options{})
	start := `{"call_id":"idem","identity_hints":{"ani":"+14155551234"}}`
	a := e.do("POST", "/v1/calls/start", start)
	b := e.do("POST", "/v1/calls/start", start)
	if a.status != 200 || a.raw != b.raw {
		t.Fatalf("retried start differs:\n%s\n%s", a.raw, b.raw)
	}
	e.do("POST", "/v1/calls/start", `{"call_id":"idem","identity_hints":{"ani":"+14155550000"}}`).errorEnvelope(t, 409)
	end := `{"call_id":"idem","intent":"x","variables":{"summary":"s"}}`
	a, b = e.do("POST", "/v1/calls/end", end), e.do("POST", "/v1/calls/end", end)
	if a.status != 200 || a.raw != b.raw {
		t.Fatalf("retried end differs:\n%s\n%s", a.raw, b.raw)
	}
	e.do("POST", "/v1/calls/end", `{"call_id":"idem","intent":"y"}`).errorEnvelope(t, 409)
	e.do("POST", "/v1/calls/start", start).errorEnvelope(t, 409)
}

func TestNoKeysRequiresLoopback(t *testing.T) {
	s := api.New(api.Options{Engine: nil, Keys: nil})
	for _, addr := range []string{"127.0.0.1:8080", "[::1]:8080", "localhost:0", "127.0.0.2:1"} {
		if err := s.CheckAddr(addr); err != nil {
			t.Errorf("%s: %v", addr, err)
		}
	}
	for _, addr := range []string{"0.0.0.0:8080", ":8080", "10.1.2.3:80", "[::]:8080", "example.com:80"} {
		if err := s.CheckAddr(addr); err == nil {
			t.Errorf("%s accepted without keys", addr)
		}
	}
	if err := api.New(api.Options{Keys: []string{"k"}}).CheckAddr("0.0.0.0:8080"); err != nil {
		t.Errorf("with keys: %v", err)
	}
}

// dump renders every key and value of the store, in key order.

func TestBadRequestsChangeNothing(t *testing.T) {
	e := newEnv(t, api.Options{})
	snapshot := func() string { return storetest.Dump(t, e.db) }
	// one good customer so that the store is not empty
	if r := e.do("POST", "/v1/calls/end", `{"call_id":"seed","customer_ref":"cust_seed","identity_hints":{"ani":"+14155550001"}}`); r.status != 200 {
		t.Fatal(r.raw)
	}
	before := snapshot()
	long := strings.Repeat("x", 129)
	manyVars := func(n int) string {
		var b strings.Builder
		b.WriteString(`{"call_id":"v","customer_ref":"cust_seed","variables":{`)
		for i := range n {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(`"v` + strings.Repeat("1", i%5) + string(rune('a'+i%26)) + string(rune('a'+i/26)) + `":"x"`)
		}
		b.WriteString("}}")
		return b.String()
	}
	cases := []struct{ path, body string }{
		{"start", ``},
		{"start", `not json`},
		{"start", `[]`},
		{"start", `"string"`},
		{"start", `{"call_id":"a"}`},
		{"start", `{"call_id":"a","identity_hints":{}}`},
		{"start", `{"call_id":"a","identity_hints":"+14155551234"}`},
		{"start", `{"call_id":"","identity_hints":{"ani":"+14155551234"}}`},
		{"start", `{"identity_hints":{"ani":"+14155551234"}}`},
		{"start", `{"call_id":12,"identity_hints":{"ani":"+14155551234"}}`},
		{"start", `{"call_id":"` + long + `","identity_hints":{"ani":"+14155551234"}}`},
		{"start", `{"call_id":"a\u0000b","identity_hints":{"ani":"+14155551234"}}`},
		{"start", `{"call_id":"a\u202eb","identity_hints":{"ani":"+14155551234"}}`},
		{"start", `{"call_id":"a\u200bb","identity_hints":{"ani":"+14155551234"}}`},
		{"start", `{"call_id":"a","identity_hints":{"ani":"call me maybe"}}`},
		{"start", `{"call_id":"a","identity_hints":{"ani":"` + long + `"}}`},
		{"start", `{"call_id":"a","identity_hints":{"ani":12}}`},
		{"start", `{"call_id":"a","identity_hints":{"external_ids":{"email":"not-an-email"}}}`},
		{"start", `{"call_id":"a","identity_hints":{"external_ids":{"email":{"nested":true}}}}`},
		{"start", `{"call_id":"a","identity_hints":{"external_ids":{"bad key!":"1"}}}`},
		{"start", `{"call_id":"a","identity_hints":{"external_ids":{"crm_id":"` + long + `"}}}`},
		{"start", `{"call_id":"a","identity_hints":{"external_ids":["x"]}}`},
		{"start", `{"call_id":"a","identity_hints":{"ani":"+14155551234"},"telco":{"line_type":"satellite"}}`},
		{"start", `{"call_id":"a","identity_hints":{"ani":"+14155551234"},"channel":"Phone Call!"}`},
		{"start", `{"call_id":"a","identity_hints":{"ani":"+14155551234"}} trailing`},
		{"start", `{"call_id":"a","identity_hints":{"customer_ref":"x\u0007"}}`},
		{"start", strings.Repeat("[", 5000) + strings.Repeat("]", 5000)},
		{"end", `{}`},
		{"end", `{"call_id":"e1"}`},
		{"end", `{"call_id":"e1","customer_ref":"cust_seed","intent_status":"done","intent":"x"}`},
		{"end", `{"call_id":"e1","customer_ref":"cust_seed","intent_status":"open"}`},
		{"end", `{"call_id":"e1","customer_ref":"cust_seed","intent":"x","intent_status":"resolved","intent_is_open":true}`},
		{"end", `{"call_id":"e1","customer_ref":"cust_seed","intent_is_open":"yes","intent":"x"}`},
		{"end", `{"call_id":"e1","customer_ref":"cust_seed","variables":{"a":{"b":1}}}`},
		{"end", `{"call_id":"e1","customer_ref":"cust_seed","variables":{"a":[1]}}`},
		{"end", `{"call_id":"e1","customer_ref":"cust_seed","variables":{"a":null}}`},
		{"end", `{"call_id":"e1","customer_ref":"cust_seed","variables":{"bad name":"x"}}`},
		{"end", `{"call_id":"e1","customer_ref":"cust_seed","variables":{"x;DROP TABLE":"x"}}`},
		{"end", `{"call_id":"e1","customer_ref":"cust_seed","variables":{"` + strings.Repeat("n", 65) + `":"x"}}`},
		{"end", `{"call_id":"e1","customer_ref":"cust_seed","variables":{"big":"` + strings.Repeat("x", 4097) + `"}}`},
		{"end", manyVars(101)},
		{"end", `{"call_id":"e1","customer_ref":"cust_seed","variables":"summary"}`},
		{"end", `{"call_id":"e1","customer_ref":"cust_seed","ttl_seconds":0}`},
		{"end", `{"call_id":"e1","customer_ref":"cust_seed","ttl_seconds":-5}`},
		{"end", `{"call_id":"e1","customer_ref":"cust_seed","ttl_seconds":7776001}`},
		{"end", `{"call_id":"e1","customer_ref":"cust_seed","ttl_seconds":1e99}`},
		{"end", `{"call_id":"e1","customer_ref":"cust_seed","ttl_seconds":"60"}`},
		{"end", `{"call_id":"e1","customer_ref":"cust_seed","ttl_seconds":1.5}`},
		{"end", `{"call_id":"e1","customer_ref":"` + long + `"}`},
		{"end", `{"call_id":"e1","customer_ref":"cust_seed","started_at":"yesterday"}`},
		{"end", `{"call_id":"e1","customer_ref":"cust_seed","started_at":"2026-02-06T15:00:00Z","ended_at":"2026-02-06T14:00:00Z"}`},
		{"end", `{"call_id":"e1","customer_ref":"cust_seed","channel":"ch@t"}`},
		{"end", `{"call_id":"e1","customer_ref":"cust_seed","intent":"` + strings.Repeat("i", 129) + `"}`},
		{"end", `{"call_id":"e1","identity_hints":{"ani":"not a number"}}`},
		{"end", `{"call_id":"e1","customer_ref":"cust_seed","variables":{"summary":"\xff\xfe"}}`},
	}
	if len(cases) < 50 {
		t.Fatalf("only %d cases", len(cases))
	}
	for i, tc := range cases {
		r := e.do("POST", "/v1/calls/"+tc.path, tc.body)
		if r.status != 400 {
			t.Errorf("case %d (%s %.60q): status %d, want 400: %.200s", i, tc.path, tc.body, r.status, r.raw)
			continue
		}
		r.errorEnvelope(t, 400)
	}
	if snapshot() != before {
		t.Fatal("a rejected request changed the store")
	}
}

func TestStatsEndpoint(t *testing.T) {
	e := newEnv(t, api.Options{})
	if r := e.do("POST", "/v1/calls/end", `{"call_id":"x","customer_ref":"c","channel":"chat","intent":"a","ended_at":"2026-02-06T15:00:00Z"}`); r.status != 200 {
		t.Fatal(r.raw)
	}
	r := e.do("GET", "/v1/stats?from=2026-02-06T00:00:00Z&to=2026-02-07T00:00:00Z", "")
	if r.status != 200 || r.body["total_contacts"] != 1.0 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	e.do("GET", "/v1/stats?window=forever", "").errorEnvelope(t, 400)
	e.do("GET", "/v1/stats?from=2026-02-07T00:00:00Z&to=2026-02-06T00:00:00Z", "").errorEnvelope(t, 400)
	e.do("GET", "/v1/stats", "", "Authorization", "").errorEnvelope(t, 401)
}
