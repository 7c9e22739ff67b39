package core_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/sticky-cc/sticky/core"
)

// The statistics index must give the figures the records give, whatever
// order the contacts arrive in: random ends (late reports, ties, wrap-ups
// merged into an ended call), starts, merges of customers, erasures and
// sweeps, held against Stats computed from every record.
func TestStatsIndexMatchesRecords(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { statsIndexModel(t, seed) })
	}
}

func statsIndexModel(t *testing.T, seed uint64) {
	ctx := context.Background()
	e, clk, _ := newEngine(t, monday)
	r := rand.New(rand.NewPCG(seed, 17))
	// an empty store is indexed by the first paced pass
	if _, err := e.BackgroundStats(ctx, monday.Add(-time.Hour), monday, 0, 1); err != nil {
		t.Fatal(err)
	}
	if ok, err := e.StatsIndexed(); err != nil || !ok {
		t.Fatalf("an empty store is not indexed after a pass (%v)", err)
	}
	pick := func(xs ...string) string { return xs[r.IntN(len(xs))] }
	refs := []string{"cust_a", "cust_b", "cust_c", "cust_d", "cust_e", "cust_f"}
	var ended []core.EndRequest
	latest := map[string]time.Time{}
	calls := 0
	for op := range 500 {
		clk.Add(time.Duration(r.IntN(int(30 * time.Hour))))
		switch n := r.IntN(100); {
		case n < 55: // an end, sometimes reported late or at a time already taken
			calls++
			req := core.EndRequest{
				CallID: fmt.Sprintf("c%d", calls), CustomerRef: pick(refs...),
				Channel: pick("phone", "chat", "email"), Intent: pick("", "refund", "billing", "refund"),
				IntentStatus: pick("open", "open", "resolved", "abandoned"),
			}
			if req.Intent == "" {
				req.IntentStatus = ""
			}
			switch m := r.IntN(10); {
			case m < 2:
				req.EndedAt = clk.Now().Add(-time.Duration(r.IntN(int(20 * 24 * time.Hour))))
			case m < 3 && len(ended) > 0:
				req.EndedAt = ended[r.IntN(len(ended))].EndedAt
			case m < 5 && !latest[req.CustomerRef].IsZero():
				// several contacts of one customer ending at once
				req.EndedAt = latest[req.CustomerRef]
			}
			if _, err := e.End(ctx, req); err != nil {
				t.Fatalf("op %d: end: %v", op, err)
			}
			if req.EndedAt.IsZero() {
				req.EndedAt = clk.Now()
			}
			if req.EndedAt.After(latest[req.CustomerRef]) {
				latest[req.CustomerRef] = req.EndedAt
			}
			ended = append(ended, req)
		case n < 65 && len(ended) > 0: // a wrap-up merged into an ended call
			req := ended[r.IntN(len(ended))]
			req.Merge, req.Intent, req.IntentStatus = true, pick("refund", "billing"), pick("open", "resolved")
			req.Channel = pick("phone", "chat")
			if r.IntN(2) == 0 {
				req.EndedAt = req.EndedAt.Add(time.Duration(r.IntN(int(48 * time.Hour))))
			}
			if _, err := e.End(ctx, req); err != nil && !isNotFound(err) {
				t.Fatalf("op %d: merged end: %v", op, err)
			}
		case n < 80: // a start
			calls++
			hints := core.Hints{CustomerRef: pick(refs...)}
			if r.IntN(3) == 0 {
				hints = core.Hints{ANI: fmt.Sprintf("+1415555%04d", r.IntN(20))}
			}
			if _, err := e.Start(ctx, core.StartRequest{CallID: fmt.Sprintf("c%d", calls), Hints: hints}); err != nil {
				t.Fatalf("op %d: start: %v", op, err)
			}
		case n < 86: // two customers turn out to be one
			into, from := pick(refs...), pick(refs...)
			if _, err := e.Merge(ctx, into, from); err != nil && !isNotFound(err) && !isInvalid(err) {
				t.Fatalf("op %d: merge: %v", op, err)
			}
		case n < 90:
			if err := e.DeleteCustomer(ctx, pick(refs...)); err != nil && !isNotFound(err) {
				t.Fatalf("op %d: erase: %v", op, err)
			}
		case n < 95:
			if _, err := e.Sweep(); err != nil {
				t.Fatalf("op %d: sweep: %v", op, err)
			}
		default: // a customer again under a new ref, for merges to find
			refs = append(refs, fmt.Sprintf("cust_%d", op))
		}
		if op%25 == 24 {
			compareStats(t, e, fmt.Sprintf("op %d", op), monday.Add(-30*24*time.Hour), clk.Now().Add(time.Hour), clk.Now().Add(-72*time.Hour), clk.Now())
		}
	}
	compareStats(t, e, "end", monday.Add(-30*24*time.Hour), clk.Now().Add(time.Hour))
	s, err := e.StatsFromRecords(ctx, monday.Add(-30*24*time.Hour), clk.Now().Add(time.Hour), 0)
	if err != nil {
		t.Fatal(err)
	}
	if s.ChannelSwitches == 0 || s.RepeatContacts == 0 || s.SwitchToResolution.Count == 0 || s.CallStarts == 0 {
		t.Fatalf("the model never reached some figures: %+v", s)
	}
}

// compareStats holds Stats (the index) against the records' figures over
// the windows [w0, w1), [w2, w3), ...
func compareStats(t *testing.T, e *core.Engine, at string, w ...time.Time) {
	t.Helper()
	ctx := context.Background()
	if ok, err := e.StatsIndexed(); err != nil || !ok {
		t.Fatalf("%s: the store is not indexed (%v)", at, err)
	}
	for i := 0; i+1 < len(w); i += 2 {
		got, err := e.Stats(ctx, w[i], w[i+1], 0)
		if err != nil {
			t.Fatal(err)
		}
		want, err := e.StatsFromRecords(ctx, w[i], w[i+1], 0)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s, window %d: the index says\n%+v\nthe records\n%+v", at, i/2, got, want)
		}
	}
}

// A store written before the index (or under another intent window) is
// walked again by the first paced pass, while ends keep arriving, and
// then gives the records' figures.
func TestStatsIndexBackfill(t *testing.T) {
	t.Run("other intent window", func(t *testing.T) { statsBackfill(t, false) })
	t.Run("no index", func(t *testing.T) { statsBackfill(t, true) })
}

func statsBackfill(t *testing.T, forget bool) {
	ctx := context.Background()
	e, clk, db := newEngine(t, monday)
	for c := range 1500 { // more than one chunk (store.ScanChunk) of customers
		clk.Add(time.Minute)
		for i, ch := range []string{"chat", "email", "phone"} {
			status := "open"
			if i == 2 && c%2 == 0 {
				status = "resolved"
			}
			if _, err := e.End(ctx, core.EndRequest{CallID: fmt.Sprintf("h%d-%d", c, i), CustomerRef: fmt.Sprintf("cust_%04d", c),
				Channel: ch, Intent: "refund", IntentStatus: status, EndedAt: clk.Now().Add(time.Duration(i) * 2 * time.Hour)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for c := range 1200 {
		if _, err := e.Start(ctx, core.StartRequest{CallID: fmt.Sprintf("s%d", c), Hints: core.Hints{CustomerRef: fmt.Sprintf("cust_%04d", c)}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.BackgroundStats(ctx, monday, clk.Now(), 0, 1); err != nil {
		t.Fatal(err)
	}
	if ok, err := e.StatsIndexed(); err != nil || !ok {
		t.Fatalf("not indexed after a pass (%v)", err)
	}
	// the same store under a shorter intent window: every count it holds
	// is stale, and Stats reads the records until a pass walked them
	e2 := core.New(core.Options{Store: db, Now: clk.Now, IntentWindow: 90 * time.Minute})
	if ok, err := e2.StatsIndexed(); err != nil || ok {
		t.Fatalf("indexed under another intent window (%v)", err)
	}
	if forget {
		// and one written before the index: no counts, no start keys
		if err := db.DropStatsIndex(); err != nil {
			t.Fatal(err)
		}
	}
	from, to := monday, clk.Now().Add(24*time.Hour)
	// a pass whose pace ends a customer's call while it walks the
	// histories (after that, the pass reads the index, and a contact
	// ending then may or may not be in its figures)
	n := 0
	pace := func() error {
		if ok, err := e2.StatsIndexed(); err != nil || ok {
			return err
		}
		n++
		_, err := e2.End(ctx, core.EndRequest{CallID: fmt.Sprintf("p%d", n), CustomerRef: fmt.Sprintf("cust_%04d", 1400+n), Channel: "phone", Intent: "refund", IntentStatus: "resolved"})
		return err
	}
	got, err := e2.BackgroundStatsPace(ctx, from, to, pace)
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("the pass ran in one chunk")
	}
	want, err := e2.StatsFromRecords(ctx, from, to, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("after the backfill the index says\n%+v\nthe records\n%+v", got, want)
	}
	if want.TotalContacts != 4500+n || want.CallStarts != 1200 || want.ChannelSwitches == 0 {
		t.Fatalf("the records' figures are not the store's: %+v", want)
	}
	compareStats(t, e2, "after", from, to)
}

func isNotFound(err error) bool { return core.ErrorCode(err) == core.CodeNotFound }
func isInvalid(err error) bool  { return core.ErrorCode(err) == core.CodeInvalid }
