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
	"sync/atomic"
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
	// Log, if set, is the shared memory of a cluster: every change goes
	// through it (see Log). Nil: the engine writes Store directly.
	Log Log
	// AppendTimeout bounds how long a change waits for the shared memory
	// to take it (2s); ApplyTimeout how long it then waits to be applied
	// on this node (5s).
	AppendTimeout time.Duration
	ApplyTimeout  time.Duration
	// Redactor, if set, redacts every End's variables first (redaction.go).
	Redactor Redactor
	// Access log (issue 15, access.go): Node names this node in its
	// records; AccessRetention is how long records are kept (365 days);
	// AccessQueue bounds the records waiting to be written (4096).
	Node            string
	AccessRetention time.Duration
	AccessQueue     int
	// DiscloseLevel is the lowest recommendation whose pop carries the
	// full context (disclose.go; default reuse).
	DiscloseLevel string
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
	rep  *replication // nil: standalone
	acc  *accessLog   // access log (issue 15)
	gen  string       // the statistics index's settings (statsGen)

	scrub  chan struct{} // an erasure asks Run to scrub the store
	scrubs atomic.Int64  // scrubs completed
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
	if opts.AppendTimeout <= 0 {
		opts.AppendTimeout = 2 * time.Second
	}
	if opts.ApplyTimeout <= 0 {
		opts.ApplyTimeout = 5 * time.Second
	}
	if opts.AccessRetention <= 0 { // access log (issue 15)
		opts.AccessRetention = 365 * 24 * time.Hour
	}
	if opts.AccessQueue <= 0 {
		opts.AccessQueue = defaultAccessQueue
	}
	e := &Engine{opts: opts, db: opts.Store, log: opts.Logger, scrub: make(chan struct{}, 1),
		acc: newAccessLog(opts.AccessQueue)}
	e.gen = statsGen(opts.IntentWindow)
	if opts.Log != nil {
		e.rep = newReplication(opts.Log)
	}
	return e
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
		case <-e.scrub:
			// Erasures come in bursts (a data-subject request names
			// several refs); one scrub covers all that came before it.
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
			if err := e.Scrub(); err != nil {
				e.log.Warn("scrubbing erased records from disk failed; trying again in a minute", "err", err)
				time.AfterFunc(time.Minute, e.scrubSoon)
			}
		case <-t.C:
			if e.rep != nil {
				if err := e.sweepShared(ctx); err != nil {
					e.log.Warn("sweep failed", "err", err)
				}
				continue
			}
			if n, err := e.sweep(dutyPace(ctx, sweepDuty)); err != nil {
				if ctx.Err() != nil {
					return nil // stopped mid-sweep: the next start sweeps again
				}
				e.log.Warn("sweep failed", "err", err)
			} else if n > 0 {
				e.log.Info("swept expired records", "count", n)
			}
		}
	}
}

// scrubSoon asks Run to scrub the store after an erasure.
func (e *Engine) scrubSoon() {
	select {
	case e.scrub <- struct{}{}:
	default: // one is pending already
	}
}

// Scrub removes erased and overwritten records from the store's files
// now (see store.DB.Scrub); Run does it shortly after every erasure.
func (e *Engine) Scrub() error {
	err := e.db.Scrub()
	if err == nil {
		e.scrubs.Add(1)
	}
	return err
}

// Scrubs is how many scrubs have completed.
func (e *Engine) Scrubs() int64 { return e.scrubs.Load() }

// Sweep deletes expired variables and call records, and access records
// older than the retention, now.
func (e *Engine) Sweep() (int, error) { return e.sweep(nil) }

// sweepDuty is the share of one core Run's periodic sweep may take, as
// the statistics job's (issue 17): unpaced, the sweep read every
// customer and call record at once every ten minutes, as fast as one core
// could, while calls rang.
const sweepDuty = 0.1

// sweep is Sweep with pace between the store's chunks (nil: unpaced).
func (e *Engine) sweep(pace store.Pace) (int, error) {
	now := e.now()
	n, err := e.db.SweepPaced(now, pace)
	if err != nil {
		return n, err
	}
	m, err := e.db.SweepAccessPaced(e.accessCutoff(now), pace) // access log (issue 15)
	return n + m, err
}

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
	// Consistency is "local" when the shared memory of a cluster could
	// not be reached: the answer comes from this node's own copy and the
	// call was not recorded. Empty otherwise.
	Consistency string `json:"consistency,omitempty"`
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
	p, err := e.checkStart(req)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, &Error{Code: CodeUnavailable, Message: "request cancelled"}
	}
	if e.rep != nil {
		out, err := e.replicate(ctx, &command{Op: opStart, Start: &req})
		if err == nil {
			return out.(*StartResult), nil
		}
		if ErrorCode(err) != CodeUnavailable {
			return nil, err
		}
		// The shared memory cannot take the call record: answer the
		// ringing call from this node's own copy, and say so.
		err = e.db.Try(func(t *store.Txn) error {
			res, err = e.applyStart(t, &p, e.now(), e.opts.NewRef)
			return err
		})
		if err != nil {
			return nil, storeErr(err)
		}
		res.Consistency = ConsistencyLocal
		return res, nil
	}
	err = e.db.Update(func(t *store.Txn) error {
		res, err = e.applyStart(t, &p, e.now(), e.opts.NewRef)
		return err
	})
	if err != nil {
		return nil, storeErr(err)
	}
	return res, nil
}

// ConsistencyLocal marks a start answered from the node's own copy while
// the shared memory was unreachable: nothing of the call was recorded.
const ConsistencyLocal = "local"

// startPlan is a checked start request.
type startPlan struct {
	req     StartRequest
	hs      hintSet
	ids     []store.Identifier
	fp      string
	channel string
}

func (e *Engine) checkStart(req StartRequest) (startPlan, error) {
	var is issues
	checkText(&is, req.CallID, MaxIDLen, true, "call_id")
	if !req.Hints.given() {
		is.add("must hold at least one of ani, external_ids, customer_ref", "identity_hints")
	}
	p := startPlan{req: req, channel: "phone"}
	p.hs = e.normalizeHints(&is, req.Hints, req.LineType, "identity_hints")
	if req.Channel != "" {
		var ok bool
		if p.channel, ok = normChannel(req.Channel); !ok {
			is.add("must be 1-32 lower-case letters, digits, '_' or '-'", "channel")
		}
	}
	if err := is.err(); err != nil {
		return p, err
	}
	p.ids = p.hs.identifiers()
	p.fp = startFingerprint(p.ids, p.hs.ref, p.hs.dnis, p.channel)
	return p, nil
}

// applyStart makes a start's decision and call record in t, as of now;
// newRef names a customer the start creates.
func (e *Engine) applyStart(t *store.Txn, p *startPlan, now time.Time, newRef func() string) (*StartResult, error) {
	req, hs, ids, fp, channel := p.req, p.hs, p.ids, p.fp, p.channel
	call, found, err := t.Call(req.CallID)
	if err != nil {
		return nil, err
	}
	if found {
		switch {
		case call.Ended:
			return nil, conflict("call " + quoteID(req.CallID) + " has already ended; use a new call_id")
		case call.StartFingerprint != fp && call.StartFingerprint != legacyStartFingerprint(ids, hs.ref, hs.dnis, channel):
			return nil, conflict("call " + quoteID(req.CallID) + " was already started with different hints")
		}
		// A retry: the same customer, identity and call_start, with
		// the context read afresh (it is only ever fresher).
		cust, ok, err := t.Customer(call.CustomerRef)
		if err != nil || !ok && call.CustomerRef != "" { // "": unassigned (identify.go)
			return nil, err
		}
		res := &StartResult{CallID: req.CallID, CustomerRef: cust.Ref, CallStart: TS(call.StartedAt)}
		if err := json.Unmarshal(call.StartIdentity, &res.Identity); err != nil {
			return nil, err
		}
		cc, err := e.readContext(t, cust, now)
		res.OpenIntents, res.Variables, res.History, res.Headline = cc.OpenIntents, cc.Variables, cc.History, cc.Headline
		unassignedHeadline(res, call)
		return res, err
	}
	rs, err := e.resolve(t, hs, now)
	if err != nil {
		return nil, err
	}
	var cust store.Customer
	if rs.best != nil {
		cust = rs.best.cust
	} else if !rs.unassigned { // identity (issue 14): unassigned calls get no customer yet
		ref := hs.ref
		if ref == "" {
			ref = newRef()
		}
		cust = store.Customer{Ref: ref, CreatedAt: now, UpdatedAt: now}
		// Only identifiers nobody holds yet are indexed now. One that
		// points at a weak candidate is kept with the call and linked
		// when the call ends (an agent has spoken to the caller by
		// then); linking it here would make every ambiguous call
		// dilute the evidence for the next one.
		free, err := e.unclaimed(t, hs.identifiers())
		if err != nil {
			return nil, err
		}
		if err := e.link(t, &cust, free, now, channel); err != nil {
			return nil, err
		}
		if err := t.PutCustomer(cust); err != nil {
			return nil, err
		}
	}
	res := &StartResult{
		CallID:      req.CallID,
		CustomerRef: cust.Ref,
		CallStart:   TS(now),
		Identity:    rs.identity,
	}
	cc, err := e.readContext(t, cust, now)
	if err != nil {
		return nil, err
	}
	res.OpenIntents, res.Variables, res.History, res.Headline = cc.OpenIntents, cc.Variables, cc.History, cc.Headline
	// The call record keeps what a retry must repeat (the identity
	// decision), not the whole context: starts are the hot write path
	// and a smaller record means less flushing and compaction.
	ident, err := json.Marshal(&res.Identity)
	if err != nil {
		return nil, err
	}
	call = store.Call{
		ID: req.CallID, CustomerRef: cust.Ref, Channel: channel, StartedAt: now,
		Identifiers: ids, DNIS: hs.dnis,
		StartFingerprint: fp, StartIdentity: ident, ExpiresAt: now.Add(e.opts.ActiveCallTTL),
		Identity: rs.callIdentity(hs), // identity (issue 14): what Start learned about who it is
	}
	unassignedHeadline(res, call)
	if err := putStart(t, call, startSummary{res.Identity.Level, res.Identity.Recommendation}); err != nil { // statistics index
		return nil, err
	}
	return res, t.PutCall(call)
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
