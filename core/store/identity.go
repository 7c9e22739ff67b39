package store

import (
	"encoding/binary"
	"slices"
	"time"
)

// This file holds what identity resolution keeps besides the identifier
// index (issue 14): when each identifier was last seen on its customer,
// and per call who it was popped to, which customers it may be, what the
// agents decided and the ends waiting for that decision. Both ride at the
// end of existing records (Customer.Seen, Call.Identity), so the key
// layout does not change and records written before them still decode.

// Seen says when an identifier was last confirmed on a customer (an end,
// a merge or an agent's identify linked it). A number unseen for long may
// have been given to someone else.
type Seen struct {
	Kind  string    `json:"kind"`
	Value string    `json:"value"`
	At    time.Time `json:"at"`
}

// CallIdentity is the identity state of one call.
type CallIdentity struct {
	// Candidates are the customers the call may be from while it is
	// unassigned (Call.CustomerRef empty), best first.
	Candidates []string `json:"candidates,omitempty"`
	// Attestation is the STIR/SHAKEN level the caller id came with (A, B,
	// C, failed) or empty.
	Attestation string `json:"attestation,omitempty"`
	// PoppedTo are the agents the call was popped to; only they may say
	// who the caller is from their desktop.
	PoppedTo []string `json:"popped_to,omitempty"`
	// Decisions are what agents and integrations said about the caller,
	// oldest first (the audit trail; at most MaxDecisions).
	Decisions []Decision `json:"decisions,omitempty"`
	// Pending are ends reported while the call was unassigned, oldest
	// first, saved on the customer once someone says who it was.
	Pending []PendingEnd `json:"pending,omitempty"`
}

// Bounds of CallIdentity's lists.
const (
	MaxDecisions = 32
	MaxPending   = 32
	MaxPoppedTo  = 32
)

// Decision is one "the caller is X" or "the caller is not X".
type Decision struct {
	At    time.Time `json:"at"`
	By    string    `json:"by"`              // the credential: "key:1a2b3c4d", "nats:agent"
	Agent string    `json:"agent,omitempty"` // the agent who decided, when one did
	Ref   string    `json:"customer_ref"`
	Not   bool      `json:"not,omitempty"`
	New   bool      `json:"new,omitempty"` // a customer created for the caller
	// Unlinked are the identifiers a "not" took from Ref (with when they
	// were last seen there), so a later "it was X after all" restores them.
	Unlinked []Identifier `json:"unlinked,omitempty"`
	Seen     []Seen       `json:"seen,omitempty"`
}

// PendingEnd is an end kept until the call's customer is known.
type PendingEnd struct {
	Request     []byte `json:"request"` // the engine's EndRequest, JSON
	Fingerprint string `json:"fp"`
	Merge       bool   `json:"merge,omitempty"`
}

// AddRefUnder links an identifier to ref unless it is already held by more
// than limit customers (it then glues nobody else to them). It reports
// whether ref holds the identifier afterwards.
func (t *Txn) AddRefUnder(kind, value, ref string, limit int) (bool, error) {
	refs, err := t.Refs(kind, value)
	if err != nil {
		return false, err
	}
	if slices.Contains(refs, ref) {
		return true, nil
	}
	if len(refs) > limit {
		return false, nil
	}
	refs = append(refs, ref)
	if len(refs) > MaxRefsPerIdentifier {
		refs = refs[len(refs)-MaxRefsPerIdentifier:]
	}
	rl := refList(refs)
	return true, t.put(key(pIdentifier, kind, value), &rl)
}

// UnlinkCall removes the link between ref and one of its calls, when the
// call moves to another customer (or from unassigned, ref "").
func (t *Txn) UnlinkCall(ref, id string) error { return t.del(key(pCustCall, ref, id)) }

func encodeSeen(e *enc, s []Seen) {
	e.b = binary.AppendUvarint(e.b, uint64(len(s)))
	for _, v := range s {
		e.str(v.Kind)
		e.str(v.Value)
		e.time(v.At)
	}
}

func decodeSeen(d *dec) []Seen {
	n := d.count()
	if n == 0 {
		return nil
	}
	out := make([]Seen, n)
	for i := range out {
		out[i] = Seen{Kind: d.str(), Value: d.str(), At: d.time()}
	}
	return out
}

func encodeStrings(e *enc, s []string) {
	l := refList(s)
	l.encode(e)
}

func decodeStrings(d *dec) []string {
	var l refList
	l.decode(d)
	if len(l) == 0 {
		return nil
	}
	return l
}

func (ci *CallIdentity) encode(e *enc) {
	encodeStrings(e, ci.Candidates)
	e.str(ci.Attestation)
	encodeStrings(e, ci.PoppedTo)
	e.b = binary.AppendUvarint(e.b, uint64(len(ci.Decisions)))
	for _, d := range ci.Decisions {
		e.time(d.At)
		e.str(d.By)
		e.str(d.Agent)
		e.str(d.Ref)
		e.bool(d.Not)
		e.bool(d.New)
		encodeIDs(e, d.Unlinked)
		encodeSeen(e, d.Seen)
	}
	e.b = binary.AppendUvarint(e.b, uint64(len(ci.Pending)))
	for _, p := range ci.Pending {
		e.raw(p.Request)
		e.str(p.Fingerprint)
		e.bool(p.Merge)
	}
}

func (ci *CallIdentity) decode(d *dec) {
	ci.Candidates = decodeStrings(d)
	ci.Attestation = d.str()
	ci.PoppedTo = decodeStrings(d)
	if n := d.count(); n > 0 {
		ci.Decisions = make([]Decision, n)
		for i := range ci.Decisions {
			x := &ci.Decisions[i]
			x.At, x.By, x.Agent, x.Ref, x.Not, x.New = d.time(), d.str(), d.str(), d.str(), d.bool(), d.bool()
			x.Unlinked = decodeIDs(d)
			x.Seen = decodeSeen(d)
		}
	}
	if n := d.count(); n > 0 {
		ci.Pending = make([]PendingEnd, n)
		for i := range ci.Pending {
			ci.Pending[i] = PendingEnd{Request: d.raw(), Fingerprint: d.str(), Merge: d.bool()}
		}
	}
}

// encodeCallIdentity and decodeCallIdentity are the optional tail of a
// Call record: a marker byte, then the state.
func encodeCallIdentity(e *enc, ci *CallIdentity) {
	if ci == nil {
		e.bool(false)
		return
	}
	e.bool(true)
	ci.encode(e)
}

func decodeCallIdentity(d *dec) *CallIdentity {
	if len(d.b) == 0 || !d.bool() {
		return nil
	}
	ci := &CallIdentity{}
	ci.decode(d)
	return ci
}
