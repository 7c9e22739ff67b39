package store

import (
	"encoding/binary"
	"errors"
	"time"
)

// Records are stored in a compact binary form: a version byte, then each
// field as a uvarint length and bytes, or a varint. It is several times
// cheaper than JSON to read and write, and starts read a handful of records
// on every ringing call.
const codecVersion = 1

var errCorrupt = errors.New("corrupt record")

type record interface {
	encode(*enc)
	decode(*dec)
}

type enc struct{ b []byte }

func (e *enc) str(s string) {
	e.b = binary.AppendUvarint(e.b, uint64(len(s)))
	e.b = append(e.b, s...)
}

func (e *enc) raw(b []byte) {
	e.b = binary.AppendUvarint(e.b, uint64(len(b)))
	e.b = append(e.b, b...)
}

func (e *enc) int(n int64) { e.b = binary.AppendVarint(e.b, n) }

func (e *enc) bool(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

func (e *enc) time(t time.Time) {
	if t.IsZero() {
		e.b = append(e.b, 0)
		return
	}
	e.b = append(e.b, 1)
	e.int(t.UnixNano())
}

type dec struct {
	b   []byte
	err error
}

func (d *dec) fail() {
	if d.err == nil {
		d.err = errCorrupt
	}
	d.b = nil
}

func (d *dec) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *dec) str() string { return string(d.bytes()) }

func (d *dec) raw() []byte {
	b := d.bytes()
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}

func (d *dec) int() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) byte() byte {
	if len(d.b) == 0 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *dec) bool() bool { return d.byte() == 1 }

func (d *dec) time() time.Time {
	if d.byte() == 0 {
		return time.Time{}
	}
	return time.Unix(0, d.int()).UTC()
}

// count reads a slice length, refusing lengths the remaining bytes cannot hold.
func (d *dec) count() int {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return 0
	}
	return int(n)
}

func marshal(r record) []byte {
	e := enc{b: make([]byte, 0, 256)}
	e.b = append(e.b, codecVersion)
	r.encode(&e)
	return e.b
}

func unmarshal(b []byte, r record) error {
	d, err := opened(b)
	if err != nil {
		return err
	}
	r.decode(&d)
	return d.err
}

func (id *Identifier) encode(e *enc) {
	e.str(id.Kind)
	e.str(id.Value)
	e.time(id.LinkedAt)
	e.str(id.Source)
}
func (id *Identifier) decode(d *dec) {
	id.Kind, id.Value, id.LinkedAt, id.Source = d.str(), d.str(), d.time(), d.str()
}

func (in *Intent) encode(e *enc) {
	e.str(in.Name)
	e.str(in.Status)
	e.int(int64(in.AttemptCount))
	e.time(in.FirstRaisedAt)
	e.time(in.LastContactAt)
	e.str(in.LastChannel)
}

func (in *Intent) decode(d *dec) {
	in.Name, in.Status, in.AttemptCount = d.str(), d.str(), int(d.int())
	in.FirstRaisedAt, in.LastContactAt, in.LastChannel = d.time(), d.time(), d.str()
}

func (c *Customer) encode(e *enc) {
	e.str(c.Ref)
	e.time(c.CreatedAt)
	e.time(c.UpdatedAt)
	e.time(c.LastContactAt)
	e.str(c.LastChannel)
	encodeIDs(e, c.Identifiers)
	e.b = binary.AppendUvarint(e.b, uint64(len(c.Intents)))
	for i := range c.Intents {
		c.Intents[i].encode(e)
	}
	e.b = binary.AppendUvarint(e.b, uint64(len(c.Variables)))
	for i := range c.Variables {
		c.Variables[i].encode(e)
	}
	e.b = binary.AppendUvarint(e.b, uint64(len(c.Recent)))
	for i := range c.Recent {
		c.Recent[i].encode(e)
	}
	// Added later (identity.go): records written before it end here.
	encodeSeen(e, c.Seen)
}

func (c *Customer) decode(d *dec) {
	c.Ref, c.CreatedAt, c.UpdatedAt, c.LastContactAt, c.LastChannel = d.str(), d.time(), d.time(), d.time(), d.str()
	c.Identifiers = decodeIDs(d)
	if n := d.count(); n > 0 {
		c.Intents = make([]Intent, n)
		for i := range c.Intents {
			c.Intents[i].decode(d)
		}
	}
	if n := d.count(); n > 0 {
		c.Variables = make([]Variable, n)
		for i := range c.Variables {
			c.Variables[i].decode(d)
		}
	}
	if n := d.count(); n > 0 {
		c.Recent = make([]Interaction, n)
		for i := range c.Recent {
			c.Recent[i].decode(d)
		}
	}
	if len(d.b) > 0 {
		c.Seen = decodeSeen(d)
	}
}

func encodeIDs(e *enc, ids []Identifier) {
	e.b = binary.AppendUvarint(e.b, uint64(len(ids)))
	for i := range ids {
		ids[i].encode(e)
	}
}

func decodeIDs(d *dec) []Identifier {
	n := d.count()
	if n == 0 {
		return nil
	}
	ids := make([]Identifier, n)
	for i := range ids {
		ids[i].decode(d)
	}
	return ids
}

func (v *Variable) encode(e *enc) {
	e.str(v.Name)
	e.str(v.Value)
	e.str(v.Source)
	e.time(v.SetAt)
	e.time(v.ExpiresAt)
}
func (v *Variable) decode(d *dec) {
	v.Name, v.Value, v.Source, v.SetAt, v.ExpiresAt = d.str(), d.str(), d.str(), d.time(), d.time()
}

func (h *Interaction) encode(e *enc) {
	e.str(h.CallID)
	e.str(h.Channel)
	e.time(h.StartedAt)
	e.time(h.EndedAt)
	e.str(h.Intent)
	e.str(h.IntentStatus)
	e.str(h.Summary)
	e.str(h.DNIS)
}

func (h *Interaction) decode(d *dec) {
	h.CallID, h.Channel, h.StartedAt, h.EndedAt = d.str(), d.str(), d.time(), d.time()
	h.Intent, h.IntentStatus, h.Summary, h.DNIS = d.str(), d.str(), d.str(), d.str()
}

func (c *Call) encode(e *enc) {
	e.str(c.ID)
	e.str(c.CustomerRef)
	e.str(c.Channel)
	e.time(c.StartedAt)
	encodeIDs(e, c.Identifiers)
	e.str(c.DNIS)
	e.str(c.StartFingerprint)
	e.raw(c.StartIdentity)
	e.bool(c.Ended)
	e.time(c.EndedAt)
	e.str(c.EndFingerprint)
	e.raw(c.EndResult)
	e.time(c.ExpiresAt)
	// Added later: records written before it simply end here.
	fps := refList(c.MergeFingerprints)
	fps.encode(e)
	encodeCallIdentity(e, c.Identity) // added later still (identity.go)
}

func (c *Call) decode(d *dec) {
	c.ID, c.CustomerRef, c.Channel, c.StartedAt = d.str(), d.str(), d.str(), d.time()
	c.Identifiers = decodeIDs(d)
	c.DNIS, c.StartFingerprint, c.StartIdentity = d.str(), d.str(), d.raw()
	c.Ended, c.EndedAt, c.EndFingerprint, c.EndResult, c.ExpiresAt = d.bool(), d.time(), d.str(), d.raw(), d.time()
	if len(d.b) > 0 {
		var fps refList
		fps.decode(d)
		if len(fps) > 0 {
			c.MergeFingerprints = fps
		}
	}
	c.Identity = decodeCallIdentity(d)
}

// refList and alias are the index and alias values.
type refList []string

func (r *refList) encode(e *enc) {
	e.b = binary.AppendUvarint(e.b, uint64(len(*r)))
	for _, s := range *r {
		e.str(s)
	}
}

func (r *refList) decode(d *dec) {
	n := d.count()
	*r = make([]string, n)
	for i := range *r {
		(*r)[i] = d.str()
	}
}

type alias string

func (a *alias) encode(e *enc) { e.str(string(*a)) }
func (a *alias) decode(d *dec) { *a = alias(d.str()) }

// The sweep and the statistics job read every call (and the sweep every
// customer) record for one or two fields; decoding each whole record made
// a dozen allocations of strings and slices they never looked at. These
// projections walk the same layout and keep only those fields, allocating
// nothing. They must follow the encode functions above field by field
// (codec_test.go and FuzzDecode hold them to the full decoders).

// skip passes over a length-prefixed field.
func (d *dec) skip() { d.bytes() }

func (d *dec) skipTime() {
	if d.byte() != 0 {
		d.int()
	}
}

func (d *dec) skipIDs() {
	for range d.count() {
		d.skip()
		d.skip()
		d.skipTime()
		d.skip()
	}
}

func opened(b []byte) (dec, error) {
	if len(b) == 0 || b[0] != codecVersion {
		return dec{}, errCorrupt
	}
	return dec{b: b[1:]}, nil
}

// callExpiry is Call.ExpiresAt of an encoded call record.
func callExpiry(b []byte) (time.Time, error) {
	d, err := opened(b)
	if err != nil {
		return time.Time{}, err
	}
	callHead(&d)
	d.byte() // Ended
	d.skipTime()
	d.skip() // EndFingerprint
	d.skip() // EndResult
	t := d.time()
	return t, d.err
}

// callHead reads a call record up to its start's identity, and returns
// StartedAt and StartIdentity (aliasing the record).
func callHead(d *dec) (time.Time, []byte) {
	d.skip() // ID
	d.skip() // CustomerRef
	d.skip() // Channel
	at := d.time()
	d.skipIDs()
	d.skip() // DNIS
	d.skip() // StartFingerprint
	return at, d.bytes()
}

// customerVarExpiring reports whether an encoded customer record holds a
// variable for which expired is true, given its ExpiresAt.
func customerVarExpiring(b []byte, expired func(time.Time) bool) (bool, error) {
	d, err := opened(b)
	if err != nil {
		return false, err
	}
	d.skip() // Ref
	d.skipTime()
	d.skipTime()
	d.skipTime()
	d.skip() // LastChannel
	d.skipIDs()
	for range d.count() { // Intents
		d.skip()
		d.skip()
		d.int()
		d.skipTime()
		d.skipTime()
		d.skip()
	}
	found := false
	for range d.count() { // Variables
		d.skip()
		d.skip()
		d.skip()
		d.skipTime()
		if t := d.time(); d.err == nil && expired(t) {
			found = true
		}
	}
	return found && d.err == nil, d.err
}

// callStart is Call.StartedAt and Call.StartIdentity of an encoded call
// record; the identity aliases b.
func callStart(b []byte) (time.Time, []byte, error) {
	d, err := opened(b)
	if err != nil {
		return time.Time{}, nil, err
	}
	at, ident := callHead(&d)
	if d.err != nil {
		return time.Time{}, nil, d.err
	}
	return at, ident, nil
}
