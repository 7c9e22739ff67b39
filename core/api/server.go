// Package api serves the engine over HTTP: the calls API, customer
// profiles, health, and the authentication and limits that guard them.
package api

import (
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sticky-cc/sticky/core"
)

// Options configures a Server.
type Options struct {
	Engine *core.Engine
	// Keys are plain API keys: each holds every scope and is named key-N
	// by its position. NamedKeys have a name and scopes. Only SHA-256
	// hashes are kept. With no key at all, every request is allowed (the
	// caller must then listen on loopback only; see CheckAddr).
	Keys      []string
	NamedKeys []Key
	// RatePerSecond and Burst limit each key (default 500/s, burst 1000).
	RatePerSecond float64
	Burst         int
	Logger        *slog.Logger
}

// Server is the HTTP API.
type Server struct {
	opts   Options
	engine *core.Engine
	log    *slog.Logger
	keys   []principal
	mux    *http.ServeMux
	limits *Limiter // per key name
	routes []Route

	mu    sync.Mutex // guards ready and routes
	ready []readiness
}

type readiness struct {
	name  string
	check func() (bool, string)
	gate  bool
}

// New builds the API server with its routes.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.RatePerSecond <= 0 {
		opts.RatePerSecond = 500
	}
	if opts.Burst <= 0 {
		opts.Burst = 1000
	}
	s := &Server{opts: opts, engine: opts.Engine, log: opts.Logger, mux: http.NewServeMux(),
		limits: NewLimiter(opts.RatePerSecond, opts.Burst)}
	s.addKeys(opts.Keys, opts.NamedKeys)
	s.Handle("POST /v1/calls/start", http.HandlerFunc(s.start), ScopeCalls)
	s.Handle("POST /v1/calls/end", http.HandlerFunc(s.end), ScopeCalls, ScopeIngest)
	s.Handle("POST /v1/calls/{call_id}/identify", http.HandlerFunc(s.identify), ScopeCalls) // identity (issue 14)
	s.Handle("GET /v1/customers/{ref}", http.HandlerFunc(s.getCustomer), ScopeRead)
	s.Handle("DELETE /v1/customers/{ref}", http.HandlerFunc(s.deleteCustomer), ScopeAdmin)
	s.Handle("POST /v1/customers/{ref}/merge", http.HandlerFunc(s.merge), ScopeAdmin)
	s.Handle("DELETE /v1/customers/{ref}/identifiers/{kind}/{value}", http.HandlerFunc(s.unlink), ScopeAdmin)
	s.Handle("GET /v1/customers/{ref}/access", http.HandlerFunc(s.accessLog), ScopeAdmin)
	s.Handle("GET /v1/stats", http.HandlerFunc(s.stats), ScopeRead)
	s.Handle("POST /v1/import", http.HandlerFunc(s.importRows), ScopeAdmin)             // import.go
	s.Handle("GET /v1/import/{source}", http.HandlerFunc(s.importProgress), ScopeAdmin) // import.go
	s.HandlePublic("GET /healthz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}))
	s.HandlePublic("GET /readyz", http.HandlerFunc(s.readyz))
	s.HandlePublic("GET "+OpenAPIPath, http.HandlerFunc(serveOpenAPI))
	return s
}

// addKeys takes the configured keys; plain ones hold every scope. A key
// that fails Validate is left out and logged by name (config.Load refuses
// such keys before the server is built, so this is a second line).
func (s *Server) addKeys(plain []string, named []Key) {
	keys := make([]Key, 0, len(plain)+len(named))
	for i, k := range plain {
		if strings.TrimSpace(k) != "" {
			keys = append(keys, Key{Name: fmt.Sprintf("key-%d", i+1), Secret: k})
		}
	}
	keys = append(keys, named...)
	unscoped := 0
	for _, k := range keys {
		if err := k.Validate(); err != nil {
			s.log.Error("API key left out", "key", k.Name, "problem", err.Error())
			continue
		}
		p := principal{name: k.Name, hash: k.Hash()}
		for _, sc := range k.Scopes {
			parsed, _ := ParseScope(string(sc))
			if !slices.Contains(p.scopes, parsed) {
				p.scopes = append(p.scopes, parsed)
			}
		}
		if p.scopes == nil {
			unscoped++
		}
		s.keys = append(s.keys, p)
	}
	if unscoped > 0 {
		s.log.Warn("API keys without scopes hold every scope, erasure included; give each key a name and only the scopes it needs (name:scope+scope:secret in STICKY_API_KEYS, or STICKY_API_KEYS_FILE)",
			"unscoped_keys", unscoped, "keys", len(s.keys))
	}
}

// Route is one registered route and who may call it.
type Route struct {
	Pattern string // as registered, e.g. "POST /v1/calls/start"
	// Public routes are not authenticated by the server; Scopes then name
	// what their handler itself requires of an API key (the webhooks,
	// which accept signatures too), if anything.
	Public bool
	// Scopes: an API key needs one of them.
	Scopes []Scope
}

// Routes lists every registered route in registration order, so tests
// can hold them to the OpenAPI document.
func (s *Server) Routes() []Route {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.routes)
}

// Authenticated reports whether the server requires API keys.
func (s *Server) Authenticated() bool { return len(s.keys) > 0 }

// CheckAddr refuses a listen address that is not loopback when no API key
// is configured: an open API must never be reachable from the network.
func (s *Server) CheckAddr(addr string) error {
	if s.Authenticated() {
		return nil
	}
	return RequireLoopback(addr)
}

// RequireLoopback errors unless addr's host is a loopback address.
func RequireLoopback(addr string) error {
	host, _, err := splitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" || isLoopbackIP(host) {
		return nil
	}
	return fmt.Errorf("refusing to listen on %q without API keys: set STICKY_API_KEYS or bind to 127.0.0.1", addr)
}

// Handle registers an authenticated, rate-limited route that an API key
// holding one of scopes may call. A route that names no scope is
// administrative: it needs ScopeAdmin.
func (s *Server) Handle(pattern string, h http.Handler, scopes ...Scope) {
	if len(scopes) == 0 {
		scopes = []Scope{ScopeAdmin}
	}
	s.mux.Handle(pattern, s.guard(h, scopes))
	s.addRoute(Route{Pattern: pattern, Scopes: slices.Clone(scopes)})
}

// HandlePublic registers a route that the server does not authenticate
// (health, metrics, the desktop page, which authenticates against NATS
// itself). keyScopes record what the handler requires of an API key when
// it authenticates requests itself (the webhooks, through Authorize).
func (s *Server) HandlePublic(pattern string, h http.Handler, keyScopes ...Scope) {
	s.mux.Handle(pattern, h)
	s.addRoute(Route{Pattern: pattern, Public: true, Scopes: slices.Clone(keyScopes)})
}

func (s *Server) addRoute(r Route) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.routes = append(s.routes, r)
}

// AddReadiness adds a check to /readyz. gate false means the check is only
// reported (the PBX), gate true means failing it makes the API unready.
func (s *Server) AddReadiness(name string, gate bool, check func() (ok bool, detail string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ready = append(s.ready, readiness{name, check, gate})
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	checks := append([]readiness(nil), s.ready...)
	s.mu.Unlock()
	type result struct {
		OK     bool   `json:"ok"`
		Detail string `json:"detail,omitempty"`
		Gates  bool   `json:"gates_readiness"`
	}
	out := map[string]result{}
	ready := true
	for _, c := range checks {
		ok, detail := c.check()
		out[c.name] = result{ok, detail, c.gate}
		if c.gate && !ok {
			ready = false
		}
	}
	status := http.StatusOK
	if !ready {
		status = http.StatusServiceUnavailable
	}
	WriteJSON(w, status, map[string]any{"ready": ready, "checks": out})
}

// ServeHTTP serves every route, answering unknown paths and wrong methods
// with the error envelope too.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	began := time.Now()
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.log.Error("handler panic", "panic", fmt.Sprint(p), "route", r.Pattern)
			if !sw.wrote {
				Fail(sw, http.StatusInternalServerError, "internal error; it has been logged")
			}
		}
		s.log.Debug("http", "method", r.Method, "route", r.Pattern, "status", sw.status, "took", time.Since(began))
	}()
	h, pattern := s.mux.Handler(r)
	if pattern == "" {
		probe := &probeWriter{header: http.Header{}}
		h.ServeHTTP(probe, r)
		if allow := probe.header.Get("Allow"); allow != "" {
			sw.Header().Set("Allow", allow)
		}
		switch probe.status {
		case http.StatusMethodNotAllowed:
			Fail(sw, probe.status, r.Method+" is not allowed here; allowed: "+probe.header.Get("Allow"))
		case http.StatusNotFound, 0:
			Fail(sw, http.StatusNotFound, "no such endpoint: "+r.Method+" "+truncate(r.URL.Path, 80))
		default:
			// the mux redirects (trailing slash, cleaned path)
			for k, v := range probe.header {
				sw.Header()[k] = v
			}
			sw.WriteHeader(probe.status)
		}
		return
	}
	s.mux.ServeHTTP(sw, r)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type probeWriter struct {
	header http.Header
	status int
}

func (p *probeWriter) Header() http.Header { return p.header }
func (p *probeWriter) Write(b []byte) (int, error) {
	if p.status == 0 {
		p.status = http.StatusOK
	}
	return len(b), nil
}
func (p *probeWriter) WriteHeader(code int) {
	if p.status == 0 {
		p.status = code
	}
}

// guard authenticates a request, checks its key's scopes and rate-limits
// it per key. A refused request reaches no handler, so nothing is written.
func (s *Server) guard(h http.Handler, scopes []Scope) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r, err := s.Authorize(r, scopes...)
		if err != nil {
			var se *ScopeError
			if errors.As(err, &se) {
				s.log.Info("API key refused: scope missing", "key", se.Key, "route", se.Route, "needs", scopeList(se.Need, ","))
			}
			Deny(w, err)
			return
		}
		if wait, ok := s.limits.Allow("key:" + KeyName(r.Context())); !ok {
			TooManyRequests(w, wait)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// ReadBody reads a JSON request body, enforcing the content type and the
// 64 KiB limit; it writes the error itself and returns false on failure.
func ReadBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !(mt == "application/json" || strings.HasSuffix(mt, "+json")) {
			Fail(w, http.StatusUnsupportedMediaType, "send Content-Type: application/json")
			return nil, false
		}
	}
	return ReadLimited(w, r, core.MaxBodyBytes)
}

func (s *Server) start(w http.ResponseWriter, r *http.Request) {
	body, ok := ReadBody(w, r)
	if !ok {
		return
	}
	req, err := core.ParseStart(body)
	if err != nil {
		WriteError(w, err)
		return
	}
	res, err := s.engine.Start(r.Context(), req)
	if err == nil && res.Consistency != "" {
		// Answered from this node's copy; the body says so too.
		w.Header().Set("Sticky-Consistency", res.Consistency)
	}
	s.reply(w, r, res, err)
}

func (s *Server) end(w http.ResponseWriter, r *http.Request) {
	body, ok := ReadBody(w, r)
	if !ok {
		return
	}
	req, err := core.ParseEnd(body)
	if err != nil {
		WriteError(w, err)
		return
	}
	res, err := s.engine.End(r.Context(), req)
	s.reply(w, r, res, err)
}

// identify answers POST /v1/calls/{call_id}/identify: an agent's desktop
// integration or a CRM says who the caller is ({"customer_ref": ...}), or
// who it is not ("not": true), or that it is someone new
// ("new_customer": true). The decision is kept with the call, with the
// key that sent it.
func (s *Server) identify(w http.ResponseWriter, r *http.Request) {
	body, ok := ReadBody(w, r)
	if !ok {
		return
	}
	req, err := core.ParseIdentify(body, r.PathValue("call_id"))
	if err != nil {
		WriteError(w, err)
		return
	}
	req.By = s.credential(r)
	res, err := s.engine.Identify(r.Context(), req)
	s.reply(w, r, res, err)
}

// credential names the key of a request for audit trails without
// revealing it: "key:" and the key's configured name ("api" when no keys
// are configured).
func (s *Server) credential(r *http.Request) string {
	if name := KeyName(r.Context()); name != "" {
		return "key:" + name
	}
	return "api"
}

func (s *Server) reply(w http.ResponseWriter, r *http.Request, v any, err error) {
	if err != nil {
		if Status(err) >= 500 {
			s.log.Error("request failed", "route", r.Pattern, "err", err)
		}
		WriteError(w, err)
		return
	}
	WriteJSON(w, http.StatusOK, v)
}

func (s *Server) getCustomer(w http.ResponseWriter, r *http.Request) {
	limit := 0
	if v := r.URL.Query().Get("history_limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			Fail(w, http.StatusBadRequest, "history_limit must be a whole number from 1 to 1000")
			return
		}
		limit = n
	}
	p, err := s.engine.Customer(r.Context(), r.PathValue("ref"), limit)
	if err == nil { // access log (issue 15)
		s.engine.RecordAccess(r.Context(), core.Access{CustomerRef: p.CustomerRef, Kind: core.AccessRead, Actor: KeyName(r.Context())})
	}
	s.reply(w, r, p, err)
}

// accessLog answers GET /v1/customers/{ref}/access?limit=&before=: who saw
// the customer's data, newest first (GDPR Art. 15).
func (s *Server) accessLog(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > core.MaxAccessPage {
			Fail(w, http.StatusBadRequest, "limit must be a whole number from 1 to 1000")
			return
		}
		limit = n
	}
	page, err := s.engine.AccessLog(r.Context(), r.PathValue("ref"), q.Get("before"), limit)
	s.reply(w, r, page, err)
}

func (s *Server) deleteCustomer(w http.ResponseWriter, r *http.Request) {
	ref := r.PathValue("ref")
	err := s.engine.DeleteCustomer(r.Context(), ref)
	s.reply(w, r, map[string]any{"customer_ref": ref, "deleted": true}, err)
}

func (s *Server) merge(w http.ResponseWriter, r *http.Request) {
	body, ok := ReadBody(w, r)
	if !ok {
		return
	}
	from, err := core.ParseMerge(body)
	if err != nil {
		WriteError(w, err)
		return
	}
	p, err := s.engine.Merge(r.Context(), r.PathValue("ref"), from)
	s.reply(w, r, p, err)
}

func (s *Server) unlink(w http.ResponseWriter, r *http.Request) {
	ref := r.PathValue("ref")
	err := s.engine.Unlink(r.Context(), ref, r.PathValue("kind"), r.PathValue("value"))
	s.reply(w, r, map[string]any{"customer_ref": ref, "unlinked": true}, err)
}

// ParseWindow reads a window length: a Go duration (36h) or days (7d).
func ParseWindow(v string) (time.Duration, bool) {
	if n, ok := strings.CutSuffix(v, "d"); ok {
		d, err := strconv.Atoi(n)
		return time.Duration(d) * 24 * time.Hour, err == nil && d > 0 && d <= 3650
	}
	d, err := time.ParseDuration(v)
	return d, err == nil && d > 0
}

// stats answers GET /v1/stats?window=7d (or from=...&to=... in RFC 3339),
// with switch_window=7d for what counts as a channel switch.
func (s *Server) stats(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	to := time.Now().UTC()
	window := 7 * 24 * time.Hour
	if v := q.Get("window"); v != "" {
		d, ok := ParseWindow(v)
		if !ok {
			Fail(w, http.StatusBadRequest, "window must be a duration such as 7d or 36h")
			return
		}
		window = d
	}
	from := to.Add(-window)
	for name, dst := range map[string]*time.Time{"from": &from, "to": &to} {
		if v := q.Get(name); v != "" {
			t, err := core.ParseTime(v)
			if err != nil {
				Fail(w, http.StatusBadRequest, name+" must be an RFC 3339 timestamp")
				return
			}
			*dst = t
		}
	}
	var sw time.Duration
	if v := q.Get("switch_window"); v != "" {
		d, ok := ParseWindow(v)
		if !ok {
			Fail(w, http.StatusBadRequest, "switch_window must be a duration such as 7d")
			return
		}
		sw = d
	}
	st, err := s.engine.Stats(r.Context(), from, to, sw)
	s.reply(w, r, st, err)
}

func splitHostPort(addr string) (string, string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", "", fmt.Errorf("listen address %q: %v", addr, err)
	}
	return host, port, nil
}

func isLoopbackIP(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
