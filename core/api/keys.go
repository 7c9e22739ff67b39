package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/sticky-cc/sticky/core"
)

// Scope is what an API key may do. A route accepts keys holding any one of
// its scopes.
type Scope string

const (
	// ScopeIngest is for systems that report finished interactions:
	// POST /v1/calls/end and the chat, email and Zendesk adapters.
	ScopeIngest Scope = "ingest"
	// ScopeCalls is for the PBX side of a call: start and end.
	ScopeCalls Scope = "calls"
	// ScopeRead reads customer profiles and statistics.
	ScopeRead Scope = "read"
	// ScopeAdmin erases, merges and unlinks, and is what every route that
	// names no scope requires.
	ScopeAdmin Scope = "admin"
)

// AllScopes are every scope, the ones a key configured without scopes holds.
var AllScopes = []Scope{ScopeIngest, ScopeCalls, ScopeRead, ScopeAdmin}

// ParseScope reads a scope name.
func ParseScope(s string) (Scope, error) {
	if sc := Scope(strings.ToLower(strings.TrimSpace(s))); slices.Contains(AllScopes, sc) {
		return sc, nil
	}
	return "", fmt.Errorf("unknown scope %q (scopes are %s)", s, scopeList(AllScopes, ", "))
}

// Key is one configured API key. The server keeps only its name, scopes
// and SHA-256; the secret is never logged, and neither is the hash.
type Key struct {
	// Name identifies the key in logs, errors and KeyName, never the
	// secret: 1-64 of letters, digits, '_', '-', '.'.
	Name string
	// Scopes the key holds; none means every scope (a plain key).
	Scopes []Scope
	// Secret is the key itself; or SHA256, its SHA-256 in hex, so that a
	// keys file need not hold the secret.
	Secret string
	SHA256 string
}

// Validate checks one key on its own; it never mentions the secret.
func (k Key) Validate() error {
	if !validKeyName(k.Name) {
		return fmt.Errorf("name %q must be 1-64 letters, digits, '_', '-' or '.'", k.Name)
	}
	for _, s := range k.Scopes {
		if _, err := ParseScope(string(s)); err != nil {
			return err
		}
	}
	switch secret, hash := strings.TrimSpace(k.Secret), strings.TrimSpace(k.SHA256); {
	case secret != "" && hash != "":
		return errors.New("give the key or its sha256, not both")
	case secret == "" && hash == "":
		return errors.New("the secret is empty")
	case hash != "":
		if b, err := hex.DecodeString(hash); err != nil || len(b) != sha256.Size {
			return errors.New("sha256 must be 64 hex digits (the SHA-256 of the key, e.g. printf %s \"$KEY\" | sha256sum)")
		}
	}
	return nil
}

// Hash is the SHA-256 the server compares presented keys with.
func (k Key) Hash() [32]byte {
	if h := strings.TrimSpace(k.SHA256); h != "" {
		var out [32]byte
		b, _ := hex.DecodeString(h)
		copy(out[:], b)
		return out
	}
	return sha256.Sum256([]byte(strings.TrimSpace(k.Secret)))
}

func validKeyName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// principal is a configured key as the server holds it.
type principal struct {
	name   string
	scopes []Scope // nil: every scope
	hash   [32]byte
}

func (p *principal) holds(any []Scope) bool {
	if p.scopes == nil {
		return true
	}
	for _, s := range any {
		if slices.Contains(p.scopes, s) {
			return true
		}
	}
	return false
}

type keyNameKey struct{}

// KeyName is the name of the API key that authenticated the request ctx
// belongs to (for an access log: which key read what). It is "" when no key
// did: the API runs without keys, or a webhook was signed instead.
func KeyName(ctx context.Context) string {
	name, _ := ctx.Value(keyNameKey{}).(string)
	return name
}

// withKeyName also makes the key the request's actor (core.WithActor), so
// that what the engine does for it is in the access log under its name.
func withKeyName(r *http.Request, name string) *http.Request {
	ctx := context.WithValue(r.Context(), keyNameKey{}, name)
	return r.WithContext(core.WithActor(ctx, name)) // access log (issue 15)
}

// ErrNoKey means a request carries no API key, or one that is not configured.
var ErrNoKey = errors.New("missing or unknown API key: send Authorization: Bearer <key>")

// ScopeError means a configured key holds none of the scopes a route accepts.
type ScopeError struct {
	Key   string  // the key's name
	Route string  // the route's pattern, e.g. "POST /v1/calls/start"
	Need  []Scope // any one of them would do
}

func (e *ScopeError) Error() string {
	quoted := make([]Scope, len(e.Need))
	for i, s := range e.Need {
		quoted[i] = Scope(`"` + s + `"`)
	}
	return fmt.Sprintf("API key %q lacks the scope %s, which %s needs", e.Key, scopeList(quoted, " or "), e.Route)
}

func scopeList(s []Scope, sep string) string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = string(v)
	}
	return strings.Join(out, sep)
}

// Authorize checks r's API key for one of scopes (none: ScopeAdmin). It
// returns r carrying the key's name (see KeyName), ErrNoKey, or a
// *ScopeError. Without configured keys every request is authorized. Routes
// registered with Handle are authorized before their handler runs; the
// webhooks, which accept signatures too, call it themselves.
func (s *Server) Authorize(r *http.Request, scopes ...Scope) (*http.Request, error) {
	if !s.Authenticated() {
		return r, nil
	}
	p := s.keyOf(r)
	if p == nil {
		return r, ErrNoKey
	}
	if len(scopes) == 0 {
		scopes = []Scope{ScopeAdmin}
	}
	if !p.holds(scopes) {
		route := r.Pattern
		if route == "" {
			route = r.Method + " " + r.URL.Path
		}
		return r, &ScopeError{Key: p.name, Route: route, Need: scopes}
	}
	return withKeyName(r, p.name), nil
}

// Deny answers an error of Authorize: 401 for a missing or unknown key,
// 403 naming the scopes for a key that lacks them.
func Deny(w http.ResponseWriter, err error) {
	var se *ScopeError
	if errors.As(err, &se) {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="sticky", error="insufficient_scope", scope=%q`, scopeList(se.Need, " ")))
		writeEnvelope(w, http.StatusForbidden, ErrorBody{Error: http.StatusText(http.StatusForbidden), Message: se.Error(),
			Details: &Details{RequiredScopes: se.Need}})
		return
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="sticky"`)
	Fail(w, http.StatusUnauthorized, ErrNoKey.Error())
}

// keyOf finds the presented key among the configured ones. It hashes the
// presented key and compares it with every stored hash in constant time,
// without stopping early, so timing says nothing about which key is close.
func (s *Server) keyOf(r *http.Request) *principal {
	auth := r.Header.Get("Authorization")
	const prefix = "bearer "
	if len(auth) <= len(prefix) || !strings.EqualFold(auth[:len(prefix)], prefix) {
		return nil
	}
	presented := sha256.Sum256([]byte(strings.TrimSpace(auth[len(prefix):])))
	var found *principal
	for i := range s.keys {
		if subtle.ConstantTimeCompare(presented[:], s.keys[i].hash[:]) == 1 {
			found = &s.keys[i]
		}
	}
	return found
}
