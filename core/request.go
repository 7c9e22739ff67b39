package core

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Hints are what a channel knows about who is on the other end.
type Hints struct {
	ANI         string            `json:"ani,omitempty"`
	DNIS        string            `json:"dnis,omitempty"`
	ExternalIDs map[string]string `json:"external_ids,omitempty"`
	CustomerRef string            `json:"customer_ref,omitempty"`
	// Attestation is the caller id's STIR/SHAKEN attestation (A, B, C, or
	// failed when verification failed), from telco.attestation over HTTP
	// or from the PBX; see core.Attestation.
	Attestation string `json:"attestation,omitempty"`
}

func (h Hints) given() bool { return h.ANI != "" || len(h.ExternalIDs) > 0 || h.CustomerRef != "" }

// StartRequest asks who is calling and what we know about them.
type StartRequest struct {
	CallID   string `json:"call_id"`
	Hints    Hints  `json:"identity_hints"`
	LineType string `json:"line_type,omitempty"` // mobile, landline, voip or unknown
	Channel  string `json:"channel,omitempty"`   // default phone
}

// EndRequest saves what happened in one interaction on any channel.
type EndRequest struct {
	CallID       string            `json:"call_id"`
	CustomerRef  string            `json:"customer_ref,omitempty"`
	Hints        *Hints            `json:"identity_hints,omitempty"`
	Intent       string            `json:"intent,omitempty"`
	IntentStatus string            `json:"intent_status,omitempty"` // open, resolved, abandoned
	Variables    map[string]string `json:"variables,omitempty"`
	TTLSeconds   int               `json:"ttl_seconds,omitempty"`
	Channel      string            `json:"channel,omitempty"`
	// StartedAt and EndedAt let channels that report after the fact (chat,
	// email) record when the interaction really happened. Zero: the start's
	// time, and now.
	StartedAt time.Time `json:"started_at,omitzero"`
	EndedAt   time.Time `json:"ended_at,omitzero"`
	// Merge adds to an interaction that has already ended instead of
	// answering 409: the agent's wrap-up and the PBX's hang-up report
	// arrive in either order and both belong to the same call. It is never
	// set from the HTTP body.
	Merge bool `json:"-"`
}

// MaxBodyBytes is the largest request body accepted.
const MaxBodyBytes = 64 << 10

type fields map[string]json.RawMessage

// decodeObject parses b as one JSON object and nothing after it.
func decodeObject(b []byte, path ...any) (fields, error) {
	var f fields
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&f); err != nil || f == nil {
		msg := "body must be a JSON object"
		var se *json.SyntaxError
		if errors.As(err, &se) {
			msg = fmt.Sprintf("malformed JSON at byte %d: %v", se.Offset, se)
		}
		return nil, invalid("invalid JSON", Issue{Path: nonNil(path), Message: msg})
	}
	if dec.More() {
		return nil, invalid("invalid JSON", Issue{Path: nonNil(path), Message: "unexpected data after the JSON object"})
	}
	return f, nil
}

func nonNil(p []any) []any {
	if p == nil {
		return []any{}
	}
	return p
}

func isNull(raw json.RawMessage) bool { return raw == nil || string(raw) == "null" }

func (f fields) str(is *issues, name string, dst *string, path ...any) {
	raw, ok := f[name]
	if !ok || isNull(raw) {
		return
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		is.add("must be a string", append(path, name)...)
	}
}

func (f fields) object(is *issues, name string, path ...any) fields {
	raw, ok := f[name]
	if !ok || isNull(raw) {
		return nil
	}
	var sub fields
	if err := json.Unmarshal(raw, &sub); err != nil || sub == nil {
		is.add("must be an object", append(path, name)...)
		return nil
	}
	return sub
}

func (f fields) stringMap(is *issues, name string, path ...any) map[string]string {
	sub := f.object(is, name, path...)
	if sub == nil {
		return nil
	}
	out := make(map[string]string, len(sub))
	for k, raw := range sub {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			is.add("must be a string", append(path, name, k)...)
			continue
		}
		out[k] = s
	}
	return out
}

// scalarMap reads variables: strings, numbers and booleans become strings;
// anything else is an issue.
func (f fields) scalarMap(is *issues, name string, path ...any) map[string]string {
	sub := f.object(is, name, path...)
	if sub == nil {
		return nil
	}
	out := make(map[string]string, len(sub))
	for k, raw := range sub {
		raw = bytes.TrimSpace(raw)
		switch {
		case len(raw) > 0 && raw[0] == '"':
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				is.add("must be a string", append(path, name, k)...)
				continue
			}
			out[k] = s
		case string(raw) == "true" || string(raw) == "false":
			out[k] = string(raw)
		case len(raw) > 0 && (raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9')):
			var n json.Number
			if err := json.Unmarshal(raw, &n); err != nil {
				is.add("must be a number", append(path, name, k)...)
				continue
			}
			out[k] = n.String()
		default:
			is.add("must be a string, number or boolean (nested values are not allowed)", append(path, name, k)...)
		}
	}
	return out
}

func (f fields) boolean(is *issues, name string, dst **bool) {
	raw, ok := f[name]
	if !ok || isNull(raw) {
		return
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err != nil {
		is.add("must be a boolean", name)
		return
	}
	*dst = &b
}

func (f fields) integer(is *issues, name string, dst *int) {
	raw, ok := f[name]
	if !ok || isNull(raw) {
		return
	}
	n, err := strconv.ParseInt(string(bytes.TrimSpace(raw)), 10, 64)
	if err != nil || n < -1<<31 || n > 1<<31-1 {
		is.add("must be a whole number", name)
		return
	}
	*dst = int(n)
}

func (f fields) timestamp(is *issues, name string, dst *time.Time) {
	var s string
	f.str(is, name, &s)
	if s == "" {
		return
	}
	t, err := ParseTime(s)
	if err != nil {
		is.add("must be an RFC 3339 timestamp such as 2026-02-06T15:30:00.000Z", name)
		return
	}
	*dst = t
}

func (f fields) hints(is *issues, name string) (Hints, bool) {
	sub := f.object(is, name)
	if sub == nil {
		return Hints{}, false
	}
	var h Hints
	sub.str(is, "ani", &h.ANI, name)
	sub.str(is, "dnis", &h.DNIS, name)
	sub.str(is, "customer_ref", &h.CustomerRef, name)
	sub.str(is, "attestation", &h.Attestation, name)
	h.ExternalIDs = sub.stringMap(is, "external_ids", name)
	return h, true
}

// ParseStart decodes the JSON body of a start: the current form with
// identity_hints, or the flat legacy form {"call_id","ani","external_ids"}.
// Validation of the values happens in Engine.Start.
func ParseStart(b []byte) (StartRequest, error) {
	f, err := decodeObject(b)
	if err != nil {
		return StartRequest{}, err
	}
	var is issues
	var r StartRequest
	f.str(&is, "call_id", &r.CallID)
	f.str(&is, "channel", &r.Channel)
	if h, ok := f.hints(&is, "identity_hints"); ok {
		r.Hints = h
	} else {
		// legacy flat body
		f.str(&is, "ani", &r.Hints.ANI)
		f.str(&is, "dnis", &r.Hints.DNIS)
		f.str(&is, "customer_ref", &r.Hints.CustomerRef)
		r.Hints.ExternalIDs = f.stringMap(&is, "external_ids")
	}
	if telco := f.object(&is, "telco"); telco != nil {
		telco.str(&is, "line_type", &r.LineType, "telco")
		if r.Hints.Attestation == "" {
			telco.str(&is, "attestation", &r.Hints.Attestation, "telco")
		}
	}
	return r, is.err()
}

// ParseEnd decodes the JSON body of an end.
func ParseEnd(b []byte) (EndRequest, error) {
	f, err := decodeObject(b)
	if err != nil {
		return EndRequest{}, err
	}
	var is issues
	var r EndRequest
	f.str(&is, "call_id", &r.CallID)
	f.str(&is, "customer_ref", &r.CustomerRef)
	if h, ok := f.hints(&is, "identity_hints"); ok {
		r.Hints = &h
	}
	f.str(&is, "intent", &r.Intent)
	f.str(&is, "intent_status", &r.IntentStatus)
	var isOpen *bool
	f.boolean(&is, "intent_is_open", &isOpen)
	if isOpen != nil {
		legacy := StatusResolved
		if *isOpen {
			legacy = StatusOpen
		}
		if r.IntentStatus != "" && r.IntentStatus != legacy {
			is.add("contradicts intent_status; send one of them", "intent_is_open")
		}
		r.IntentStatus = legacy
	}
	r.Variables = f.scalarMap(&is, "variables")
	f.integer(&is, "ttl_seconds", &r.TTLSeconds)
	if raw, ok := f["ttl_seconds"]; ok && !isNull(raw) && r.TTLSeconds == 0 && len(is) == 0 {
		is.add("must be between 1 and 7776000 (90 days)", "ttl_seconds")
	}
	f.str(&is, "channel", &r.Channel)
	f.timestamp(&is, "started_at", &r.StartedAt)
	f.timestamp(&is, "ended_at", &r.EndedAt)
	return r, is.err()
}

// ParseMerge decodes {"from": "<ref>"}, the body of a merge.
func ParseMerge(b []byte) (string, error) {
	f, err := decodeObject(b)
	if err != nil {
		return "", err
	}
	var is issues
	var from string
	f.str(&is, "from", &from)
	if from == "" && len(is) == 0 {
		is.add("is required: the customer_ref to merge into this one", "from")
	}
	return from, is.err()
}
