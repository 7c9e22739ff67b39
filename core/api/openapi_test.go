package api_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/sticky-cc/sticky/core/api"
	"github.com/sticky-cc/sticky/core/api/apitest"
)

// Routes that the bridges register on this server outside core/api and the
// adapters; the document describes them too.
var registeredElsewhere = map[string]string{
	"GET /metrics":    "cmd/internal/daemon",
	"GET /desktop/":   "cmd/internal/daemon (screenpop.Desktop)",
	"GET /desktop":    "cmd/internal/daemon",
	"GET /v1/cluster": "cmd/internal/daemon (mountCluster)",
}

// Every route registered on the server has an operation in the document,
// with a description and the security the server applies: the bearer
// scopes it accepts, and no requirement for public routes. Every operation
// of the document is a route.
func TestEveryRouteIsDocumented(t *testing.T) {
	doc := apitest.Document(t)
	routes := newScopedEnv(t).api.Routes()
	if len(routes) < 13 {
		t.Fatalf("only %d routes registered: %v", len(routes), routes)
	}
	registered := map[string]bool{}
	for _, r := range routes {
		registered[r.Pattern] = true
		method, path, ok := strings.Cut(r.Pattern, " ")
		if !ok {
			t.Errorf("%q has no method: every route names one", r.Pattern)
			continue
		}
		item := doc.Paths.Value(path)
		if item == nil || item.GetOperation(method) == nil {
			t.Errorf("%s is not in openapi.json", r.Pattern)
			continue
		}
		op := item.GetOperation(method)
		if strings.TrimSpace(op.Description) == "" || strings.TrimSpace(op.Summary) == "" {
			t.Errorf("%s: the document gives it no summary or description", r.Pattern)
		}
		got := bearerScopes(op)
		if !sameScopes(got, r.Scopes) {
			t.Errorf("%s: the document's bearer scopes are %v, the server's %v", r.Pattern, got, r.Scopes)
		}
		if r.Public && len(r.Scopes) == 0 && (op.Security == nil || len(*op.Security) != 0) {
			t.Errorf("%s is public: its security must be [] in the document", r.Pattern)
		}
		if !r.Public && slices.ContainsFunc(*op.Security, func(req openapi3.SecurityRequirement) bool { _, ok := req["bearer"]; return !ok }) {
			t.Errorf("%s takes only API keys, yet the document offers other credentials", r.Pattern)
		}
	}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			p := method + " " + path
			if !registered[p] && registeredElsewhere[p] == "" {
				t.Errorf("openapi.json documents %s, which no one registers", p)
			}
		}
	}
}

func bearerScopes(op *openapi3.Operation) []api.Scope {
	var out []api.Scope
	if op.Security == nil {
		return nil
	}
	for _, req := range *op.Security {
		for _, s := range req["bearer"] {
			out = append(out, api.Scope(s))
		}
	}
	return out
}

func sameScopes(a, b []api.Scope) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// The document's scopes are the server's.
func TestDocumentedScopesAreTheServers(t *testing.T) {
	s, err := apitest.Schema(t, "#/components/schemas/Scope")
	if err != nil {
		t.Fatal(err)
	}
	var enum []api.Scope
	for _, v := range s.Enum {
		enum = append(enum, api.Scope(v.(string)))
	}
	if !slices.Equal(enum, api.AllScopes) {
		t.Errorf("document: %v, server: %v", enum, api.AllScopes)
	}
}

// GET /v1/openapi.json serves the embedded document without a key.
func TestOpenAPIIsServedWithoutAKey(t *testing.T) {
	e := newEnv(t, api.Options{})
	r := e.do("GET", "/v1/openapi.json", "", "Authorization", "")
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("%d %s", r.status, r.header.Get("Content-Type"))
	}
	if !bytes.Equal([]byte(r.raw), api.OpenAPI()) || r.body["openapi"] != "3.1.0" {
		t.Errorf("served document differs from the embedded one, or is not OpenAPI 3.1: %.100s", r.raw)
	}
	for _, p := range []string{"/v1/calls/start", "/v1/calls/end", "/v1/customers/{ref}", "/v1/stats", "/v1/adapters/email", "/v1/cluster", "/healthz", "/readyz", "/metrics"} {
		if r.body["paths"].(map[string]any)[p] == nil {
			t.Errorf("the document lacks %s", p)
		}
	}
}
