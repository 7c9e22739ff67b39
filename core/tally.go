package core

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"time"

	"github.com/sticky-cc/sticky/core/store"
)

// The statistics index (issue 17; the keys are in core/store/tally.go).
// Stats walks each customer's history oldest first and counts what each
// interaction in the window is given those before it (contactClass). The
// engine runs the same walk as it writes: an interaction that ends after
// everything the customer had is one step from where the walk stood
// (tally, kept per customer); anything else (a late report, a merge of two
// customers, a replaced interaction) walks the customer's whole history
// again and rewrites what each interaction counts. A statistics pass then
// reads one small key per contact in its window instead of every record.

// defaultSwitchWindow is how far back a customer's previous contact may be
// for a change of channel to count as a switch, unless a caller says.
const defaultSwitchWindow = 7 * 24 * time.Hour

// contactClass is what one interaction counts for the statistics.
type contactClass struct {
	Channel string
	// From is the previous contact's channel when this one is a switch.
	From   string
	Intent bool
	Repeat bool
	// Resolved says this contact resolved an intent that had switched
	// channel, ToResolution how long after the switch.
	Resolved     bool
	ToResolution time.Duration
}

// walkIntent is where the walk stands for one intent.
type walkIntent struct {
	Open     bool
	Last     time.Time
	Switched time.Time
}

// walk is where the walk over one customer's history stands.
type walk struct {
	Gen         string
	N           int
	Last        time.Time
	LastChannel string
	// LastID is the call ID of the last interaction walked. Ties in
	// EndedAt are walked in descending call ID (oldestFirst), so it is the
	// smallest of those that ended at Last, and an interaction ending at
	// Last with a smaller ID comes after them all.
	LastID  string
	Intents map[string]*walkIntent
}

// next says whether h comes after everything the walk has seen.
func (w *walk) next(h store.Interaction) bool {
	return w.N == 0 || h.EndedAt.After(w.Last) || h.EndedAt.Equal(w.Last) && h.CallID < w.LastID
}

// step counts h, the customer's next interaction oldest first, and moves
// the walk past it.
func (w *walk) step(h store.Interaction, switchWindow, intentWindow time.Duration) contactClass {
	cl := contactClass{Channel: h.Channel}
	switched := w.N > 0 && w.LastChannel != h.Channel && h.EndedAt.Sub(w.Last) <= switchWindow
	if switched {
		cl.From = w.LastChannel
	}
	w.N, w.Last, w.LastChannel, w.LastID = w.N+1, h.EndedAt, h.Channel, h.CallID
	if h.Intent == "" {
		return cl
	}
	cl.Intent = true
	st := w.Intents[h.Intent]
	if st == nil {
		st = &walkIntent{}
		if w.Intents == nil {
			w.Intents = map[string]*walkIntent{}
		}
		w.Intents[h.Intent] = st
	}
	live := st.Open && h.EndedAt.Sub(st.Last) <= intentWindow
	cl.Repeat = live
	if !live {
		st.Switched = time.Time{}
	}
	if switched && st.Switched.IsZero() && (live || h.IntentStatus != StatusResolved) {
		st.Switched = h.EndedAt
	}
	if h.IntentStatus == StatusResolved {
		if !st.Switched.IsZero() {
			cl.Resolved, cl.ToResolution = true, h.EndedAt.Sub(st.Switched)
		}
		st.Open, st.Switched = false, time.Time{}
	} else {
		st.Open = true
	}
	st.Last = h.EndedAt
	return cl
}

// prune drops the intents no later step can see as live: resolved ones,
// and open ones older than intentWindow before the walk's last contact
// (a later contact is later still). Walking on gives the same counts.
func (w *walk) prune(intentWindow time.Duration) {
	for name, st := range w.Intents {
		if !st.Open || w.Last.Sub(st.Last) > intentWindow {
			delete(w.Intents, name)
		}
	}
}

// oldestFirst sorts a history (as History returns it, newest first) into
// the walk's order: by EndedAt, ties in the order given. Stable, so the
// order does not depend on which other interactions are in the slice.
func oldestFirst(hist []store.Interaction) {
	slices.Reverse(hist)
	slices.SortStableFunc(hist, func(a, b store.Interaction) int { return a.EndedAt.Compare(b.EndedAt) })
}

// statsGen names the settings the index's counts depend on: a store
// indexed under others is walked again. Every tally holds it, so it is
// a 64-bit hash of them.
func statsGen(intentWindow time.Duration) string {
	h := fnv.New64a()
	fmt.Fprintf(h, "v1 switch=%d intent=%d", int64(defaultSwitchWindow), int64(intentWindow))
	return string(h.Sum(nil))
}

// tallyEnd keeps the index in step after the end path wrote h to ref's
// history. appended says nothing else in the history moved, fresh that
// the history held nothing before h; the walk then takes one step when h
// comes after everything before it.
func (e *Engine) tallyEnd(t *store.Txn, ref string, h store.Interaction, appended, fresh bool) error {
	gen := e.gen
	if appended && fresh {
		return e.tallyStep(t, ref, &walk{Gen: gen}, h)
	}
	if appended {
		w, ok, err := e.readTally(t, ref)
		if err != nil {
			return err
		}
		if ok && w.next(h) {
			return e.tallyStep(t, ref, &w, h)
		}
	}
	return e.retally(t, ref)
}

// readTally returns ref's tally; ok is false when it has none under this
// engine's settings (none at all, unreadable, or another generation).
func (e *Engine) readTally(t *store.Txn, ref string) (w walk, ok bool, err error) {
	b, found, err := t.Tally(ref)
	if err != nil || !found {
		return w, false, err
	}
	return w, w.decode(b) == nil && w.Gen == e.gen, nil
}

func (e *Engine) tallyStep(t *store.Txn, ref string, w *walk, h store.Interaction) error {
	cl := w.step(h, defaultSwitchWindow, e.opts.IntentWindow)
	if err := t.PutContact(ref, h, cl.encode()); err != nil {
		return err
	}
	return putWalk(t, ref, w, e.opts.IntentWindow)
}

// retally walks ref's whole history again and rewrites what each
// interaction counts, and the customer's tally.
func (e *Engine) retally(t *store.Txn, ref string) error {
	hist, err := t.History(ref, 0)
	if err != nil {
		return err
	}
	oldestFirst(hist)
	w := walk{Gen: e.gen}
	for _, h := range hist {
		if err := t.PutContact(ref, h, w.step(h, defaultSwitchWindow, e.opts.IntentWindow).encode()); err != nil {
			return err
		}
	}
	return putWalk(t, ref, &w, e.opts.IntentWindow)
}

func putWalk(t *store.Txn, ref string, w *walk, intentWindow time.Duration) error {
	w.prune(intentWindow)
	return t.PutTally(ref, w.encode())
}

// startSummary is what a call's start counts: its identity's level and
// recommendation, as Start recorded them.
type startSummary struct {
	Level, Recommendation string
}

// summarizeStart reads a call record's start identity; ok is false for a
// call the statistics do not count (none, or no level).
func summarizeStart(ident []byte) (startSummary, bool) {
	if len(ident) == 0 {
		return startSummary{}, false
	}
	var id struct{ Level, Recommendation string }
	if json.Unmarshal(ident, &id) != nil || id.Level == "" {
		return startSummary{}, false
	}
	return startSummary{id.Level, id.Recommendation}, true
}

// tallyStart writes the start key of call c from its record's start
// identity (the backfill).
func tallyStart(t *store.Txn, c store.Call) error {
	s, _ := summarizeStart(c.StartIdentity)
	return putStart(t, c, s)
}

// putStart writes the start key of call c, which Start is writing with
// an identity of level and recommendation s (what summarizeStart reads
// back from the record).
func putStart(t *store.Txn, c store.Call, s startSummary) error {
	if s.Level == "" {
		return nil
	}
	return t.PutCallStart(c, s.encode())
}

// statsIndexed says whether the index covers the store for this engine's
// settings.
func (e *Engine) statsIndexed() (bool, error) {
	var ok bool
	err := e.db.View(func(t *store.Txn) error {
		b, found, err := t.StatsIndex()
		ok = found && string(b) == e.gen
		return err
	})
	return ok, err
}

// tallyBatch is how many customers or calls one write transaction of the
// index's backfill covers.
const tallyBatch = 100

// indexStats builds the statistics index over a store it does not cover
// (one written before it, or under other settings), in chunks with pace
// between them, and marks it. Ends meanwhile keep their own customers'
// counts; a customer's walk here conflicts with an end writing it, and
// one of the two runs again.
func (e *Engine) indexStats(ctx context.Context, pace store.Pace) error {
	if ok, err := e.statsIndexed(); err != nil || ok {
		return err
	}
	began, done := time.Now(), 0
	inBatches := func(keys []string, fn func(t *store.Txn, key string) error) error {
		for len(keys) > 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			batch := keys[:min(tallyBatch, len(keys))]
			keys = keys[len(batch):]
			if err := e.db.Update(func(t *store.Txn) error {
				for _, k := range batch {
					if err := fn(t, k); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	}
	err := e.db.EachCustomerRefPaced(pace, func(refs []string) error {
		done += len(refs)
		return inBatches(refs, func(t *store.Txn, ref string) error {
			if _, ok, err := e.readTally(t, ref); err != nil || ok {
				return err
			}
			// read the record, so an end writing this customer meanwhile
			// conflicts with this walk
			if _, ok, err := t.Customer(ref); err != nil || !ok {
				return err
			}
			return e.retally(t, ref)
		})
	})
	if err != nil {
		return storeErr(err)
	}
	err = e.db.EachCallIDPaced(pace, func(ids []string) error {
		return inBatches(ids, func(t *store.Txn, id string) error {
			c, ok, err := t.Call(id)
			if err != nil || !ok {
				return err
			}
			return tallyStart(t, c)
		})
	})
	if err != nil {
		return storeErr(err)
	}
	if err := e.db.Update(func(t *store.Txn) error { return t.PutStatsIndex([]byte(e.gen)) }); err != nil {
		return storeErr(err)
	}
	e.log.Info("statistics index built", "customers", done, "took", time.Since(began).Round(time.Millisecond))
	return nil
}

// The index's values are written on every end, so they are a compact
// binary form (uvarint-prefixed strings, varints, a flag byte) rather than
// JSON, which took a fifth of an end's CPU in the first version.

type tallyEnc []byte

func (b tallyEnc) str(s string) tallyEnc {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func (b tallyEnc) int(n int64) tallyEnc { return binary.AppendVarint(b, n) }

func (b tallyEnc) time(t time.Time) tallyEnc {
	if t.IsZero() {
		return b.int(math.MinInt64)
	}
	return b.int(t.UnixNano())
}

type tallyDec struct {
	b   []byte
	err error
}

var errTallyCorrupt = errors.New("corrupt statistics index value")

// skip moves past a varint of n bytes (n <= 0: none could be read).
func (d *tallyDec) skip(n int) bool {
	if n <= 0 {
		d.err, d.b = errTallyCorrupt, nil
		return false
	}
	d.b = d.b[n:]
	return true
}

func (d *tallyDec) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if !d.skip(n) {
		return 0
	}
	return v
}

func (d *tallyDec) int() int64 {
	v, n := binary.Varint(d.b)
	if !d.skip(n) {
		return 0
	}
	return v
}

func (d *tallyDec) str() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.err, d.b = errTallyCorrupt, nil
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *tallyDec) time() time.Time {
	n := d.int()
	if n == math.MinInt64 || d.err != nil {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

const (
	classIntent = 1 << iota
	classRepeat
	classResolved
)

func (c contactClass) encode() []byte {
	var flags int64
	if c.Intent {
		flags |= classIntent
	}
	if c.Repeat {
		flags |= classRepeat
	}
	if c.Resolved {
		flags |= classResolved
	}
	return tallyEnc(make([]byte, 0, 24)).str(c.Channel).str(c.From).int(flags).int(int64(c.ToResolution))
}

func (c *contactClass) decode(b []byte) error {
	d := tallyDec{b: b}
	c.Channel, c.From = d.str(), d.str()
	flags := d.int()
	c.ToResolution = time.Duration(d.int())
	c.Intent, c.Repeat, c.Resolved = flags&classIntent != 0, flags&classRepeat != 0, flags&classResolved != 0
	return d.err
}

func (w *walk) encode() []byte {
	b := tallyEnc(make([]byte, 0, 64)).str(w.Gen).int(int64(w.N)).time(w.Last).str(w.LastChannel).str(w.LastID)
	b = binary.AppendUvarint(b, uint64(len(w.Intents)))
	names := make([]string, 0, len(w.Intents))
	for name := range w.Intents {
		names = append(names, name)
	}
	slices.Sort(names) // the same walk, the same bytes
	for _, name := range names {
		st := w.Intents[name]
		open := int64(0)
		if st.Open {
			open = 1
		}
		b = b.str(name).int(open).time(st.Last).time(st.Switched)
	}
	return b
}

func (w *walk) decode(b []byte) error {
	d := tallyDec{b: b}
	w.Gen, w.N, w.Last, w.LastChannel, w.LastID = d.str(), int(d.int()), d.time(), d.str(), d.str()
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		return errTallyCorrupt
	}
	w.Intents = nil
	if n > 0 {
		w.Intents = make(map[string]*walkIntent, n)
	}
	for range n {
		name := d.str()
		st := &walkIntent{Open: d.int() == 1, Last: d.time(), Switched: d.time()}
		w.Intents[name] = st
	}
	return d.err
}

func (s startSummary) encode() []byte {
	return tallyEnc(make([]byte, 0, 24)).str(s.Level).str(s.Recommendation)
}

func (s *startSummary) decode(b []byte) error {
	d := tallyDec{b: b}
	s.Level, s.Recommendation = d.str(), d.str()
	return d.err
}
