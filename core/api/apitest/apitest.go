// Package apitest holds the HTTP API to its OpenAPI document in tests: a
// handler that validates every request and answer against the document,
// and the document's schemas for what other transports (NATS) send.
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/sticky-cc/sticky/core/api"
)

var (
	loadOnce sync.Once
	loaded   *openapi3.T
	router   routers.Router
	loadErr  error
)

// Document is the server's OpenAPI document, loaded and validated (its
// examples included), with every object in an answer closed to properties
// it does not list: the published document leaves answers open, since
// clients ignore fields they do not know, but the server must not send a
// field the document does not describe.
func Document(t testing.TB) *openapi3.T {
	t.Helper()
	loadOnce.Do(func() {
		l := openapi3.NewLoader()
		doc, err := l.LoadFromData(api.OpenAPI())
		if err != nil {
			loadErr = fmt.Errorf("loading openapi.json: %w", err)
			return
		}
		if err := doc.Validate(context.Background()); err != nil {
			loadErr = fmt.Errorf("openapi.json is not a valid OpenAPI document: %w", err)
			return
		}
		closeAnswers(doc)
		if router, err = legacy.NewRouter(doc); err != nil {
			loadErr = err
			return
		}
		loaded = doc
	})
	if loadErr != nil {
		t.Fatal(loadErr)
	}
	return loaded
}

// closeAnswers sets additionalProperties: false on every object schema with
// properties that is reachable from a response and says nothing about
// additional properties.
func closeAnswers(doc *openapi3.T) {
	seen := map[*openapi3.Schema]bool{}
	var walk func(*openapi3.SchemaRef)
	walk = func(r *openapi3.SchemaRef) {
		if r == nil || r.Value == nil || seen[r.Value] {
			return
		}
		s := r.Value
		seen[s] = true
		if len(s.Properties) > 0 && s.AdditionalProperties.Has == nil && s.AdditionalProperties.Schema == nil {
			no := false
			s.AdditionalProperties.Has = &no
		}
		for _, p := range s.Properties {
			walk(p)
		}
		walk(s.Items)
		walk(s.AdditionalProperties.Schema)
		for _, l := range []openapi3.SchemaRefs{s.AnyOf, s.OneOf, s.AllOf} {
			for _, x := range l {
				walk(x)
			}
		}
	}
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			for _, rr := range op.Responses.Map() {
				if rr.Value == nil {
					continue
				}
				for _, mt := range rr.Value.Content {
					walk(mt.Schema)
				}
			}
		}
	}
}

// Options says which credentials the server under test accepts.
type Options struct {
	// Keys maps each configured bearer key to its scopes (nil: every
	// scope). A key not in it is unknown.
	Keys map[string][]api.Scope
	// Open: the server runs without keys and authorizes every request,
	// except that with SignedWebhooks (a webhook secret is configured) the
	// webhooks take signed requests only.
	Open           bool
	SignedWebhooks bool
}

func init() {
	// Raw mail is a body like any other; the document describes it as a string.
	openapi3filter.RegisterBodyDecoder("message/rfc822", openapi3filter.PlainBodyDecoder)
}

// Handler serves h and holds each exchange to the document:
//
//   - a path or method the document does not have must be answered 404 or
//     405 with the error envelope;
//   - credentials the document refuses must be answered 401 (no or an
//     unknown key) or 403 (a known key without the scope), and credentials
//     it accepts must not be; a webhook signature is only checked for
//     presence, its validity is the server's business;
//   - a request the document calls invalid must not succeed (the server
//     may refuse more than the document can say, never less);
//   - every answer's status must be documented for the operation, and its
//     headers and body must match.
//
// Violations fail t.
func Handler(t testing.TB, h http.Handler, opts Options) http.Handler {
	t.Helper()
	Document(t)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("apitest: reading the request body: %v", err)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		req := r.Clone(context.Background())
		req.Body = io.NopCloser(bytes.NewReader(body))
		if msg := check(req, body, rec, opts); msg != "" {
			t.Errorf("%s %s → %d: %s\nanswer: %.300s", r.Method, r.URL.RequestURI(), rec.status, msg, rec.body.String())
		}
	})
}

type recorder struct {
	http.ResponseWriter
	status int
	wrote  bool
	body   bytes.Buffer
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	r.body.Write(b)
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func check(req *http.Request, body []byte, rec *recorder, opts Options) string {
	ctx := context.Background()
	route, params, err := router.FindRoute(req)
	if err != nil {
		want := http.StatusNotFound
		if documentedPath(req.URL.Path) {
			want = http.StatusMethodNotAllowed
		}
		if rec.status != want {
			return fmt.Sprintf("not in the document (%v), so it must be %d", err, want)
		}
		if err := ValidateJSON(nil, "#/components/schemas/Error", rec.body.Bytes()); err != nil {
			return "not the error envelope: " + err.Error()
		}
		return ""
	}

	security := route.Operation.Security
	if security == nil {
		security = &route.Spec.Security
	}
	// A signature that is present is verified by the server, so whether
	// it is accepted is not the document's to say.
	var signed, webhook bool
	for _, sr := range *security {
		for name := range sr {
			if sc := route.Spec.Components.SecuritySchemes[name]; sc != nil && sc.Value.Type == "apiKey" {
				webhook = true
				signed = signed || req.Header.Get(sc.Value.Name) != ""
			}
		}
	}

	// Credentials, checked the way the document states them.
	var knownKey bool
	auth := func(_ context.Context, in *openapi3filter.AuthenticationInput) error {
		switch in.SecurityScheme.Type {
		case "http":
			if opts.Open {
				if webhook && opts.SignedWebhooks {
					return errors.New("the webhooks take signed requests only")
				}
				return nil
			}
			k, ok := bearer(in.RequestValidationInput.Request)
			scopes, known := opts.Keys[k]
			if !ok || !known {
				return errors.New("no known bearer key")
			}
			knownKey = true
			for _, need := range in.Scopes {
				if scopes != nil && !slices.Contains(scopes, api.Scope(need)) {
					return fmt.Errorf("the key lacks %s", need)
				}
			}
			return nil
		case "apiKey":
			if in.RequestValidationInput.Request.Header.Get(in.SecurityScheme.Name) == "" {
				return errors.New("no " + in.SecurityScheme.Name)
			}
			return nil
		}
		return fmt.Errorf("apitest: unknown security scheme type %q", in.SecurityScheme.Type)
	}
	input := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: auth, MultiError: true}}
	secErr := openapi3filter.ValidateSecurityRequirements(ctx, input, *security)
	// A 403 refuses the credentials when it says the key lacks a scope; a
	// 403 without that (an identify from an agent the call was not popped
	// to) is the engine's answer about the request, not about the key.
	refused := rec.status == http.StatusUnauthorized ||
		rec.status == http.StatusForbidden && strings.Contains(rec.Header().Get("WWW-Authenticate"), "insufficient_scope")
	switch {
	case secErr != nil && !signed:
		want := http.StatusUnauthorized
		if knownKey {
			want = http.StatusForbidden
		}
		if rec.status != want {
			return fmt.Sprintf("the document refuses these credentials (%v), so it must be %d", secErr, want)
		}
	case secErr == nil && !signed && refused:
		return "the document accepts these credentials, the server refused them"
	}

	input.Options = &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true}
	req.Body = io.NopCloser(bytes.NewReader(body))
	if req.Header.Get("Content-Type") == "" && len(body) > 0 {
		// The server reads a body without Content-Type as JSON (the
		// document's description says so); validate it as such.
		req.Header.Set("Content-Type", "application/json")
	}
	if err := openapi3filter.ValidateRequest(ctx, input); err != nil && rec.status < 400 {
		return "the server accepted a request the document rejects: " + oneLine(err)
	}

	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: input, Status: rec.status, Header: rec.Header(),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}}
	out.SetBodyBytes(rec.body.Bytes())
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		return "the answer does not match the document: " + oneLine(err)
	}
	return ""
}

// documentedPath reports whether path fits one of the document's path
// templates (with any method).
func documentedPath(path string) bool {
	for tmpl := range loaded.Paths.Map() {
		ts, ps := strings.Split(tmpl, "/"), strings.Split(path, "/")
		if len(ts) != len(ps) {
			continue
		}
		match := true
		for i := range ts {
			if !strings.HasPrefix(ts[i], "{") && ts[i] != ps[i] {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}

func bearer(r *http.Request) (string, bool) {
	a := r.Header.Get("Authorization")
	if len(a) < 7 || !strings.EqualFold(a[:7], "bearer ") {
		return "", false
	}
	return strings.TrimSpace(a[7:]), true
}

func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

// Schema resolves a reference into the document: "#/components/schemas/X",
// or the same after the document's path, as the NATS endpoints' metadata
// give it ("/v1/openapi.json#/components/schemas/X").
func Schema(t testing.TB, ref string) (*openapi3.Schema, error) {
	if t != nil {
		t.Helper()
		Document(t)
	}
	if loaded == nil {
		return nil, errors.New("apitest: the document is not loaded")
	}
	ptr, ok := strings.CutPrefix(strings.TrimPrefix(ref, api.OpenAPIPath), "#/components/schemas/")
	if !ok || strings.Contains(ptr, "/") {
		return nil, fmt.Errorf("%q does not point at a schema of %s", ref, api.OpenAPIPath)
	}
	s := loaded.Components.Schemas[ptr]
	if s == nil || s.Value == nil {
		return nil, fmt.Errorf("%s has no schema %q", api.OpenAPIPath, ptr)
	}
	return s.Value, nil
}

// ValidateJSON checks data against the schema ref points at (see Schema).
// With t nil, the document must have been loaded already.
func ValidateJSON(t testing.TB, ref string, data []byte) error {
	if t != nil {
		t.Helper()
	}
	s, err := Schema(t, ref)
	if err != nil {
		return err
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return fmt.Errorf("not JSON: %v", err)
	}
	return s.VisitJSON(v, openapi3.EnableJSONSchema2020())
}
