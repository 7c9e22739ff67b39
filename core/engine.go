// Package core is Sticky's engine: it resolves who is calling from identity
// hints and keeps each customer's open intents, variables and history, for
// every channel, through one Start and one End.
package core

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"strings"
	"time"

	"github.com/sticky-cc/sticky/core/store"
)

// Options configures an Engine. Zero values take the defaults.
type Options struct {
	Store *store.DB
	// Now is the clock; tests inject one so expiry needs no sleeping.
	Now func() time.Time
	// NewRef makes customer refs (default cust_ + 16 random base32 chars).
	NewRef        func() string
	DefaultRegion string        // region for numbers without a country code (US)
	Model         Model         // the identity match model (DefaultModel)
	VariableTTL   time.Duration // default TTL of variables (30 days)
	IntentWindow  time.Duration // unresolved intents expire after this without contact (30 days)
	HistoryLimit  int           // interactions returned by Start (20)
	// ActiveCallTTL and EndedCallTTL bound how long call records are kept
	// for retries and conflict detection (7 and 30 days).
	ActiveCallTTL time.Duration
	EndedCallTTL  time.Duration
	// Location is where headline weekdays are counted (UTC).
	Location *time.Location
	Logger   *slog.Logger
	// Observer, if set, hears about every Start and End (metrics, stats).
	Observer Observer
}

// Observer is told what the engine did; it must be fast and must not block.
type Observer interface {
	Started(res *StartResult, took time.Duration, err error)
	Ended(res *EndResult, channel string, took time.Duration, err error)
}

// Engine is the one path every channel uses to read and write context.
type Engine struct {
	opts Options
	db   *store.DB
	log  *slog.Logger
}

// New returns an engine over opts.Store.
func New(opts Options) *Engine {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.NewRef == nil {
		opts.NewRef = randomRef
	}
	if opts.DefaultRegion == "" {
		opts.DefaultRegion = "US"
	}
	if opts.Model == (Model{}) {
		opts.Model = DefaultModel()
	}
	if opts.VariableTTL <= 0 {
		opts.VariableTTL = defaultTTLSeconds * time.Second
	}
	if opts.IntentWindow <= 0 {
		opts.IntentWindow = 30 * 24 * time.Hour
	}
	if opts.HistoryLimit <= 0 {
		opts.HistoryLimit = 20
	}
	if opts.ActiveCallTTL <= 0 {
		opts.ActiveCallTTL = 7 * 24 * time.Hour
	}
	if opts.EndedCallTTL <= 0 {
		opts.EndedCallTTL = 30 * 24 * time.Hour
	}
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Engine{opts: opts, db: opts.Store, log: opts.Logger}
}

func randomRef() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	var b [16]byte
	_, _ = rand.Read(b[:])
	out := make([]byte, 0, 5+len(b))
	out = append(out, "cust_"...)
	for _, c := range b {
		out = append(out, alphabet[c&31])
	}
	return string(out)
}

func (e *Engine) now() time.Time { return e.opts.Now().UTC() }

// Run sweeps expired variables and call records and collects Badger's
// value log until ctx ends.
func (e *Engine) Run(ctx context.Context) error {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	go e.db.RunGC(ctx, 15*time.Minute)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if n, err := e.Sweep(); err != nil {
				e.log.Warn("sweep failed", "err", err)
			} else if n > 0 {
				e.log.Info("swept expired records", "count", n)
			}
		}
	}
}

// Sweep deletes expired variables and call records now.
func (e *Engine) Sweep() (int, error) { return e.db.Sweep(e.now()) }

// StartResult is the answer to a start: who is calling and their context.
type StartResult struct {
	CallID      string                  `json:"call_id"`
	CustomerRef string                  `json:"customer_ref"`
	CallStart   Timestamp               `json:"call_start"`
	Identity    Identity                `json:"identity"`
	OpenIntents []OpenIntent            `json:"open_intents"`
	Variables   map[string]VariableView `json:"variables"`
	History     []HistoryItem           `json:"history"`
	Headline    string                  `json:"headline"`
}

func fingerprint(v any) string {
	b, _ := json.Marshal(v)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// startFingerprint identifies what a start asked for, so that a retry can
// be told from a different start with the same call_id. It hashes the
// fields length-prefixed rather than marshalling them to JSON first, which
// took 3 µs of a start.
func startFingerprint(ids []store.Identifier, ref, dnis, channel string) string {
	var buf [512]byte
	b := append(buf[:0], "start/2"...)
	field := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for _, id := range ids {
		field(id.Kind)
		field(id.Value)
		field(id.Source)
		b = binary.AppendVarint(b, id.LinkedAt.UnixNano())
	}
	field(ref)
	field(dnis)
	field(channel)
	sum := sha256.Sum256(b)
	return "2" + hex.EncodeToString(sum[:16])
}

// legacyStartFingerprint is how calls started before 2026-12 were
// fingerprinted; a retry of one of those still matches.
func legacyStartFingerprint(ids []store.Identifier, ref, dnis, channel string) string {
	return fingerprint(struct {
		H  []store.Identifier
		R  string
		D  string
		Ch string
	}{ids, ref, dnis, channel})
}

// Start identifies the caller and returns their context. Starting an active
// call_id again with the same request returns the same result; with another
// request, or after the call ended, it is a conflict.
func (e *Engine) Start(ctx context.Context, req StartRequest) (res *StartResult, err error) {
	began := time.Now()
	if o := e.opts.Observer; o != nil {
		defer func() { o.Started(res, time.Since(began), err) }()
	}
	var is issues
	checkText(&is, req.CallID, MaxIDLen, true, "call_id")
	if !req.Hints.given() {
		is.add("must hold at least one of ani, external_ids, customer_ref", "identity_hints")
	}
	hs := e.normalizeHints(&is, req.Hints, req.LineType, "identity_hints")
	channel := "phone"
	if req.Channel != "" {
		var ok bool
		if channel, ok = normChannel(req.Channel); !ok {
			is.add("must be 1-32 lower-case letters, digits, '_' or '-'", "channel")
		}
	}
	if err := is.err(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, &Error{Code: CodeUnavailable, Message: "request cancelled"}
	}
	ids := hs.identifiers()
	fp := startFingerprint(ids, hs.ref, hs.dnis, channel)

	err = e.db.Update(func(t *store.Txn) error {
		res = nil
		now := e.now()
		call, found, err := t.Call(req.CallID)
		if err != nil {
			return err
		}
		if found {
			switch {
			case call.Ended:
				return conflict("call " + quoteID(req.CallID) + " has already ended; use a new call_id")
			case call.StartFingerprint != fp && call.StartFingerprint != legacyStartFingerprint(ids, hs.ref, hs.dnis, channel):
				return conflict("call " + quoteID(req.CallID) + " was already started with different hints")
			}
			// A retry: the same customer, identity and call_start, with
			// the context read afresh (it is only ever fresher).
			cust, ok, err := t.Customer(call.CustomerRef)
			if err != nil || !ok && call.CustomerRef != "" { // "": unassigned (identify.go)
				return err
			}
			res = &StartResult{CallID: req.CallID, CustomerRef: cust.Ref, CallStart: TS(call.StartedAt)}
			if err := json.Unmarshal(call.StartIdentity, &res.Identity); err != nil {
				return err
			}
			cc, err := e.readContext(t, cust, now)
			res.OpenIntents, res.Variables, res.History, res.Headline = cc.OpenIntents, cc.Variables, cc.History, cc.Headline
			unassignedHeadline(res, call)
			return err
		}
		rs, err := e.resolve(t, hs, now)
		if err != nil {
			return err
		}
		var cust store.Customer
		if rs.best != nil {
			cust = rs.best.cust
		} else if !rs.unassigned { // identity (issue 14): unassigned calls get no customer yet
			ref := hs.ref
			if ref == "" {
				ref = e.opts.NewRef()
			}
			cust = store.Customer{Ref: ref, CreatedAt: now, UpdatedAt: now}
			// Only identifiers nobody holds yet are indexed now. One that
			// points at a weak candidate is kept with the call and linked
			// when the call ends (an agent has spoken to the caller by
			// then); linking it here would make every ambiguous call
			// dilute the evidence for the next one.
			free, err := e.unclaimed(t, hs.identifiers())
			if err != nil {
				return err
			}
			if err := e.link(t, &cust, free, now, channel); err != nil {
				return err
			}
			if err := t.PutCustomer(cust); err != nil {
				return err
			}
		}
		res = &StartResult{
			CallID:      req.CallID,
			CustomerRef: cust.Ref,
			CallStart:   TS(now),
			Identity:    rs.identity,
		}
		cc, err := e.readContext(t, cust, now)
		if err != nil {
			return err
		}
		res.OpenIntents, res.Variables, res.History, res.Headline = cc.OpenIntents, cc.Variables, cc.History, cc.Headline
		// The call record keeps what a retry must repeat (the identity
		// decision), not the whole context: starts are the hot write path
		// and a smaller record means less flushing and compaction.
		ident, err := json.Marshal(&res.Identity)
		if err != nil {
			return err
		}
		call = store.Call{
			ID: req.CallID, CustomerRef: cust.Ref, Channel: channel, StartedAt: now,
			Identifiers: ids, DNIS: hs.dnis,
			StartFingerprint: fp, StartIdentity: ident, ExpiresAt: now.Add(e.opts.ActiveCallTTL),
			Identity: rs.callIdentity(hs), // identity (issue 14): what Start learned about who it is
		}
		unassignedHeadline(res, call)
		return t.PutCall(call)
	})
	if err != nil {
		return nil, storeErr(err)
	}
	return res, nil
}

func (e *Engine) unclaimed(t *store.Txn, ids []store.Identifier) ([]store.Identifier, error) {
	var out []store.Identifier
	for _, id := range ids {
		refs, err := t.Refs(id.Kind, id.Value)
		if err != nil {
			return nil, err
		}
		if len(refs) == 0 {
			out = append(out, id)
		}
	}
	return out, nil
}

// link attaches identifiers to a customer, in the record and in the index.
func (e *Engine) link(t *store.Txn, c *store.Customer, ids []store.Identifier, now time.Time, source string) error {
	for _, id := range ids {
		// identity (issue 14): placeholders, and identifiers already held
		// by more than the shared cap, glue nobody together.
		if blocked(id) {
			continue
		}
		if held, err := t.AddRefUnder(id.Kind, id.Value, c.Ref, e.opts.Model.SharedCap); err != nil || !held {
			if err != nil {
				return err
			}
			continue
		}
		touchSeen(c, id, now)
		has := false
		for _, o := range c.Identifiers {
			if o.Kind == id.Kind && o.Value == id.Value {
				has = true
				break
			}
		}
		if !has {
			id.LinkedAt, id.Source = now, source
			c.Identifiers = append(c.Identifiers, id)
		}
	}
	return nil
}

// quoteID shows an id in a message without letting it break the message.
func quoteID(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return `"` + strings.ToValidUTF8(s, "?") + `"`
}
