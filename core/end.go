package core

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/sticky-cc/sticky/core/store"
)

// EndResult is the answer to an end.
type EndResult struct {
	CallID           string    `json:"call_id"`
	CustomerRef      string    `json:"customer_ref"`
	CallStart        Timestamp `json:"call_start"`
	CallEnd          Timestamp `json:"call_end"`
	DurationSeconds  int64     `json:"duration_seconds"`
	IntentsUpdated   int       `json:"intents_updated"`
	VariablesUpdated int       `json:"variables_updated"`
	// Unassigned: the call's customer is not known yet, so the end is
	// kept with the call until someone says who it was (identify.go).
	Unassigned bool `json:"unassigned,omitempty"`
}

type endPlan struct {
	req     EndRequest
	hints   *hintSet
	channel string // "" : decide from the call record
	status  string
	ttl     time.Duration
	fp      string
	// now and newRef are the clock and the customer ref the end uses.
	now    time.Time
	newRef func() string
}

// endOutcome is an applied end's result with the channel it was decided on.
type endOutcome struct {
	res     *EndResult
	channel string
}

func (e *Engine) checkEnd(req EndRequest) (endPlan, error) {
	var is issues
	p := endPlan{req: req}
	checkText(&is, req.CallID, MaxIDLen, true, "call_id")
	checkText(&is, req.CustomerRef, MaxIDLen, false, "customer_ref")
	if req.Hints != nil {
		hs := e.normalizeHints(&is, *req.Hints, "", "identity_hints")
		p.hints = &hs
	}
	checkText(&is, req.Intent, MaxIntentLen, false, "intent")
	p.status = req.IntentStatus
	switch req.IntentStatus {
	case "":
		if req.Intent != "" {
			p.status = StatusOpen
		}
	case StatusOpen, StatusResolved, StatusAbandoned:
		if req.Intent == "" {
			is.add("needs an intent", "intent_status")
		}
	default:
		is.add("must be one of open, resolved, abandoned", "intent_status")
	}
	if len(req.Variables) > MaxVariables {
		is.add("must hold at most "+itoa(MaxVariables)+" variables", "variables")
	} else {
		for _, name := range slices.Sorted(maps.Keys(req.Variables)) {
			v := req.Variables[name]
			if !validName(name) {
				is.add("name must be 1-64 letters, digits, '_', '-' or '.'", "variables", name)
			}
			if len(v) > MaxVarValueBytes {
				is.add("value must be at most 4096 bytes", "variables", name)
			} else if !validUTF8(v) {
				is.add("value must be valid UTF-8", "variables", name)
			}
		}
	}
	p.ttl = e.opts.VariableTTL
	if req.TTLSeconds != 0 {
		if req.TTLSeconds < 1 || req.TTLSeconds > maxTTLSeconds {
			is.add("must be between 1 and 7776000 (90 days)", "ttl_seconds")
		}
		p.ttl = time.Duration(req.TTLSeconds) * time.Second
	}
	switch {
	case req.Channel != "":
		ch, ok := normChannel(req.Channel)
		if !ok {
			is.add("must be 1-32 lower-case letters, digits, '_' or '-'", "channel")
		}
		p.channel = ch
	case req.Variables["channel"] != "":
		p.channel, _ = normChannel(req.Variables["channel"])
	}
	if !req.StartedAt.IsZero() && !req.EndedAt.IsZero() && req.EndedAt.Before(req.StartedAt) {
		is.add("must not be before started_at", "ended_at")
	}
	if err := is.err(); err != nil {
		return p, err
	}
	fr := req
	fr.Merge = false
	if p.hints != nil {
		fr.Hints = &Hints{CustomerRef: p.hints.ref, DNIS: p.hints.dnis, ExternalIDs: map[string]string{}}
		for _, c := range p.hints.claims {
			fr.Hints.ExternalIDs[c.id.Kind] = c.id.Value
		}
	}
	p.fp = fingerprint(fr)
	return p, nil
}

func validUTF8(s string) bool { return strings.ToValidUTF8(s, "") == s }

// End saves an interaction: variables, intent, history and identifiers. Once
// it returns, the write is on disk. Ending a call again with the same request
// returns the same result; with a different one it is a conflict (unless
// req.Merge, which adds to the ended interaction).
func (e *Engine) End(ctx context.Context, req EndRequest) (res *EndResult, err error) {
	e.redactEnd(&req) // redaction.go: before anything is checked, fingerprinted, stored or popped
	began := time.Now()
	var p endPlan
	if o := e.opts.Observer; o != nil {
		defer func() { o.Ended(res, p.channel, time.Since(began), err) }()
	}
	p, err = e.checkEnd(req)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, &Error{Code: CodeUnavailable, Message: "request cancelled"}
	}
	if e.rep != nil {
		out, err := e.replicate(ctx, &command{Op: opEnd, End: &req, Merge: req.Merge})
		if err != nil {
			return nil, err
		}
		o := out.(*endOutcome)
		p.channel = o.channel
		return o.res, nil
	}
	wrote := false
	p.now, p.newRef = e.now(), e.opts.NewRef
	err = e.db.Update(func(t *store.Txn) error {
		res, wrote = nil, false
		return e.end(t, &p, &res, &wrote)
	})
	if err == nil && wrote {
		err = e.db.Sync()
	}
	if err != nil {
		return nil, storeErr(err)
	}
	return res, nil
}

func (e *Engine) end(t *store.Txn, p *endPlan, out **EndResult, wrote *bool) error {
	req := p.req
	now := p.now
	call, found, err := t.Call(req.CallID)
	if err != nil {
		return err
	}
	if found && call.Ended && !req.Merge {
		if call.EndFingerprint != p.fp {
			return conflict("call " + quoteID(req.CallID) + " has already ended with a different request")
		}
		*out = new(EndResult)
		return json.Unmarshal(call.EndResult, *out)
	}
	merging := found && call.Ended
	if merging && (call.EndFingerprint == p.fp || slices.Contains(call.MergeFingerprints, p.fp)) {
		// A redelivered report (a webhook retried, a wrap-up sent twice)
		// was merged already: nothing changes, even after a restart.
		*out = new(EndResult)
		return json.Unmarshal(call.EndResult, *out)
	}
	// identity (issue 14): a call nobody has identified yet keeps its ends.
	if found && call.CustomerRef == "" {
		return e.endUnassigned(t, p, call, true, now, out, wrote)
	}

	// Who is this?
	var cust store.Customer
	created := false // a new customer: no history yet
	var linkIDs []store.Identifier
	if p.hints != nil {
		linkIDs = append(linkIDs, p.hints.identifiers()...)
	}
	if found {
		linkIDs = append(linkIDs, call.Identifiers...)
	}
	linkIDs = append(linkIDs, e.variableClaims(req.Variables)...)
	switch {
	case req.CustomerRef != "":
		c, ok, err := t.Customer(req.CustomerRef)
		if err != nil {
			return err
		}
		if !ok {
			c, created = store.Customer{Ref: req.CustomerRef, CreatedAt: now}, true
		}
		cust = c
	case found:
		c, ok, err := t.Customer(call.CustomerRef)
		if err != nil {
			return err
		}
		if !ok {
			c, created = store.Customer{Ref: call.CustomerRef, CreatedAt: now}, true
		}
		cust = c
	case p.hints != nil && len(p.hints.claims) > 0 || p.hints != nil && p.hints.ref != "":
		rs, err := e.resolve(t, *p.hints, now)
		if err != nil {
			return err
		}
		if rs.best != nil {
			cust = rs.best.cust
		} else if rs.unassigned { // identity (issue 14): no duplicate; kept for an agent
			return e.parkEnd(t, p, rs, now, out, wrote)
		} else {
			ref := p.hints.ref
			if ref == "" {
				ref = p.newRef()
			}
			cust, created = store.Customer{Ref: ref, CreatedAt: now}, true
		}
	default:
		return invalid("invalid request", Issue{Path: []any{"customer_ref"},
			Message: "call was not started here: send customer_ref or identity_hints so the customer can be found"})
	}

	channel := p.channel
	if channel == "" && found {
		channel = call.Channel
	}
	if channel == "" {
		channel = "phone"
	}
	p.channel = channel

	started := req.StartedAt
	if started.IsZero() && found {
		started = call.StartedAt
	}
	ended := req.EndedAt
	if merging && ended.IsZero() {
		ended = call.EndedAt
	}
	if ended.IsZero() {
		ended = now
	}
	if started.IsZero() || started.After(ended) {
		started = ended
	}

	// Variables: last write wins, each with this call's TTL; expired ones
	// leave the record while it is being written anyway.
	for name, v := range req.Variables {
		setVariable(&cust, store.Variable{Name: name, Value: v, Source: channel, SetAt: now, ExpiresAt: now.Add(p.ttl)})
	}
	cust.Variables = slices.DeleteFunc(cust.Variables, func(v store.Variable) bool { return !v.ExpiresAt.After(now) })

	// The interaction joins the history (replacing itself when merging).
	inter := store.Interaction{
		CallID: req.CallID, Channel: channel, StartedAt: started, EndedAt: ended,
		Intent: req.Intent, IntentStatus: p.status, Summary: req.Variables["summary"],
	}
	if found {
		inter.DNIS = call.DNIS
	}
	if p.hints != nil && p.hints.dnis != "" {
		inter.DNIS = p.hints.dnis
	}
	var prevIntent string
	replaced := false
	if merging {
		if old, ok, err := e.interaction(t, cust.Ref, call); err != nil {
			return err
		} else if ok {
			prevIntent = old.Intent
			inter = mergeInteraction(old, inter, req)
			if err := t.DeleteInteraction(cust.Ref, old); err != nil {
				return err
			}
			replaced = true
			cust.Recent = slices.DeleteFunc(cust.Recent, func(h store.Interaction) bool { return h.CallID == old.CallID })
		}
	}
	if err := t.PutInteraction(cust.Ref, inter); err != nil {
		return err
	}
	if err := e.tallyEnd(t, cust.Ref, inter, !replaced, created); err != nil { // statistics index
		return err
	}
	addRecent(&cust, inter, e.opts.HistoryLimit)

	intents := 0
	if req.Intent != "" {
		e.applyIntent(&cust, req.Intent, p.status, ended, channel, merging && prevIntent == req.Intent)
		intents = 1
	}
	if err := e.link(t, &cust, linkIDs, now, channel); err != nil {
		return err
	}
	if ended.After(cust.LastContactAt) {
		cust.LastContactAt, cust.LastChannel = ended, channel
	}
	cust.UpdatedAt = now
	if err := t.PutCustomer(cust); err != nil {
		return err
	}

	res := &EndResult{
		CallID: req.CallID, CustomerRef: cust.Ref,
		CallStart: TS(inter.StartedAt), CallEnd: TS(inter.EndedAt),
		DurationSeconds:  int64(inter.EndedAt.Sub(inter.StartedAt).Round(time.Second) / time.Second),
		IntentsUpdated:   intents,
		VariablesUpdated: len(req.Variables),
	}
	raw, err := json.Marshal(res)
	if err != nil {
		return err
	}
	rec := store.Call{ID: req.CallID, CustomerRef: cust.Ref, Channel: channel, StartedAt: inter.StartedAt, DNIS: inter.DNIS}
	if found {
		rec = call
		rec.CustomerRef, rec.Channel = cust.Ref, channel
	}
	rec.Ended, rec.EndedAt, rec.EndResult = true, inter.EndedAt, raw
	if !merging {
		rec.EndFingerprint = p.fp
	} else {
		rec.MergeFingerprints = append(rec.MergeFingerprints, p.fp)
		if n := len(rec.MergeFingerprints); n > store.MaxMergeFingerprints {
			rec.MergeFingerprints = slices.Clone(rec.MergeFingerprints[n-store.MaxMergeFingerprints:])
		}
	}
	rec.ExpiresAt = now.Add(e.opts.EndedCallTTL)
	if err := t.PutCall(rec); err != nil {
		return err
	}
	*out, *wrote = res, true
	return nil
}

// applyIntent records that an interaction raised intent with status. An
// intent raised again while unresolved counts one more attempt; a resolved
// or expired one starts over at 1. sameCall marks a merge into an
// interaction that already counted this intent.
func (e *Engine) applyIntent(c *store.Customer, name, status string, at time.Time, channel string, sameCall bool) {
	for i := range c.Intents {
		in := &c.Intents[i]
		if in.Name != name {
			continue
		}
		switch {
		case sameCall:
		case e.intentLive(*in, at):
			in.AttemptCount++
		default:
			*in = store.Intent{Name: name, AttemptCount: 1, FirstRaisedAt: at}
		}
		in.Status, in.LastChannel = status, channel
		if at.After(in.LastContactAt) {
			in.LastContactAt = at
		}
		return
	}
	c.Intents = append(c.Intents, store.Intent{
		Name: name, Status: status, AttemptCount: 1, FirstRaisedAt: at, LastContactAt: at, LastChannel: channel,
	})
}

// interaction finds the history entry an ended call wrote.
func (e *Engine) interaction(t *store.Txn, ref string, call store.Call) (store.Interaction, bool, error) {
	hist, err := t.History(ref, 0)
	if err != nil {
		return store.Interaction{}, false, err
	}
	for _, h := range hist {
		if h.CallID == call.ID {
			return h, true, nil
		}
	}
	return store.Interaction{}, false, nil
}

// mergeInteraction fills an ended interaction with what a later report adds:
// new values win where given, old ones stay where not.
//
// A report that says it ended before what is stored (an older email of the
// thread delivered late) is stale: it only fills what is empty and never
// moves the interaction back in time.
func mergeInteraction(old, add store.Interaction, req EndRequest) store.Interaction {
	m := old
	if !req.EndedAt.IsZero() && add.EndedAt.Before(old.EndedAt) {
		if m.Intent == "" && req.Intent != "" {
			m.Intent, m.IntentStatus = add.Intent, add.IntentStatus
		}
		if m.Summary == "" {
			m.Summary = add.Summary
		}
		if m.DNIS == "" {
			m.DNIS = add.DNIS
		}
		if !req.StartedAt.IsZero() && add.StartedAt.Before(m.StartedAt) {
			m.StartedAt = add.StartedAt
		}
		return m
	}
	if req.Intent != "" {
		m.Intent, m.IntentStatus = add.Intent, add.IntentStatus
	}
	if add.Summary != "" {
		m.Summary = add.Summary
	}
	if add.DNIS != "" {
		m.DNIS = add.DNIS
	}
	if !req.StartedAt.IsZero() {
		m.StartedAt = add.StartedAt
	}
	if !req.EndedAt.IsZero() {
		m.EndedAt = add.EndedAt
	}
	if req.Channel != "" {
		m.Channel = add.Channel
	}
	return m
}
