package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Key layout. Ids, refs and identifier values never contain control
// characters (the engine rejects them), so 0x00 is a safe separator.
//
//	C<ref>                       Customer
//	A<ref>                       alias: ref merged into another customer
//	I<kind>\0<value>             []ref holding that identifier
//	H<ref>\0<^ended ns><call id> Interaction, newest first
//	K<call id>                   Call
//	L<ref>\0<call id>            the customer's calls (for erasure)
const (
	pCustomer    = 'C'
	pAlias       = 'A'
	pIdentifier  = 'I'
	pInteraction = 'H'
	pCall        = 'K'
	pCustCall    = 'L'
)

// MaxRefsPerIdentifier bounds how many customers one identifier may point at
// (an office switchboard); older links fall off first.
const MaxRefsPerIdentifier = 64

// Identifier is a normalised customer identifier: a phone number in E.164,
// an email address, or an external id of some kind.
type Identifier struct {
	Kind     string    `json:"kind"`
	Value    string    `json:"value"`
	LinkedAt time.Time `json:"linked_at"`
	Source   string    `json:"source,omitempty"`
}

// Intent is what a customer contacted us about, with its running state.
type Intent struct {
	Name          string    `json:"intent"`
	Status        string    `json:"status"`
	AttemptCount  int       `json:"attempt_count"`
	FirstRaisedAt time.Time `json:"first_raised_at"`
	LastContactAt time.Time `json:"last_contact_at"`
	LastChannel   string    `json:"last_channel,omitempty"`
}

// Customer is one person (or account) and what identifies them.
type Customer struct {
	Ref           string       `json:"ref"`
	CreatedAt     time.Time    `json:"created_at"`
	UpdatedAt     time.Time    `json:"updated_at"`
	LastContactAt time.Time    `json:"last_contact_at"`
	LastChannel   string       `json:"last_channel,omitempty"`
	Identifiers   []Identifier `json:"identifiers"`
	Intents       []Intent     `json:"intents"`
	// Variables live in the record (sorted by name), and so do the latest
	// interactions (newest first): a ringing call then needs one read for
	// the whole context instead of two range scans.
	Variables []Variable    `json:"variables"`
	Recent    []Interaction `json:"recent"`
	// Seen is when each identifier was last confirmed on the customer
	// (identity.go; records written before it have none).
	Seen []Seen `json:"seen,omitempty"`
}

// Variable is one named piece of context with its expiry.
type Variable struct {
	Name      string    `json:"name"`
	Value     string    `json:"value"`
	Source    string    `json:"source,omitempty"`
	SetAt     time.Time `json:"set_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Interaction is one finished contact on any channel.
type Interaction struct {
	CallID       string    `json:"call_id"`
	Channel      string    `json:"channel"`
	StartedAt    time.Time `json:"started_at"`
	EndedAt      time.Time `json:"ended_at"`
	Intent       string    `json:"intent,omitempty"`
	IntentStatus string    `json:"intent_status,omitempty"`
	Summary      string    `json:"summary,omitempty"`
	DNIS         string    `json:"dnis,omitempty"`
}

// Call is the state of one call_id: its start, and its end once it ended.
// The stored results let retries get the very same answer.
type Call struct {
	ID               string          `json:"id"`
	CustomerRef      string          `json:"customer_ref"`
	Channel          string          `json:"channel"`
	StartedAt        time.Time       `json:"started_at"`
	Identifiers      []Identifier    `json:"identifiers,omitempty"`
	DNIS             string          `json:"dnis,omitempty"`
	StartFingerprint string          `json:"start_fp,omitempty"`
	StartIdentity    json.RawMessage `json:"start_identity,omitempty"`
	Ended            bool            `json:"ended"`
	EndedAt          time.Time       `json:"ended_at"`
	EndFingerprint   string          `json:"end_fp,omitempty"`
	EndResult        json.RawMessage `json:"end_result,omitempty"`
	ExpiresAt        time.Time       `json:"expires_at"`
	// MergeFingerprints are the reports merged into the ended call (the
	// latest MaxMergeFingerprints), so a redelivered one changes nothing.
	MergeFingerprints []string `json:"merge_fps,omitempty"`
	// Identity is the call's identity state: candidates while unassigned,
	// pops, agents' decisions, ends waiting for one (identity.go).
	Identity *CallIdentity `json:"identity,omitempty"`
}

// MaxMergeFingerprints bounds Call.MergeFingerprints.
const MaxMergeFingerprints = 32

// Txn is a store transaction.
type Txn struct {
	bt *badger.Txn
	// ahead holds the records a ReadAhead read; filling marks the Txn a
	// read-ahead worker holds, which records what it reads there.
	ahead   *readAhead
	filling bool
	// writes marks a read-write transaction (Update, Try): only its
	// reads note expiries for the index.
	writes bool
	// exp holds the earliest expiry of each record read or written, so
	// a write changes the expiry index only when it changed (expiry.go).
	exp map[string]int64
}

func key(prefix byte, parts ...string) []byte {
	n := 1
	for _, p := range parts {
		n += len(p) + 1
	}
	k := make([]byte, 0, n)
	k = append(k, prefix)
	for i, p := range parts {
		if i > 0 {
			k = append(k, 0)
		}
		k = append(k, p...)
	}
	return k
}

func (t *Txn) get(k []byte, v record) (bool, error) {
	if t.ahead != nil && !t.filling {
		if r, ok := t.ahead.got[string(k)]; ok {
			if !r.found {
				return false, nil
			}
			return true, t.decode(k, r.value, v)
		}
	}
	item, err := t.bt.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		if t.filling {
			t.ahead.keep(k, nil, false)
		}
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("%w: read: %v", ErrUnavailable, err)
	}
	if t.filling {
		b, err := item.ValueCopy(nil)
		if err != nil {
			return false, fmt.Errorf("%w: read: %v", ErrUnavailable, err)
		}
		t.ahead.keep(k, b, true)
		return true, t.decode(k, b, v)
	}
	return true, item.Value(func(b []byte) error { return t.decode(k, b, v) })
}

func (t *Txn) decode(k, b []byte, v record) error {
	if err := unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: decode %q: %v", ErrUnavailable, k[:1], err)
	}
	t.readExpiry(k, v)
	return nil
}

// put writes record v at k, and its expiry to the expiry index.
func (t *Txn) put(k []byte, v record) error {
	if err := t.indexExpiry(k, v); err != nil {
		return err
	}
	return t.set(k, marshal(v))
}

// set is every write of a value: a read-ahead worker may not write, and a
// record read ahead is read again once t wrote it.
func (t *Txn) set(k, b []byte) error {
	if err := t.written(k); err != nil {
		return err
	}
	if err := t.bt.Set(k, b); err != nil {
		return fmt.Errorf("%w: write: %v", ErrUnavailable, err)
	}
	return nil
}

func (t *Txn) del(k []byte) error {
	if err := t.written(k); err != nil {
		return err
	}
	if was := t.exp[string(k)]; was != 0 && indexed(k) {
		// a record this transaction read: its index key goes too
		t.exp[string(k)] = 0
		if err := t.del(expiryKey(was, k)); err != nil {
			return err
		}
	}
	if err := t.bt.Delete(k); err != nil {
		return fmt.Errorf("%w: delete: %v", ErrUnavailable, err)
	}
	return nil
}

// scan calls fn for each key with the prefix, in key order, until fn
// returns false.
func (t *Txn) scan(prefix []byte, fn func(k []byte, item *badger.Item) (bool, error)) error {
	return t.iterate(prefix, prefix, fn)
}

// scanOptions are the options of every iterator over records: values are
// read with item.Value, never prefetched. Sticky's values sit inline in
// the LSM (they are far below Badger's value threshold), so Value hands
// out the bytes already in the table block, while a prefetching iterator
// starts a goroutine and copies the value for every record it passes
// (issue 17: at a million customers the periodic sweep and the
// statistics job spawned one goroutine per customer and call record).
// Callers decode or copy a value inside Value's function.
func scanOptions(prefix []byte) badger.IteratorOptions {
	return badger.IteratorOptions{Prefix: prefix, PrefetchValues: false}
}

// iterate is scan starting at key from (under prefix).
func (t *Txn) iterate(prefix, from []byte, fn func(k []byte, item *badger.Item) (bool, error)) error {
	it := t.bt.NewIterator(scanOptions(prefix))
	defer it.Close()
	for it.Seek(from); it.ValidForPrefix(prefix); it.Next() {
		more, err := fn(it.Item().Key(), it.Item())
		if err != nil {
			return err
		}
		if !more {
			break
		}
	}
	return nil
}

// Call returns the call record for id.
func (t *Txn) Call(id string) (Call, bool, error) {
	var c Call
	ok, err := t.get(key(pCall, id), &c)
	return c, ok, err
}

// PutCall writes a call record and links it to its customer.
func (t *Txn) PutCall(c Call) error {
	if err := t.put(key(pCall, c.ID), &c); err != nil {
		return err
	}
	return t.set(key(pCustCall, c.CustomerRef, c.ID), nil)
}

// Customer returns the customer with ref, following merge aliases.
func (t *Txn) Customer(ref string) (Customer, bool, error) {
	var c Customer
	ok, err := t.get(key(pCustomer, ref), &c)
	if err != nil || ok {
		return c, ok, err
	}
	var target alias
	if ok, err := t.get(key(pAlias, ref), &target); err != nil || !ok {
		return c, false, err
	}
	ok, err = t.get(key(pCustomer, string(target)), &c)
	return c, ok, err
}

// PutCustomer writes the customer record.
func (t *Txn) PutCustomer(c Customer) error { return t.put(key(pCustomer, c.Ref), &c) }

// PutAlias records that ref now lives on as target.
func (t *Txn) PutAlias(ref, target string) error {
	a := alias(target)
	return t.put(key(pAlias, ref), &a)
}

// Refs returns the customers holding an identifier, oldest link first.
func (t *Txn) Refs(kind, value string) ([]string, error) {
	var refs refList
	_, err := t.get(key(pIdentifier, kind, value), &refs)
	return refs, err
}

// AddRef links an identifier to ref; it reports whether anything changed.
func (t *Txn) AddRef(kind, value, ref string) (bool, error) {
	refs, err := t.Refs(kind, value)
	if err != nil {
		return false, err
	}
	if slices.Contains(refs, ref) {
		return false, nil
	}
	refs = append(refs, ref)
	if len(refs) > MaxRefsPerIdentifier {
		refs = refs[len(refs)-MaxRefsPerIdentifier:]
	}
	rl := refList(refs)
	return true, t.put(key(pIdentifier, kind, value), &rl)
}

// RemoveRef unlinks an identifier from ref.
func (t *Txn) RemoveRef(kind, value, ref string) error {
	refs, err := t.Refs(kind, value)
	if err != nil {
		return err
	}
	refs = slices.DeleteFunc(refs, func(r string) bool { return r == ref })
	if len(refs) == 0 {
		return t.del(key(pIdentifier, kind, value))
	}
	rl := refList(refs)
	return t.put(key(pIdentifier, kind, value), &rl)
}

func historyKey(ref string, endedAt time.Time, callID string) []byte {
	k := key(pInteraction, ref, "")
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], math.MaxUint64-uint64(endedAt.UnixNano()))
	k = append(k, ts[:]...)
	return append(k, callID...)
}

// History returns up to limit interactions of ref, newest first (limit <= 0: all).
func (t *Txn) History(ref string, limit int) ([]Interaction, error) {
	var out []Interaction
	err := t.scan(key(pInteraction, ref, ""), func(_ []byte, item *badger.Item) (bool, error) {
		var h Interaction
		if err := item.Value(func(b []byte) error { return unmarshal(b, &h) }); err != nil {
			return false, fmt.Errorf("%w: decode interaction: %v", ErrUnavailable, err)
		}
		out = append(out, h)
		return limit <= 0 || len(out) < limit, nil
	})
	return out, err
}

// PutInteraction adds an interaction to ref's history. What the
// statistics count for it is the caller's to write (PutContact).
func (t *Txn) PutInteraction(ref string, h Interaction) error {
	return t.put(historyKey(ref, h.EndedAt, h.CallID), &h)
}

// CallIDs lists the calls that belong to ref.
func (t *Txn) CallIDs(ref string) ([]string, error) {
	prefix := key(pCustCall, ref, "")
	var out []string
	err := t.scan(prefix, func(k []byte, _ *badger.Item) (bool, error) {
		out = append(out, string(k[len(prefix):]))
		return true, nil
	})
	return out, err
}

// DeleteCall removes a call record and its link to ref.
func (t *Txn) DeleteCall(ref, id string) error {
	if err := t.del(key(pCall, id)); err != nil {
		return err
	}
	return t.del(key(pCustCall, ref, id))
}

// DeleteCustomer removes ref's record, history and call links.
// Identifier links are the caller's to remove (it knows which they are).
func (t *Txn) DeleteCustomer(ref string) error {
	for _, prefix := range [][]byte{key(pInteraction, ref, ""), key(pCustCall, ref, "")} {
		var keys [][]byte
		if err := t.scan(prefix, func(k []byte, _ *badger.Item) (bool, error) {
			keys = append(keys, append([]byte(nil), k...))
			return true, nil
		}); err != nil {
			return err
		}
		for _, k := range keys {
			if err := t.delHistory(k); err != nil {
				return err
			}
		}
	}
	if err := t.del(tallyKey(ref)); err != nil {
		return err
	}
	return t.del(key(pCustomer, ref))
}

// DeleteAliasesTo removes aliases pointing at ref (after an erasure, an old
// merged ref must not find anybody either).
func (t *Txn) DeleteAliasesTo(ref string) error { return t.RetargetAliases(ref, "") }

// RetargetAliases points aliases of ref at target instead ("" deletes them),
// so that alias chains never form.
func (t *Txn) RetargetAliases(ref, target string) error {
	var keys [][]byte
	err := t.scan([]byte{pAlias}, func(k []byte, item *badger.Item) (bool, error) {
		var target alias
		if err := item.Value(func(b []byte) error { return unmarshal(b, &target) }); err != nil {
			return false, err
		}
		if string(target) == ref {
			keys = append(keys, append([]byte(nil), k...))
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		var err error
		if target == "" {
			err = t.del(k)
		} else {
			a := alias(target)
			err = t.put(k, &a)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// DeleteInteraction removes one interaction from ref's history.
func (t *Txn) DeleteInteraction(ref string, h Interaction) error {
	return t.delHistory(historyKey(ref, h.EndedAt, h.CallID))
}

// EachInteraction calls fn for every interaction in the store, grouped by
// customer (newest first within a customer). It reads in one snapshot.
func (s *DB) EachInteraction(fn func(ref string, h Interaction) error) error {
	return s.EachInteractionPaced(nil, fn)
}

// EachInteractionPaced is EachInteraction for a background job: with a
// pace it reads ScanChunk records per read transaction and calls pace
// between them, so a scan of a big store neither holds one snapshot open
// for its whole length (which keeps Badger from dropping old versions)
// nor takes a core from the requests for as long as it runs. Each
// interaction present throughout the scan is seen once, in key order, so
// a customer's interactions still arrive together.
func (s *DB) EachInteractionPaced(pace Pace, fn func(ref string, h Interaction) error) error {
	return s.scanChunks([]byte{pInteraction}, pace, func(k []byte, item *badger.Item) error {
		i := bytes.IndexByte(k[1:], 0)
		if i < 0 {
			return nil
		}
		var h Interaction
		if err := item.Value(func(b []byte) error { return unmarshal(b, &h) }); err != nil {
			return fmt.Errorf("%w: decode interaction: %v", ErrUnavailable, err)
		}
		return fn(string(k[1:1+i]), h)
	})
}

// EachCallStartPaced calls fn for every call record, in chunks with pace
// between them as EachInteractionPaced, with only the call's start time
// and the identity its start returned (the statistics job): it decodes
// nothing else. The identity's bytes are valid only
// during fn, which must not keep them.
func (s *DB) EachCallStartPaced(pace Pace, fn func(startedAt time.Time, startIdentity []byte) error) error {
	return s.scanChunks([]byte{pCall}, pace, func(_ []byte, item *badger.Item) error {
		return item.Value(func(b []byte) error {
			at, ident, err := callStart(b)
			if err != nil {
				return fmt.Errorf("%w: decode call: %v", ErrUnavailable, err)
			}
			return fn(at, ident)
		})
	})
}

// Pace is called between the chunks of a paced scan, outside any
// transaction; an error stops the scan and is returned.
type Pace func() error

// ScanChunk is how many records a paced scan reads per transaction.
const ScanChunk = 1000

// scanChunks calls fn for every record under prefix in key order. Without
// pace it reads them in one transaction; with one, ScanChunk records per
// transaction, resuming at the first key it has not handed to fn.
func (s *DB) scanChunks(prefix []byte, pace Pace, fn func(k []byte, item *badger.Item) error) error {
	return s.scanChunksFrom(prefix, prefix, pace, fn)
}

// scanChunksFrom is scanChunks starting at key from.
func (s *DB) scanChunksFrom(prefix, from []byte, pace Pace, fn func(k []byte, item *badger.Item) error) error {
	chunk := ScanChunk
	if pace == nil {
		chunk = math.MaxInt
	}
	for {
		var next []byte
		err := s.View(func(t *Txn) error {
			n := 0
			return t.iterate(prefix, from, func(k []byte, item *badger.Item) (bool, error) {
				if n == chunk {
					next = item.KeyCopy(nil)
					return false, nil
				}
				n++
				return true, fn(k, item)
			})
		})
		if err != nil || next == nil {
			return err
		}
		if err := pace(); err != nil {
			return err
		}
		from = next
	}
}
