package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sticky-cc/sticky/adapters"
	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/core/api"
	"github.com/sticky-cc/sticky/core/store/storetest"
)

// One key per scope, and a plain key that holds them all.
var scopedKeys = []api.Key{
	{Name: "ingest-key", Scopes: []api.Scope{api.ScopeIngest}, Secret: "secret-ingest-0123456789"},
	{Name: "calls-key", Scopes: []api.Scope{api.ScopeCalls}, Secret: "secret-calls-0123456789"},
	{Name: "read-key", Scopes: []api.Scope{api.ScopeRead}, Secret: "secret-read-0123456789"},
	{Name: "admin-key", Scopes: []api.Scope{api.ScopeAdmin}, SHA256: sha256hex("secret-admin-0123456789")},
}

var secretOf = map[string]string{
	"ingest-key": "secret-ingest-0123456789",
	"calls-key":  "secret-calls-0123456789",
	"read-key":   "secret-read-0123456789",
	"admin-key":  "secret-admin-0123456789",
	"key-1":      key, // plain: every scope
}

// scopeRoutes is every route of the server with the adapters mounted, a
// request that succeeds with the right key, and the scopes that may call
// it. TestEveryRouteIsInTheScopeTable keeps it complete.
var scopeRoutes = []struct {
	method, path, ctype, body string
	scopes                    []api.Scope
	once                      bool // succeeds once per store (erase, merge, unlink)
}{
	{"POST", "/v1/calls/start", "application/json", `{"call_id":"s1","identity_hints":{"ani":"+14155550001"}}`, []api.Scope{api.ScopeCalls}, false},
	{"POST", "/v1/calls/end", "application/json", `{"call_id":"e1","customer_ref":"cust_seed","intent":"x"}`, []api.Scope{api.ScopeCalls, api.ScopeIngest}, false},
	{"POST", "/v1/calls/seed1/identify", "application/json", `{"customer_ref":"cust_seed"}`, []api.Scope{api.ScopeCalls}, false},
	{"GET", "/v1/customers/cust_seed", "", "", []api.Scope{api.ScopeRead}, false},
	{"GET", "/v1/stats", "", "", []api.Scope{api.ScopeRead}, false},
	{"DELETE", "/v1/customers/cust_seed", "", "", []api.Scope{api.ScopeAdmin}, true},
	{"POST", "/v1/customers/cust_seed/merge", "application/json", `{"from":"cust_other"}`, []api.Scope{api.ScopeAdmin}, true},
	{"DELETE", "/v1/customers/cust_seed/identifiers/email/seed@example.test", "", "", []api.Scope{api.ScopeAdmin}, true},
	{"GET", "/v1/customers/cust_seed/access", "", "", []api.Scope{api.ScopeAdmin}, false},
	{"POST", "/v1/import", "application/json", `{"rows":[{"line":2,"customer_id":"C-9","emails":["nine@example.test"]}]}`, []api.Scope{api.ScopeAdmin}, false},
	{"GET", "/v1/import/seed_import", "", "", []api.Scope{api.ScopeAdmin}, false},
	{"POST", "/v1/adapters/chat", "application/json", `{"session_id":"chat_1","customer":{"email":"seed@example.test"},"summary":"Asked about a refund"}`, []api.Scope{api.ScopeIngest}, false},
	{"POST", "/v1/adapters/email", "application/json", `{"from":"seed@example.test","subject":"Refund","text":"Where is my refund?","message_id":"<m1@example.test>"}`, []api.Scope{api.ScopeIngest}, false},
	{"POST", "/v1/adapters/zendesk", "application/json", `{"ticket":{"id":7,"status":"open","subject":"Refund","requester":{"email":"seed@example.test"}}}`, []api.Scope{api.ScopeIngest}, false},
}

// withAdapters mounts the chat, email and Zendesk endpoints as the bridges do.
func withAdapters(t *testing.T) func(*api.Server, core.Calls, *clock) {
	return func(s *api.Server, c core.Calls, clk *clock) {
		if err := adapters.Mount(s, adapters.Options{Calls: c, Now: clk.Now}); err != nil {
			t.Fatal(err)
		}
	}
}

func newScopedEnv(t *testing.T) *env {
	t.Helper()
	e := newEnvWith(t, api.Options{Keys: []string{key}, NamedKeys: scopedKeys}, withAdapters(t))
	for _, b := range []string{
		`{"call_id":"seed1","customer_ref":"cust_seed","identity_hints":{"external_ids":{"email":"seed@example.test"}}}`,
		`{"call_id":"seed2","customer_ref":"cust_other","identity_hints":{"ani":"+14155550002"}}`,
	} {
		if r := e.do("POST", "/v1/calls/end", b); r.status != 200 {
			t.Fatalf("seed: %s", r.raw)
		}
	}
	// an import under way, for GET /v1/import/{source}
	if r := e.do("POST", "/v1/import", `{"source":"seed_import","offset":40,"line":2,"rows_done":1,"rows":[{"line":2,"customer_ref":"cust_imported"}]}`); r.status != 200 {
		t.Fatalf("seed import: %s", r.raw)
	}
	return e
}

// Every route against a key of every scope, through the real server: a key
// without the route's scope gets 403 naming the scopes and changes nothing;
// a key with it (or a plain key) gets through.
func TestScopesOfEveryRoute(t *testing.T) {
	denied := newScopedEnv(t)
	before := storetest.Dump(t, denied.db)
	for _, rt := range scopeRoutes {
		var allowedEnv *env // shared by the keys allowed on this route, unless it succeeds only once
		for _, k := range append(slices.Clone(scopedKeys), api.Key{Name: "key-1"}) {
			allowed := k.Scopes == nil || slices.ContainsFunc(k.Scopes, func(s api.Scope) bool { return slices.Contains(rt.scopes, s) })
			name := rt.method + " " + rt.path + " with " + k.Name
			if !allowed {
				r := denied.do(rt.method, rt.path, rt.body, "Authorization", "Bearer "+secretOf[k.Name], "Content-Type", rt.ctype)
				r.errorEnvelope(t, 403)
				var need []string
				for _, s := range rt.scopes {
					need = append(need, string(s))
				}
				got, _ := r.body["details"].(map[string]any)["required_scopes"].([]any)
				if len(got) != len(need) || !strings.Contains(r.body["message"].(string), `"`+need[0]+`"`) ||
					!strings.Contains(r.body["message"].(string), `"`+k.Name+`"`) {
					t.Errorf("%s: 403 does not name the key and the scopes %v: %s", name, need, r.raw)
				}
				for i := range got {
					if got[i] != need[i] {
						t.Errorf("%s: required_scopes %v, want %v", name, got, need)
					}
				}
				if h := r.header.Get("WWW-Authenticate"); !strings.Contains(h, `error="insufficient_scope"`) || !strings.Contains(h, `scope="`+strings.Join(need, " ")+`"`) {
					t.Errorf("%s: WWW-Authenticate %q", name, h)
				}
				continue
			}
			if allowedEnv == nil || rt.once {
				allowedEnv = newScopedEnv(t)
			}
			r := allowedEnv.do(rt.method, rt.path, rt.body, "Authorization", "Bearer "+secretOf[k.Name], "Content-Type", rt.ctype)
			if r.status != 200 {
				t.Errorf("%s: status %d: %s", name, r.status, r.raw)
			}
		}
	}
	if storetest.Dump(t, denied.db) != before {
		t.Fatal("a request refused for its scope changed the store")
	}
}

// The table above covers every route that needs a key.
func TestEveryRouteIsInTheScopeTable(t *testing.T) {
	for _, r := range newScopedEnv(t).api.Routes() {
		if len(r.Scopes) == 0 {
			continue
		}
		method, path, _ := strings.Cut(r.Pattern, " ")
		found := false
		for _, rt := range scopeRoutes {
			if rt.method == method && routeMatches(path, rt.path) {
				found = true
				if !slices.Equal(rt.scopes, r.Scopes) {
					t.Errorf("%s: table says %v, the server %v", r.Pattern, rt.scopes, r.Scopes)
				}
			}
		}
		if !found {
			t.Errorf("%s is not in scopeRoutes", r.Pattern)
		}
	}
}

// routeMatches reports whether a concrete path fits a mux pattern's path.
func routeMatches(pattern, path string) bool {
	ps, xs := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(ps) != len(xs) {
		return false
	}
	for i := range ps {
		if !strings.HasPrefix(ps[i], "{") && ps[i] != xs[i] {
			return false
		}
	}
	return true
}

// nameRecorder is the real engine, noting the key name of each end it is
// asked for, so the test sees what a later access log would record.
type nameRecorder struct {
	core.Calls
	mu    sync.Mutex
	names []string
}

func (n *nameRecorder) End(ctx context.Context, req core.EndRequest) (*core.EndResult, error) {
	n.mu.Lock()
	n.names = append(n.names, api.KeyName(ctx))
	n.mu.Unlock()
	return n.Calls.End(ctx, req)
}

// A request carries the name of the key that authenticated it: handlers
// (and the engine behind them) read it with api.KeyName.
func TestRequestsCarryTheKeyName(t *testing.T) {
	rec := &nameRecorder{}
	e := newEnvWithTestRoutes(t, api.Options{Keys: []string{key}, NamedKeys: scopedKeys}, func(s *api.Server, c core.Calls, clk *clock) {
		rec.Calls = c
		if err := adapters.Mount(s, adapters.Options{Calls: rec, Now: clk.Now}); err != nil {
			t.Fatal(err)
		}
		whoami := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, api.KeyName(r.Context())) })
		s.Handle("GET /test/whoami", whoami, api.ScopeRead, api.ScopeCalls)
		s.Handle("GET /test/admin", whoami) // no scope named: administrative
	})
	for k, want := range map[string]string{"read-key": "read-key", "calls-key": "calls-key", "key-1": "key-1"} {
		if r := e.do("GET", "/test/whoami", "", "Authorization", "Bearer "+secretOf[k]); r.status != 200 || r.raw != want {
			t.Errorf("%s: %d %q", k, r.status, r.raw)
		}
	}
	e.do("GET", "/test/whoami", "", "Authorization", "Bearer "+secretOf["admin-key"]).errorEnvelope(t, 403)
	e.do("GET", "/test/admin", "", "Authorization", "Bearer "+secretOf["read-key"]).errorEnvelope(t, 403)
	if r := e.do("GET", "/test/admin", "", "Authorization", "Bearer "+secretOf["admin-key"]); r.status != 200 || r.raw != "admin-key" {
		t.Errorf("admin route: %d %q", r.status, r.raw)
	}
	r := e.do("POST", "/v1/adapters/chat", `{"session_id":"chat_9","customer":{"email":"a@example.test"},"summary":"hi"}`, "Authorization", "Bearer "+secretOf["ingest-key"])
	if r.status != 200 {
		t.Fatal(r.raw)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.names) != 1 || rec.names[0] != "ingest-key" {
		t.Errorf("the adapter's end saw key names %q", rec.names)
	}
}

// Without keys the API is open (loopback only) and no request has a key name.
func TestWithoutKeysRequestsHaveNoKeyName(t *testing.T) {
	e := newEnvWithTestRoutes(t, api.Options{Keys: []string{}, NamedKeys: []api.Key{}}, func(s *api.Server, _ core.Calls, _ *clock) {
		s.Handle("GET /test/whoami", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "["+api.KeyName(r.Context())+"]") }))
	})
	if r := e.do("GET", "/test/whoami", "", "Authorization", ""); r.status != 200 || r.raw != "[]" {
		t.Fatalf("%d %q", r.status, r.raw)
	}
}

// Plain keys get one warning at start that counts them and shows no key.
func TestUnscopedKeysAreCountedInOneWarning(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	api.New(api.Options{Keys: []string{"plain-secret-1", "", "plain-secret-2"}, NamedKeys: scopedKeys, Logger: log})
	out := logs.String()
	if strings.Count(out, "level=WARN") != 1 || !strings.Contains(out, "unscoped_keys=2") || !strings.Contains(out, "keys=6") {
		t.Errorf("warning: %s", out)
	}
	for _, s := range []string{"plain-secret", "secret-ingest", "secret-admin", sha256hex("secret-admin-0123456789")} {
		if strings.Contains(out, s) {
			t.Errorf("the log shows a key: %s", out)
		}
	}
	logs.Reset()
	api.New(api.Options{NamedKeys: scopedKeys, Logger: log})
	if strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("scoped keys only, yet: %s", logs.String())
	}
}

func sha256hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
