package store

import "encoding/binary"

// This file holds what identity resolution keeps besides the identifier
// index (issue 14): per call, which customers it may be from while nobody
// knows, and the ends waiting for someone to say. It rides at the end of
// the call record (Call.Identity), so the key layout does not change and
// records written before it still decode.

// CallIdentity is the identity state of one call.
type CallIdentity struct {
	// Candidates are the customers the call may be from while it is
	// unassigned (Call.CustomerRef empty), best first.
	Candidates []string `json:"candidates,omitempty"`
	// Pending are ends reported while the call was unassigned, oldest
	// first, saved on the customer once someone says who it was.
	Pending []PendingEnd `json:"pending,omitempty"`
}

// MaxPending bounds CallIdentity.Pending.
const MaxPending = 32

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
	e.b = binary.AppendUvarint(e.b, uint64(len(ci.Pending)))
	for _, p := range ci.Pending {
		e.raw(p.Request)
		e.str(p.Fingerprint)
		e.bool(p.Merge)
	}
}

func (ci *CallIdentity) decode(d *dec) {
	ci.Candidates = decodeStrings(d)
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
