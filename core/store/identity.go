package store

import (
	"encoding/binary"
	"time"
)

// This file holds what identity resolution keeps besides the identifier
// index (issue 14): per call, whom it was popped to, which customers it
// may be from, what agents decided and the ends waiting for a decision. It
// rides at the end of the call record (Call.Identity), so the key layout
// does not change and records written before it still decode.

// CallIdentity is the identity state of one call.
type CallIdentity struct {
	// Candidates are the customers the call may be from while it is
	// unassigned (Call.CustomerRef empty), best first.
	Candidates []string `json:"candidates,omitempty"`
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
	// Unlinked are the identifiers a "not" took from Ref, so a later "it
	// was X after all" restores them.
	Unlinked []Identifier `json:"unlinked,omitempty"`
}

// PendingEnd is an end kept until the call's customer is known.
type PendingEnd struct {
	Request     []byte `json:"request"` // the engine's EndRequest, JSON
	Fingerprint string `json:"fp"`
	Merge       bool   `json:"merge,omitempty"`
}

// UnlinkCall removes the link between ref and one of its calls, when the
// call moves to another customer (or from unassigned, ref "").
func (t *Txn) UnlinkCall(ref, id string) error { return t.del(key(pCustCall, ref, id)) }

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
	ci.PoppedTo = decodeStrings(d)
	if n := d.count(); n > 0 {
		ci.Decisions = make([]Decision, n)
		for i := range ci.Decisions {
			x := &ci.Decisions[i]
			x.At, x.By, x.Agent, x.Ref, x.Not, x.New = d.time(), d.str(), d.str(), d.str(), d.bool(), d.bool()
			x.Unlinked = decodeIDs(d)
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
