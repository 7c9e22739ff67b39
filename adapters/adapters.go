// Package adapters takes end-of-interaction context from channels other
// than the phone (chat, email, Zendesk) over authenticated webhooks and
// saves it through the core's one End, so it is there when the customer calls.
package adapters

import (
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/sticky-cc/sticky/adapters/chat"
	"github.com/sticky-cc/sticky/adapters/email"
	"github.com/sticky-cc/sticky/adapters/webhook"
	"github.com/sticky-cc/sticky/adapters/zendesk"
	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/core/api"
)

// Options configures the adapter endpoints. Zero values take the defaults.
type Options struct {
	// Calls is the engine (the same End the HTTP API uses). Required.
	Calls core.Calls
	// Secret is the HMAC-SHA256 shared secret of signed webhooks
	// (X-Sticky-Timestamp / X-Sticky-Signature). Empty: signatures are
	// refused and only API keys authenticate.
	Secret []byte
	// ZendeskSecret is a Zendesk webhook's signing secret, so Zendesk's
	// own signature (X-Zendesk-Webhook-Signature) is accepted on
	// /v1/adapters/zendesk. Empty: off.
	ZendeskSecret []byte
	// ReplayWindow is how far a signature's timestamp may be from now (5m).
	ReplayWindow time.Duration
	// TicketPattern finds ticket ids in email subjects; the first capture
	// group, if any, is the id (default email.DefaultTicketPattern, [TKT-789]).
	TicketPattern string
	// MaxEmailBytes bounds an email body, raw or JSON (10 MiB: attachments
	// and HTML make real mail big; only its text is kept). Chat and Zendesk
	// bodies are bounded by the API's 64 KiB.
	MaxEmailBytes int64
	// DefaultRegion is the phone region for numbers without a country code
	// (US); it must match the engine's.
	DefaultRegion string
	// RatePerSecond and Burst limit each authenticated sender (50/s, 100).
	RatePerSecond float64
	Burst         int
	// OwnAddresses are your own support addresses or domains
	// ("support@shop.example", "shop.example"): mail from them is answered
	// 202 and skipped, so an outbound copy never links your address to a
	// customer.
	OwnAddresses []string
	Now          func() time.Time
	Logger       *slog.Logger
}

// Routes registered by Mount.
const (
	ChatPath    = "/v1/adapters/chat"
	EmailPath   = "/v1/adapters/email"
	ZendeskPath = "/v1/adapters/zendesk"
)

// Scope is what an API key needs to post to the adapters.
const Scope = api.ScopeIngest

// Mount registers POST /v1/adapters/chat, /v1/adapters/email and
// /v1/adapters/zendesk on srv. They authenticate themselves (an API key
// with Scope, or a signature), so they are registered as public routes.
func Mount(srv *api.Server, opts Options) error {
	if srv == nil || opts.Calls == nil {
		return errors.New("adapters: a server and Options.Calls are required")
	}
	h, err := newHandler(srv, opts)
	if err != nil {
		return err
	}
	srv.HandlePublic("POST "+ChatPath, h.route("chat", h.chat), Scope)
	srv.HandlePublic("POST "+EmailPath, h.route("email", h.email), Scope)
	srv.HandlePublic("POST "+ZendeskPath, h.route("zendesk", h.zendesk), Scope)
	return nil
}

type handler struct {
	opts     Options
	srv      *api.Server
	calls    core.Calls
	verify   webhook.Verifier
	ticketRE *regexp.Regexp
	log      *slog.Logger

	limits *api.Limiter // per authenticated sender

	own map[string]bool
}

func newHandler(srv *api.Server, opts Options) (*handler, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ReplayWindow <= 0 {
		opts.ReplayWindow = webhook.DefaultWindow
	}
	if opts.TicketPattern == "" {
		opts.TicketPattern = email.DefaultTicketPattern
	}
	if opts.MaxEmailBytes <= 0 {
		opts.MaxEmailBytes = 10 << 20
	}
	if opts.DefaultRegion == "" {
		opts.DefaultRegion = "US"
	}
	if opts.RatePerSecond <= 0 {
		opts.RatePerSecond = 50
	}
	if opts.Burst <= 0 {
		opts.Burst = 100
	}
	re, err := regexp.Compile(opts.TicketPattern)
	if err != nil {
		return nil, fmt.Errorf("adapters: ticket pattern: %v", err)
	}
	return &handler{
		opts: opts, srv: srv, calls: opts.Calls, ticketRE: re, log: opts.Logger,
		verify: webhook.Verifier{Secret: opts.Secret, ZendeskSecret: opts.ZendeskSecret, Window: opts.ReplayWindow, Now: opts.Now},
		limits: api.NewLimiter(opts.RatePerSecond, opts.Burst),
		own:    ownSet(opts.OwnAddresses),
	}, nil
}

func ownSet(list []string) map[string]bool {
	out := map[string]bool{}
	for _, a := range list {
		if a = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(a), "@"))); a != "" {
			out[a] = true
		}
	}
	return out
}

func domainOf(addr string) string {
	if at := strings.LastIndexByte(addr, '@'); at >= 0 {
		return addr[at+1:]
	}
	return ""
}

// delivery is one decoded webhook: the end to apply and how to point at
// the body's fields when the core finds a problem.
type delivery struct {
	req  core.EndRequest
	path func([]any) []any
	who  string // the sender's address or number, for masked logs
}

// Result is the answer of every adapter endpoint: the core's end result,
// plus identifiers that were present but unusable and so not saved.
type Result struct {
	*core.EndResult
	Channel string       `json:"channel"`
	Ignored []core.Issue `json:"ignored,omitempty"`
}

type decodeFunc func(w http.ResponseWriter, r *http.Request, read func(limit int64) ([]byte, bool)) (*delivery, bool)

func (h *handler) route(name string, decode decodeFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r, principal, scheme, ok := h.authenticate(w, r, name)
		if !ok {
			return
		}
		if wait, ok := h.limits.Allow(principal); !ok {
			api.TooManyRequests(w, wait)
			return
		}
		// The signature covers the raw body: it is checked once the body
		// is read and before anything in it is trusted.
		read := func(limit int64) ([]byte, bool) {
			body, ok := api.ReadLimited(w, r, limit)
			if !ok {
				return nil, false
			}
			if scheme != webhook.None {
				if err := h.verify.Verify(r.Header, body); err != nil {
					h.refuse(w, err.Error())
					return nil, false
				}
			}
			return body, true
		}
		d, ok := decode(w, r, read)
		if !ok {
			return
		}
		ignored, err := h.sanitize(&d.req, d.path)
		if err != nil {
			api.WriteError(w, err)
			return
		}
		res, merged, err := h.deliver(r, d.req)
		if err != nil {
			if api.Status(err) >= 500 {
				h.log.Error("adapter delivery failed", "adapter", name, "err", err)
			}
			api.WriteError(w, remap(err, d.path))
			return
		}
		h.log.Info("adapter delivery", "adapter", name, "call_id", core.PII(d.req.CallID),
			"customer_ref", res.CustomerRef, "from", core.PII(d.who), "merged", merged)
		api.WriteJSON(w, http.StatusOK, Result{EndResult: res, Channel: d.req.Channel, Ignored: ignored})
	})
}

// authenticate accepts an API key holding Scope (r then carries the key's
// name, api.KeyName) or a fresh signature (verified against the body
// later). A known key without Scope is 403, whatever else the request
// carries. With no API keys and no secrets configured the API is open
// (loopback only, as the rest of the API); configuring a secret closes
// that, since it means the endpoints face senders on the network.
func (h *handler) authenticate(w http.ResponseWriter, r *http.Request, route string) (*http.Request, string, webhook.Scheme, bool) {
	if h.srv.Authenticated() && r.Header.Get("Authorization") != "" {
		kr, err := h.srv.Authorize(r, Scope)
		var se *api.ScopeError
		if errors.As(err, &se) {
			api.Deny(w, err)
			return r, "", webhook.None, false
		}
		if err == nil {
			return kr, "key:" + api.KeyName(kr.Context()), webhook.None, true
		}
	}
	scheme := webhook.Detect(r.Header)
	if scheme == webhook.Zendesk && route != "zendesk" {
		h.refuse(w, "Zendesk signatures are accepted on "+ZendeskPath+" only")
		return r, "", scheme, false
	}
	if scheme != webhook.None {
		if err := h.verify.Fresh(r.Header); err != nil {
			h.refuse(w, err.Error())
			return r, "", scheme, false
		}
		return r, fmt.Sprint("sig:", int(scheme)), scheme, true
	}
	if !h.srv.Authenticated() && len(h.opts.Secret) == 0 && len(h.opts.ZendeskSecret) == 0 {
		return r, "open", webhook.None, true
	}
	h.refuse(w, "missing or unknown API key: send Authorization: Bearer <key>, or sign the body (X-Sticky-Timestamp, X-Sticky-Signature)")
	return r, "", scheme, false
}

func (h *handler) refuse(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="sticky"`)
	api.Fail(w, http.StatusUnauthorized, msg)
}

func mediaType(r *http.Request) string {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return "invalid"
	}
	return mt
}

func isJSON(mt string) bool {
	return mt == "" || mt == "application/json" || strings.HasSuffix(mt, "+json")
}

func (h *handler) readJSON(w http.ResponseWriter, r *http.Request, read func(int64) ([]byte, bool)) ([]byte, bool) {
	if !isJSON(mediaType(r)) {
		api.Fail(w, http.StatusUnsupportedMediaType, "send Content-Type: application/json")
		return nil, false
	}
	return read(core.MaxBodyBytes)
}

func (h *handler) chat(w http.ResponseWriter, r *http.Request, read func(int64) ([]byte, bool)) (*delivery, bool) {
	body, ok := h.readJSON(w, r, read)
	if !ok {
		return nil, false
	}
	s, err := chat.Parse(body)
	if err != nil {
		api.WriteError(w, err)
		return nil, false
	}
	return &delivery{req: s.Request(), path: chat.Path, who: firstOf(s.Email, s.Phone)}, true
}

func (h *handler) zendesk(w http.ResponseWriter, r *http.Request, read func(int64) ([]byte, bool)) (*delivery, bool) {
	body, ok := h.readJSON(w, r, read)
	if !ok {
		return nil, false
	}
	t, err := zendesk.Parse(body)
	if err != nil {
		api.WriteError(w, err)
		return nil, false
	}
	return &delivery{req: t.Request(), path: zendesk.Path, who: firstOf(t.Requester.Email, t.Requester.Phone)}, true
}

// email takes message/rfc822 (the raw message) or application/json (an
// inbound-email JSON). The query parameters intent and intent_status label
// the thread when the message does not: an inbound route per mailbox
// (refunds@ → ?intent=refund_status) is how mail systems express it.
func (h *handler) email(w http.ResponseWriter, r *http.Request, read func(int64) ([]byte, bool)) (*delivery, bool) {
	var m *email.Message
	switch mt := mediaType(r); {
	case mt == "message/rfc822":
		body, ok := read(h.opts.MaxEmailBytes)
		if !ok {
			return nil, false
		}
		var err error
		if m, err = email.ParseRaw(body); err != nil {
			api.WriteError(w, err)
			return nil, false
		}
	case isJSON(mt):
		// An inbound-email JSON carries the HTML body too, which alone is
		// often over the API's 64 KiB: it gets the email limit.
		body, ok := read(h.opts.MaxEmailBytes)
		if !ok {
			return nil, false
		}
		var err error
		if m, err = email.ParseJSON(body); err != nil {
			api.WriteError(w, err)
			return nil, false
		}
	default:
		api.Fail(w, http.StatusUnsupportedMediaType, "send Content-Type: message/rfc822 (a raw message) or application/json")
		return nil, false
	}
	if d := domainOf(m.From); h.own[d] || h.own[m.From] {
		// Our own outbound mail copied to the inbound route: linking the
		// support address to a customer would make every customer look
		// like every other.
		api.WriteJSON(w, http.StatusAccepted, map[string]any{"skipped": true,
			"reason": "the sender is one of Options.OwnAddresses; mail from your own addresses is not customer context"})
		return nil, false
	}
	// A sender's clock far in the future would put the message ahead of
	// everything else; the time of receipt counts instead.
	if m.Date.After(h.opts.Now().Add(time.Hour)) {
		m.Date = time.Time{}
	}
	q := r.URL.Query()
	if m.Intent == "" {
		m.Intent, m.IntentStatus = q.Get("intent"), q.Get("intent_status")
	}
	return &delivery{req: m.Request(email.Options{TicketPattern: h.ticketRE}), path: m.Path, who: m.From}, true
}

func firstOf(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// sanitize keeps the identifiers the core can use and reports the others
// (a chat profile's phone field holding "call me after 5" must not lose the
// chat); only when no usable identifier remains is the delivery refused.
// Variable values are cut to the core's limit.
func (h *handler) sanitize(req *core.EndRequest, path func([]any) []any) ([]core.Issue, error) {
	var ignored []core.Issue
	drop := func(msg string, p ...any) { ignored = append(ignored, core.Issue{Path: path(p), Message: msg}) }
	if hs := req.Hints; hs != nil {
		if hs.ANI != "" {
			if core.IsWithheld(hs.ANI) {
				hs.ANI = ""
			} else if n, err := core.NormalizePhone(hs.ANI, h.opts.DefaultRegion); err != nil || n == "" || len(hs.ANI) > core.MaxHintLen {
				drop("is not a phone number; not saved", "identity_hints", "ani")
				hs.ANI = ""
			}
		}
		for k, v := range hs.ExternalIDs {
			switch {
			case v == "":
				delete(hs.ExternalIDs, k)
			case !plainText(v) || utf8.RuneCountInString(v) > core.MaxHintLen:
				drop("must be at most 128 characters without control characters; not saved", "identity_hints", "external_ids", k)
				delete(hs.ExternalIDs, k)
			case k == "email":
				if _, err := core.NormalizeEmail(v); err != nil {
					drop("is not an email address; not saved", "identity_hints", "external_ids", k)
					delete(hs.ExternalIDs, k)
				}
			}
		}
		if hs.ANI == "" && len(hs.ExternalIDs) == 0 && hs.CustomerRef == "" {
			req.Hints = nil
		}
	}
	if req.Hints == nil && req.CustomerRef == "" {
		if len(ignored) == 0 {
			ignored = append(ignored, core.Issue{Path: path([]any{"identity_hints"}), Message: "must hold an identifier of the customer"})
		}
		for i := range ignored {
			ignored[i].Message = strings.TrimSuffix(ignored[i].Message, "; not saved")
		}
		return nil, &core.Error{Code: core.CodeInvalid, Message: "no usable customer identifier", Issues: ignored}
	}
	for k, v := range req.Variables {
		req.Variables[k] = webhook.ClipBytes(strings.ToValidUTF8(v, "\uFFFD"), core.MaxVarValueBytes)
	}
	return ignored, nil
}

func plainText(s string) bool {
	return utf8.ValidString(s) && strings.IndexFunc(s, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }) < 0
}

// remap points a core validation error's issues at the adapter's body.
func remap(err error, path func([]any) []any) error {
	var ce *core.Error
	if !errors.As(err, &ce) || ce.Code != core.CodeInvalid || len(ce.Issues) == 0 {
		return err
	}
	out := &core.Error{Code: ce.Code, Message: ce.Message, Issues: make([]core.Issue, len(ce.Issues))}
	for i, is := range ce.Issues {
		out.Issues[i] = core.Issue{Path: path(is.Path), Message: is.Message}
	}
	return out
}
