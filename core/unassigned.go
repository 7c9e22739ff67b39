package core

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/sticky-cc/sticky/core/store"
)

// A call whose hints point at known customers without saying which one
// (a household line, a switchboard, contradicting hints that are not
// decisive) is unassigned: Start answers with an empty customer_ref and
// every candidate, creates no customer, and the call's ends are kept with
// it. It stays so until an end names the customer, hints added later
// settle it, or an agent says who it is (identify.go); then the kept ends
// are saved on that customer as if they had just arrived.

// callIdentityOf is a copy of the call's identity state to change.
func callIdentityOf(c store.Call) *store.CallIdentity {
	if c.Identity == nil {
		return &store.CallIdentity{}
	}
	ci := *c.Identity
	ci.Candidates = slices.Clone(ci.Candidates)
	ci.PoppedTo = slices.Clone(ci.PoppedTo)
	ci.Decisions = slices.Clone(ci.Decisions)
	ci.Pending = slices.Clone(ci.Pending)
	return &ci
}

// callIdentity is what a start keeps about identity with the call record:
// the candidates of an unassigned call and the caller id's attestation
// (nil when there is neither, which keeps the common record small).
func (rs resolution) callIdentity(hs hintSet) *store.CallIdentity {
	if !rs.unassigned && hs.attestation == "" {
		return nil
	}
	ci := &store.CallIdentity{Attestation: hs.attestation}
	if rs.unassigned {
		ci.Candidates = slices.Clone(rs.candidates)
	}
	return ci
}

// unassignedHeadline tells the agent that Sticky does not know who this is.
func unassignedHeadline(res *StartResult, call store.Call) {
	if res.CustomerRef != "" || call.Identity == nil || len(call.Identity.Candidates) == 0 {
		return
	}
	if n := len(call.Identity.Candidates); n == 1 {
		res.Headline = "Not identified yet: may be a known customer, please confirm"
	} else {
		res.Headline = fmt.Sprintf("Not identified yet: one of %d known customers may be calling", n)
	}
}

// endUnassigned handles an end of a call that has no customer yet: the
// request's customer_ref, or hints that now settle who it is, assign it
// (and every end kept so far is saved on them); otherwise the end is kept
// with the call.
func (e *Engine) endUnassigned(t *store.Txn, p *endPlan, call store.Call, found bool, now time.Time, out **EndResult, wrote *bool) error {
	ci := callIdentityOf(call)
	if len(ci.Pending) >= store.MaxPending {
		return conflict("call " + quoteID(call.ID) + " has had too many reports while nobody said who the caller is; identify it first")
	}
	req := p.req
	req.Merge = false
	merge := call.Ended
	if !merge {
		// A kept end must not take its times from whenever it is saved.
		if req.EndedAt.IsZero() {
			req.EndedAt = now
		}
		if req.StartedAt.IsZero() && !call.StartedAt.IsZero() {
			req.StartedAt = minTime(call.StartedAt, req.EndedAt)
		}
	}
	raw, err := json.Marshal(req)
	if err != nil {
		return err
	}
	ci.Pending = append(ci.Pending, store.PendingEnd{Request: raw, Fingerprint: p.fp, Merge: merge})
	call.Identity = ci
	// identifiers this end adds (a wrap-up's email, say) join the call's
	added := 0
	for _, id := range append(p.hints.identifiersOrNil(), e.variableClaims(req.Variables)...) {
		if !slices.ContainsFunc(call.Identifiers, func(o store.Identifier) bool { return o.Kind == id.Kind && o.Value == id.Value }) {
			call.Identifiers = append(call.Identifiers, id)
			added++
		}
	}

	// Who is it? The end may say, or what it adds may settle it (never a
	// customer an agent said it is not).
	ref := req.CustomerRef
	if ref == "" && found && added > 0 {
		rs, err := e.resolve(t, e.callHints(call), now)
		if err != nil {
			return err
		}
		if rs.best != nil && !ruledOut(ci, rs.best.ref) {
			ref = rs.best.ref
		} else if rs.best == nil {
			ci.Candidates = slices.DeleteFunc(slices.Clone(rs.candidates), func(r string) bool { return ruledOut(ci, r) })
		}
	}
	if ref != "" {
		if _, ok, err := t.Customer(ref); err != nil {
			return err
		} else if !ok { // an end may bring its own ref (chat and email systems do)
			if err := t.PutCustomer(store.Customer{Ref: ref, CreatedAt: now, UpdatedAt: now}); err != nil {
				return err
			}
		}
		res, err := e.settle(t, call, ref, now)
		if err != nil {
			return err
		}
		*out, *wrote = res, true
		return nil
	}

	// Nobody knows yet: keep it.
	if !merge {
		call.Ended, call.EndedAt, call.EndFingerprint = true, req.EndedAt, p.fp
		if call.StartedAt.IsZero() {
			call.StartedAt = req.StartedAt
		}
		if call.StartedAt.IsZero() || call.StartedAt.After(call.EndedAt) {
			call.StartedAt = call.EndedAt
		}
		if p.channel != "" {
			call.Channel = p.channel
		}
		if call.Channel == "" {
			call.Channel = "phone"
		}
		res := &EndResult{CallID: call.ID, CallStart: TS(call.StartedAt), CallEnd: TS(call.EndedAt),
			DurationSeconds: int64(call.EndedAt.Sub(call.StartedAt).Round(time.Second) / time.Second), Unassigned: true}
		if call.EndResult, err = json.Marshal(res); err != nil {
			return err
		}
	} else {
		call.MergeFingerprints = append(call.MergeFingerprints, p.fp)
	}
	p.channel = call.Channel
	call.ExpiresAt = now.Add(e.opts.EndedCallTTL)
	if err := t.PutCall(call); err != nil {
		return err
	}
	*out = new(EndResult)
	if err := json.Unmarshal(call.EndResult, *out); err != nil {
		return err
	}
	*wrote = true
	return nil
}

// parkEnd keeps an end that came without a start (a chat, an email) whose
// hints point at known customers without saying which: it becomes an
// unassigned call with that end kept, for an agent to identify.
func (e *Engine) parkEnd(t *store.Txn, p *endPlan, rs resolution, now time.Time, out **EndResult, wrote *bool) error {
	call := store.Call{ID: p.req.CallID, Channel: p.channel, StartedAt: p.req.StartedAt, DNIS: p.hints.dnis,
		Identifiers: p.hints.identifiers(), Identity: &store.CallIdentity{Candidates: slices.Clone(rs.candidates), Attestation: p.hints.attestation}}
	return e.endUnassigned(t, p, call, false, now, out, wrote)
}

// callHints are a call's identifiers as hints to resolve again.
func (e *Engine) callHints(call store.Call) hintSet {
	m := e.opts.Model
	hs := hintSet{dnis: call.DNIS}
	if call.Identity != nil {
		hs.attestation = call.Identity.Attestation
	}
	ani := true // the first phone of a start is its caller id
	for _, id := range call.Identifiers {
		c := claim{id: id, source: "external_id", ev: m.ExternalID}
		switch id.Kind {
		case KindPhone:
			c.ev, c.ani = m.Phone, ani
			if ani {
				c.source = "ani:" + LineType(id.Value)
			}
			ani = false
		case KindEmail:
			c.ev = m.Email
		}
		hs.add(c)
	}
	return hs
}

// settle assigns an unassigned call to ref and saves the ends kept with it
// on that customer, in the order they came; it returns the last one's
// result (nil when none was kept).
func (e *Engine) settle(t *store.Txn, call store.Call, ref string, now time.Time) (*EndResult, error) {
	cust, ok, err := t.Customer(ref)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, notFound("no customer " + quoteID(ref))
	}
	ci := callIdentityOf(call)
	pending := ci.Pending
	ci.Pending = nil
	if err := t.UnlinkCall(call.CustomerRef, call.ID); err != nil {
		return nil, err
	}
	call.CustomerRef, call.Identity = cust.Ref, ci
	call.Ended, call.EndedAt, call.EndFingerprint, call.EndResult, call.MergeFingerprints = false, time.Time{}, "", nil, nil
	if len(pending) > 0 {
		call.ExpiresAt = now.Add(e.opts.ActiveCallTTL)
	}
	if err := t.PutCall(call); err != nil {
		return nil, err
	}
	var res *EndResult
	for _, pe := range pending {
		var req EndRequest
		if err := json.Unmarshal(pe.Request, &req); err != nil {
			return nil, err
		}
		req.Merge = pe.Merge
		req.CustomerRef = ""
		pl, err := e.checkEnd(req)
		if err != nil {
			return nil, err
		}
		pl.fp, pl.now = pe.Fingerprint, now
		wrote := false
		if err := e.end(t, &pl, &res, &wrote); err != nil {
			return nil, err
		}
	}
	return res, nil
}

func (h *hintSet) identifiersOrNil() []store.Identifier {
	if h == nil {
		return nil
	}
	return h.identifiers()
}
