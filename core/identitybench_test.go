package core_test

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/core/store"
)

// BenchmarkIdentity is the labelled identity benchmark (issue 14): it
// builds a population through the real engine on Badger (single customers
// with their own mobile, some with a second number; households of 2 to 4
// on one landline; offices of 8 to 25 behind a switchboard), rings calls
// whose truth is known, and prints per scenario and in total what Sticky
// decided next to two baselines on the same store: a naive last-seen
// lookup, and Amazon Connect's rule (a key that matches exactly one
// profile attaches). Run it with
//
//	go test ./core/ -run '^$' -bench Identity
//
// STICKY_IDENTITY_SEED picks another population. It fails when a target
// of the issue is missed: wrong pops <= 0.1% of calls, >= 97% right reuse
// where the hints identify the caller, no duplicate of a known customer,
// the truth offered in >= 99% of ambiguous calls, calibration error <=
// 0.05. The population is synthetic and the model's defaults were chosen
// with it in view, so these are in-sample figures: they show the model
// does what it claims on the situations listed, not how it does on your
// callers.
func BenchmarkIdentity(b *testing.B) {
	seed := uint64(1)
	if s := os.Getenv("STICKY_IDENTITY_SEED"); s != "" {
		fmt.Sscan(s, &seed)
	}
	var r *benchReport
	for b.Loop() {
		if r == nil { // one evaluation is the measurement; b.Loop may ask again
			r = runIdentityBench(b, seed)
		}
	}
	r.print(os.Stdout)
	for _, miss := range r.missed() {
		b.Error(miss)
	}
	b.ReportMetric(r.total["sticky"].wrongRate()*100, "wrong-pop-%")
	b.ReportMetric(r.total["sticky"].rightReuseRate()*100, "right-reuse-%")
	b.ReportMetric(float64(r.total["sticky"].duplicates), "duplicates")
	b.ReportMetric(r.total["sticky"].offeredRate()*100, "truth-offered-%")
	b.ReportMetric(r.ece, "ECE")
	b.ReportMetric(float64(r.p99.Microseconds()), "start-p99-µs")
}

// The scenarios, in the order they are printed.
const (
	scOwnMobile      = "own mobile"
	scMobileEmail    = "own mobile + email"
	scNewNumberEmail = "new number + known email"
	scSecondNumber   = "second number on file"
	scHouseholdID    = "household line + own customer id"
	scOfficeEmail    = "switchboard + own email"
	scHouseholdAlone = "household line alone"
	scOfficeAlone    = "switchboard alone"
	scContradicting  = "partner's mobile + own email"
	scStaleOwner     = "own number unseen 4-10 months"
	scNewMember      = "new member on a household line"
	scRecycled       = "recycled number, new owner"
	scGatewayOwner   = "own mobile through a gateway (C)"
	scSpoofed        = "spoofed caller id (attested C)"
	scStranger       = "stranger"
)

var scenarioOrder = []string{scOwnMobile, scMobileEmail, scNewNumberEmail, scSecondNumber, scHouseholdID, scOfficeEmail,
	scHouseholdAlone, scOfficeAlone, scContradicting, scStaleOwner, scGatewayOwner, scNewMember, scRecycled, scSpoofed, scStranger}

type benchPerson struct {
	ref                   string
	kind                  string // single, household, office
	group                 int    // household or office index
	mobile, second, email string
	cid                   string
	activity              float64 // how often they are in touch (and so call)
	stale                 bool    // their mobile was last seen long ago
	last                  time.Time
}

type benchCall struct {
	scenario    string
	truth       string // the caller's ref; "" for someone Sticky does not know
	hints       core.Hints
	identifying bool // the hints identify a known caller
	ambiguous   bool // known customers match but the hints do not say which
}

// outcome is what one policy did with one call.
type outcome struct {
	assigned   string   // the customer the call was popped as ("" none)
	created    bool     // a new customer was created for it
	offered    []string // who was offered (assigned or candidates)
	confidence float64
	best       string // the best candidate named, assigned or not
}

type tally struct {
	calls, wrong, identifying, right, duplicates, ambiguous, offered int
}

func (t tally) wrongRate() float64      { return ratio(t.wrong, t.calls) }
func (t tally) rightReuseRate() float64 { return ratio(t.right, t.identifying) }
func (t tally) offeredRate() float64    { return ratio(t.offered, t.ambiguous) }

func ratio(a, b int) float64 {
	if b == 0 {
		return math.NaN()
	}
	return float64(a) / float64(b)
}

type benchReport struct {
	seed             uint64
	customers, calls int
	per              map[string]map[string]*tally // policy -> scenario
	total            map[string]tally
	bins             [10]struct {
		n, hits int
		conf    float64
	}
	ece                  float64
	p50, p99             time.Duration
	mustReuse, mustOffer []string // examples of misses, for the log
	wrongPops            []string
}

var policies = []string{"sticky", "naive last-seen", "connect exactly-one"}

// numberGen makes distinct, valid North American numbers that are not
// placeholders.
type numberGen struct {
	rng  *rand.Rand
	seen map[string]bool
}

func (g *numberGen) next() string {
	for {
		n := fmt.Sprintf("+1%d%02d%d%02d%04d", 2+g.rng.IntN(8), g.rng.IntN(100), 2+g.rng.IntN(8), g.rng.IntN(100), g.rng.IntN(10000))
		if n[5:8] == "555" || g.seen[n] || core.BlockedPhone(n) {
			continue
		}
		g.seen[n] = true
		return n
	}
}

func runIdentityBench(b *testing.B, seed uint64) *benchReport {
	b.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 14))
	nums := &numberGen{rng: rng, seen: map[string]bool{}}
	now := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	day := 24 * time.Hour

	db, err := store.Open(store.Options{Dir: b.TempDir(), MinFreeBytes: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	clk := &clock{t: now}
	created := 0
	e := core.New(core.Options{Store: db, Now: clk.Now, NewRef: func() string { created++; return fmt.Sprintf("new_%d", created) }})

	// The population.
	var people []*benchPerson
	add := func(p *benchPerson) *benchPerson {
		p.ref = fmt.Sprintf("p%04d", len(people))
		p.activity = 0.2 + rng.ExpFloat64()
		people = append(people, p)
		return p
	}
	for range 420 {
		p := add(&benchPerson{kind: "single", mobile: nums.next()})
		if rng.Float64() < 0.8 {
			p.email = strings.TrimPrefix(p.ref, "p") + "@mail.test"
			p.email = "c" + p.email
		}
		if rng.Float64() < 0.5 {
			p.cid = "CID-" + p.ref[1:]
		}
		if rng.Float64() < 0.15 {
			p.second = nums.next()
		}
	}
	var households [][]*benchPerson
	var landlines []string
	for h := range 80 {
		ll := nums.next()
		landlines = append(landlines, ll)
		var members []*benchPerson
		for range 2 + rng.IntN(3) {
			p := add(&benchPerson{kind: "household", group: h})
			if rng.Float64() < 0.6 {
				p.email = "c" + p.ref[1:] + "@home.test"
			}
			if rng.Float64() < 0.5 {
				p.cid = "CID-" + p.ref[1:]
			}
			if rng.Float64() < 0.5 {
				p.mobile = nums.next()
			}
			members = append(members, p)
		}
		households = append(households, members)
	}
	var offices [][]*benchPerson
	var boards []string
	for o := range 12 {
		boards = append(boards, nums.next())
		var staff []*benchPerson
		for range 8 + rng.IntN(18) {
			p := add(&benchPerson{kind: "office", group: o})
			if rng.Float64() < 0.9 {
				p.email = "c" + p.ref[1:] + "@work.test"
			}
			staff = append(staff, p)
		}
		offices = append(offices, staff)
	}
	// Singles whose mobile was last seen 4 to 10 months ago; some still
	// email, some were simply not in touch.
	singles := people[:420]
	for _, i := range rng.Perm(len(singles))[:110] {
		singles[i].stale = true
	}

	// Their history, through End as every channel writes it: the first
	// contact links every identifier they have, later ones come by phone
	// (from the shared line for households and offices) or by email.
	seq := 0
	end := func(p *benchPerson, at time.Time, channel string, h core.Hints) {
		seq++
		clk.Set(at)
		req := core.EndRequest{CallID: fmt.Sprintf("seed_%d", seq), CustomerRef: p.ref, Channel: channel, Hints: &h, EndedAt: at,
			Intent: "billing_inquiry"}
		if _, err := e.End(ctx, req); err != nil {
			b.Fatalf("seeding %s: %v", p.ref, err)
		}
		if at.After(p.last) {
			p.last = at
		}
	}
	ids := func(p *benchPerson) map[string]string {
		m := map[string]string{}
		if p.email != "" {
			m["email"] = p.email
		}
		if p.cid != "" {
			m["customer_id"] = p.cid
		}
		return m
	}
	for _, p := range people {
		phone := p.mobile
		switch p.kind {
		case "household":
			phone = landlines[p.group]
		case "office":
			phone = boards[p.group]
		}
		// how long ago they were last in touch: the more active, the more recent
		ago := func() time.Duration {
			return time.Duration(min(rng.ExpFloat64()*25/p.activity, 80) * float64(day))
		}
		first := now.Add(-time.Duration(10+rng.IntN(75)) * day)
		if p.stale {
			first = now.Add(-time.Duration(120+rng.IntN(180)) * day)
		}
		end(p, first, "phone", core.Hints{ANI: phone, ExternalIDs: ids(p)})
		if p.mobile != "" && p.kind == "household" {
			end(p, first.Add(time.Hour), "phone", core.Hints{ANI: p.mobile})
		}
		if p.second != "" {
			end(p, now.Add(-ago()), "phone", core.Hints{ANI: p.second})
		}
		n := 1 + int(p.activity*1.5)
		for range min(n, 5) {
			at := now.Add(-ago())
			switch {
			case p.stale && p.email != "" && rng.Float64() < 0.6:
				end(p, at, "email", core.Hints{ExternalIDs: map[string]string{"email": p.email}})
			case p.stale:
				// not in touch since the first contact
			case p.email != "" && rng.Float64() < 0.25:
				end(p, at, "email", core.Hints{ExternalIDs: map[string]string{"email": p.email}})
			default:
				end(p, at, "phone", core.Hints{ANI: phone})
			}
		}
	}
	clk.Set(now)

	// The calls.
	pick := func(ps []*benchPerson, ok func(*benchPerson) bool) *benchPerson {
		var w float64
		for _, p := range ps {
			if ok(p) {
				w += p.activity
			}
		}
		if w == 0 {
			return nil
		}
		x := rng.Float64() * w
		for _, p := range ps {
			if ok(p) {
				if x -= p.activity; x <= 0 {
					return p
				}
			}
		}
		return nil
	}
	any := func(*benchPerson) bool { return true }
	mobileAtt := func() string { return []string{"A", "", "A", "B"}[rng.IntN(4)] }
	lineAtt := func() string { return []string{"", "", "A", "B"}[rng.IntN(4)] }
	var calls []benchCall
	addCalls := func(n int, mk func() *benchCall) {
		for range n {
			if c := mk(); c != nil {
				calls = append(calls, *c)
			}
		}
	}
	fresh := func(*benchPerson) bool { return true }
	addCalls(400, func() *benchCall {
		p := pick(singles, func(p *benchPerson) bool { return !p.stale })
		return &benchCall{scOwnMobile, p.ref, core.Hints{ANI: p.mobile, Attestation: mobileAtt()}, true, false}
	})
	addCalls(150, func() *benchCall {
		p := pick(singles, func(p *benchPerson) bool { return !p.stale && p.email != "" })
		return &benchCall{scMobileEmail, p.ref, core.Hints{ANI: p.mobile, Attestation: mobileAtt(), ExternalIDs: map[string]string{"email": p.email}}, true, false}
	})
	addCalls(120, func() *benchCall {
		p := pick(people, func(p *benchPerson) bool { return p.email != "" && p.kind != "office" })
		return &benchCall{scNewNumberEmail, p.ref, core.Hints{ANI: nums.next(), Attestation: mobileAtt(), ExternalIDs: map[string]string{"email": p.email}}, true, false}
	})
	addCalls(60, func() *benchCall {
		p := pick(singles, func(p *benchPerson) bool { return p.second != "" })
		return &benchCall{scSecondNumber, p.ref, core.Hints{ANI: p.second, Attestation: mobileAtt()}, true, false}
	})
	addCalls(120, func() *benchCall {
		hh := households[rng.IntN(len(households))]
		p := pick(hh, func(p *benchPerson) bool { return p.cid != "" })
		if p == nil {
			return nil
		}
		return &benchCall{scHouseholdID, p.ref, core.Hints{ANI: landlines[p.group], Attestation: lineAtt(), ExternalIDs: map[string]string{"customer_id": p.cid}}, true, false}
	})
	addCalls(150, func() *benchCall {
		o := offices[rng.IntN(len(offices))]
		p := pick(o, func(p *benchPerson) bool { return p.email != "" })
		return &benchCall{scOfficeEmail, p.ref, core.Hints{ANI: boards[p.group], Attestation: lineAtt(), ExternalIDs: map[string]string{"email": p.email}}, true, false}
	})
	addCalls(200, func() *benchCall {
		p := pick(households[rng.IntN(len(households))], fresh)
		return &benchCall{scHouseholdAlone, p.ref, core.Hints{ANI: landlines[p.group], Attestation: lineAtt()}, false, true}
	})
	addCalls(150, func() *benchCall {
		p := pick(offices[rng.IntN(len(offices))], any)
		return &benchCall{scOfficeAlone, p.ref, core.Hints{ANI: boards[p.group], Attestation: lineAtt()}, false, true}
	})
	addCalls(60, func() *benchCall {
		hh := households[rng.IntN(len(households))]
		x := pick(hh, func(p *benchPerson) bool { return p.email != "" })
		if x == nil {
			return nil
		}
		y := pick(hh, func(p *benchPerson) bool { return p != x && p.mobile != "" })
		if y == nil {
			return nil
		}
		return &benchCall{scContradicting, x.ref, core.Hints{ANI: y.mobile, Attestation: mobileAtt(), ExternalIDs: map[string]string{"email": x.email}}, false, true}
	})
	stale := func(p *benchPerson) bool { return p.stale }
	staleUsed := map[string]bool{}
	addCalls(60, func() *benchCall {
		p := pick(singles, func(p *benchPerson) bool { return p.stale && !staleUsed[p.ref] })
		if p == nil {
			return nil
		}
		staleUsed[p.ref] = true // three in four stale numbers stay with their owner...
		return &benchCall{scStaleOwner, p.ref, core.Hints{ANI: p.mobile, Attestation: mobileAtt()}, false, true}
	})
	addCalls(20, func() *benchCall {
		p := pick(singles, func(p *benchPerson) bool { return stale(p) && !staleUsed[p.ref] })
		if p == nil {
			return nil
		}
		staleUsed[p.ref] = true // ...the fourth went to someone new
		return &benchCall{scRecycled, "", core.Hints{ANI: p.mobile, Attestation: mobileAtt()}, false, false}
	})
	addCalls(25, func() *benchCall { // one in nine calls from a household line is someone not on file
		h := rng.IntN(len(households))
		return &benchCall{scNewMember, "", core.Hints{ANI: landlines[h], Attestation: lineAtt()}, false, false}
	})
	addCalls(20, func() *benchCall { // one in three C-attested calls from a customer's mobile is them
		p := pick(singles, func(p *benchPerson) bool { return !p.stale })
		return &benchCall{scGatewayOwner, p.ref, core.Hints{ANI: p.mobile, Attestation: core.AttestationGateway}, false, true}
	})
	addCalls(40, func() *benchCall {
		p := pick(singles, func(p *benchPerson) bool { return !p.stale })
		return &benchCall{scSpoofed, "", core.Hints{ANI: p.mobile, Attestation: core.AttestationGateway}, false, false}
	})
	addCalls(150, func() *benchCall {
		h := core.Hints{ANI: nums.next(), Attestation: mobileAtt()}
		if rng.Float64() < 0.3 {
			h.ExternalIDs = map[string]string{"email": fmt.Sprintf("stranger%d@elsewhere.test", rng.IntN(1e6))}
		}
		return &benchCall{scStranger, "", h, false, false}
	})
	rng.Shuffle(len(calls), func(i, j int) { calls[i], calls[j] = calls[j], calls[i] })

	rep := &benchReport{seed: seed, customers: len(people), calls: len(calls), per: map[string]map[string]*tally{}, total: map[string]tally{}}
	for _, pol := range policies {
		rep.per[pol] = map[string]*tally{}
		for _, sc := range scenarioOrder {
			rep.per[pol][sc] = &tally{}
		}
	}
	known := map[string]bool{}
	for _, p := range people {
		known[p.ref] = true
	}
	var lat []time.Duration
	for i, c := range calls {
		clk.Set(now.Add(time.Duration(i) * time.Second))
		naive, connect := baselines(b, db, c.hints)
		t0 := time.Now()
		res, err := e.Start(ctx, core.StartRequest{CallID: fmt.Sprintf("call_%d", i), Hints: c.hints})
		lat = append(lat, time.Since(t0))
		if err != nil {
			b.Fatalf("call %d (%s): %v", i, c.scenario, err)
		}
		st := outcome{assigned: res.CustomerRef, confidence: res.Identity.Confidence}
		if res.CustomerRef != "" {
			st.offered = append(st.offered, res.CustomerRef)
			st.best = res.CustomerRef
		}
		for _, cand := range res.Identity.Candidates {
			st.offered = append(st.offered, cand.CustomerRef)
		}
		if res.CustomerRef != "" && !known[res.CustomerRef] {
			st.created, st.assigned, st.best = true, "", ""
		} else if res.CustomerRef == "" && len(res.Identity.Candidates) > 0 {
			st.best = res.Identity.Candidates[0].CustomerRef
		}
		if res.CustomerRef != "" && !known[res.CustomerRef] {
			known[res.CustomerRef] = false // a new customer: not one of the population
		}
		for pi, o := range []outcome{st, naive, connect} {
			tl := rep.per[policies[pi]][c.scenario]
			tl.calls++
			if o.assigned != "" && o.assigned != c.truth {
				tl.wrong++
				if pi == 0 && len(rep.wrongPops) < 5 {
					rep.wrongPops = append(rep.wrongPops, fmt.Sprintf("%s: %q popped as %s at %.3f: %+v", c.scenario, c.truth, o.assigned, res.Identity.Confidence, res.Identity.Explanation))
				}
			}
			if c.identifying {
				tl.identifying++
				if o.assigned == c.truth {
					tl.right++
				} else if pi == 0 && len(rep.mustReuse) < 5 {
					rep.mustReuse = append(rep.mustReuse, fmt.Sprintf("%s: %s got %q %s %.3f", c.scenario, c.truth, res.CustomerRef, res.Identity.Recommendation, res.Identity.Confidence))
				}
			}
			if o.created && c.truth != "" {
				tl.duplicates++
			}
			if c.ambiguous && c.truth != "" {
				tl.ambiguous++
				if slices.Contains(o.offered, c.truth) {
					tl.offered++
				} else if pi == 0 && len(rep.mustOffer) < 5 {
					rep.mustOffer = append(rep.mustOffer, fmt.Sprintf("%s: %s not in %v", c.scenario, c.truth, o.offered))
				}
			}
		}
		if st.best != "" {
			bin := min(int(st.confidence*10), 9)
			rep.bins[bin].n++
			rep.bins[bin].conf += st.confidence
			if st.best == c.truth {
				rep.bins[bin].hits++
			}
		}
	}
	for _, pol := range policies {
		var t tally
		for _, sc := range scenarioOrder {
			s := rep.per[pol][sc]
			t.calls += s.calls
			t.wrong += s.wrong
			t.identifying += s.identifying
			t.right += s.right
			t.duplicates += s.duplicates
			t.ambiguous += s.ambiguous
			t.offered += s.offered
		}
		rep.total[pol] = t
	}
	named := 0
	for _, bn := range rep.bins {
		named += bn.n
	}
	for _, bn := range rep.bins {
		if bn.n > 0 {
			rep.ece += float64(bn.n) / float64(named) * math.Abs(bn.conf/float64(bn.n)-float64(bn.hits)/float64(bn.n))
		}
	}
	rep.p50, rep.p99 = percentile(slices.Clone(lat), 0.50), percentile(lat, 0.99)
	return rep
}

// baselines decide the call the two simpler ways, on the store as it is.
func baselines(b *testing.B, db *store.DB, h core.Hints) (naive, connect outcome) {
	b.Helper()
	var keys []store.Identifier
	if ani, err := core.NormalizePhone(h.ANI, "US"); err == nil && ani != "" {
		keys = append(keys, store.Identifier{Kind: core.KindPhone, Value: ani})
	}
	for _, k := range []string{"email", "customer_id"} {
		if v := h.ExternalIDs[k]; v != "" {
			if k == "email" {
				v, _ = core.NormalizeEmail(v)
			}
			keys = append(keys, store.Identifier{Kind: k, Value: v})
		}
	}
	err := db.View(func(t *store.Txn) error {
		var last time.Time
		anyMatch := false
		for _, k := range keys {
			refs, err := t.Refs(k.Kind, k.Value)
			if err != nil {
				return err
			}
			anyMatch = anyMatch || len(refs) > 0
			if len(refs) == 1 && connect.assigned == "" {
				connect.assigned = refs[0]
			}
			for _, ref := range refs {
				c, ok, err := t.Customer(ref)
				if err != nil {
					return err
				}
				if ok && (naive.assigned == "" || c.LastContactAt.After(last)) {
					naive.assigned, last = c.Ref, c.LastContactAt
				}
			}
		}
		naive.created = naive.assigned == ""
		connect.created = !anyMatch
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	for _, o := range []*outcome{&naive, &connect} {
		if o.assigned != "" {
			o.offered = []string{o.assigned}
		}
	}
	return naive, connect
}

func pct(f float64) string {
	if math.IsNaN(f) {
		return "—"
	}
	return fmt.Sprintf("%.1f%%", 100*f)
}

func (r *benchReport) print(w io.Writer) {
	fmt.Fprintf(w, "\nidentity benchmark (seed %d): %d customers, %d calls\n", r.seed, r.customers, r.calls)
	for _, pol := range policies {
		fmt.Fprintf(w, "\n%-34s %6s %12s %16s %11s %16s\n", pol, "calls", "wrong pops", "right reuse", "duplicates", "truth offered")
		row := func(name string, t tally) {
			right, offered := "—", "—"
			if t.identifying > 0 {
				right = fmt.Sprintf("%d/%d %s", t.right, t.identifying, pct(t.rightReuseRate()))
			}
			if t.ambiguous > 0 {
				offered = fmt.Sprintf("%d/%d %s", t.offered, t.ambiguous, pct(t.offeredRate()))
			}
			fmt.Fprintf(w, "  %-32s %6d %5d %6s %16s %11d %16s\n", name, t.calls, t.wrong, pct(t.wrongRate()), right, t.duplicates, offered)
		}
		for _, sc := range scenarioOrder {
			row(sc, *r.per[pol][sc])
		}
		row("total", r.total[pol])
	}
	fmt.Fprintf(w, "\nsticky calibration (best candidate named: is it the caller?)\n  %-11s %6s %10s %9s\n", "confidence", "calls", "mean conf", "correct")
	for i, bn := range r.bins {
		if bn.n == 0 {
			continue
		}
		fmt.Fprintf(w, "  %.1f-%.1f     %6d %10.3f %9.3f\n", float64(i)/10, float64(i+1)/10, bn.n, bn.conf/float64(bn.n), float64(bn.hits)/float64(bn.n))
	}
	fmt.Fprintf(w, "  expected calibration error %.3f\n", r.ece)
	fmt.Fprintf(w, "\nstart latency over these calls: p50 %d µs, p99 %d µs (informative; BenchmarkStart is the latency benchmark)\n",
		r.p50.Microseconds(), r.p99.Microseconds())
	t := r.total["sticky"]
	fmt.Fprintf(w, "\ntargets: wrong pops %s (<= 0.1%%), right reuse %s (>= 97%%), duplicates %d (0), truth offered %s (>= 99%%), ECE %.3f (<= 0.05)\n",
		pct(t.wrongRate()), pct(t.rightReuseRate()), t.duplicates, pct(t.offeredRate()), r.ece)
	for _, m := range r.wrongPops {
		fmt.Fprintf(w, "  wrong pop: %s\n", m)
	}
	for _, m := range r.mustReuse {
		fmt.Fprintf(w, "  not reused: %s\n", m)
	}
	for _, m := range r.mustOffer {
		fmt.Fprintf(w, "  not offered: %s\n", m)
	}
}

func (r *benchReport) missed() []string {
	t := r.total["sticky"]
	var out []string
	if t.wrongRate() > 0.001 {
		out = append(out, fmt.Sprintf("wrong pops %s > 0.1%%", pct(t.wrongRate())))
	}
	if t.rightReuseRate() < 0.97 {
		out = append(out, fmt.Sprintf("right reuse %s < 97%%", pct(t.rightReuseRate())))
	}
	if t.duplicates > 0 {
		out = append(out, fmt.Sprintf("%d duplicates of known customers", t.duplicates))
	}
	if t.offeredRate() < 0.99 {
		out = append(out, fmt.Sprintf("truth offered in %s of ambiguous calls < 99%%", pct(t.offeredRate())))
	}
	if r.ece > 0.05 {
		out = append(out, fmt.Sprintf("calibration error %.3f > 0.05", r.ece))
	}
	return out
}
