package core

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/sticky-cc/sticky/core/store"
)

// Model is the identity match model: a Fellegi-Sunter model in which each
// signal that points at a customer adds its log Bayes factor (in bits, log2)
// to a prior, and the customers the hints point at compete with "someone
// else" for the posterior. The README section "How identity is decided"
// explains every setting and why its default is what it is.
type Model struct {
	// PriorBits is the prior log2 odds that a customer holding the
	// evidence is the caller rather than someone else, before the
	// evidence is weighed. The u probabilities below are measured per
	// call of the holder, so the base rate of other callers is in them;
	// the prior shifts every candidate alike.
	PriorBits float64
	// Phone, Email and ExternalID are the m and u probabilities of each
	// kind of identifier (ExternalID: customer id, CRM id, account number
	// and any other external id).
	Phone, Email, ExternalID Evidence
	// RecencyBits is what a contact today adds, decaying linearly to 0
	// over RecencyWindow: customers who were just in touch call back.
	RecencyBits   float64
	RecencyWindow time.Duration
	// Reuse is the posterior at which the best candidate is reused (the
	// call is assigned and their context shown). Confirm is the combined
	// posterior of all candidates at which the agent is asked who it is
	// instead of a new customer being created.
	Reuse, Confirm float64
	// StaleAfter: a number unseen on its customer for longer may have been
	// reassigned; it weighs StalePenaltyBits less and alone never reaches
	// reuse.
	StaleAfter       time.Duration
	StalePenaltyBits float64
	// STIR/SHAKEN attestation of the caller id: full (A) adds
	// AttestationABits to the caller id's evidence; partial (B), gateway
	// (C) and a failed verification take the penalties away. A caller id
	// attested C or failing verification alone never reaches reuse.
	// Without attestation the caller id counts as it is.
	AttestationABits             float64
	AttestationBPenaltyBits      float64
	AttestationCPenaltyBits      float64
	AttestationFailedPenaltyBits float64
	// SharedCap: an identifier held by more customers than this (a large
	// switchboard, a placeholder everyone types) is no evidence and is not
	// linked to anyone else.
	SharedCap int
}

// Evidence is one kind of identifier's m and u probabilities.
type Evidence struct {
	// M is the probability that a returning customer who gives an
	// identifier of this kind gives one we have on file for them.
	M float64
	// U is the probability that a call giving one customer's identifier of
	// this kind is from someone else (borrowed phone, shared mailbox,
	// typing error), per call of that customer.
	U float64
}

// agree is the log Bayes factor of an identifier held by n customers:
// log2(m / (n·u)). Dividing u by the holders' count is the term-frequency
// adjustment: an identifier held by 30 customers is 30 times as likely to
// be given by someone other than any one of them.
func (v Evidence) agree(n int) float64 { return math.Log2(v.M / (float64(max(n, 1)) * v.U)) }

// disagree is the log Bayes factor of a customer who has identifiers of
// this kind on file, none of them the one given: log2((1-m)/(1-u)).
func (v Evidence) disagree() float64 { return math.Log2((1 - v.M) / (1 - v.U)) }

// DefaultModel is the model with the defaults the README explains.
func DefaultModel() Model {
	return Model{
		PriorBits:                    0,
		Phone:                        Evidence{M: 0.85, U: 0.02},
		Email:                        Evidence{M: 0.95, U: 0.001},
		ExternalID:                   Evidence{M: 0.98, U: 0.002},
		RecencyBits:                  1,
		RecencyWindow:                30 * 24 * time.Hour,
		Reuse:                        0.9,
		Confirm:                      0.05,
		StaleAfter:                   90 * 24 * time.Hour,
		StalePenaltyBits:             4.5,
		AttestationABits:             1,
		AttestationBPenaltyBits:      0.5,
		AttestationCPenaltyBits:      7,
		AttestationFailedPenaltyBits: 12,
		SharedCap:                    50,
	}
}

// ModelError names the setting of a Model that makes no sense. Setting is
// the name in the YAML configuration (identity.<setting>).
type ModelError struct {
	Setting string
	Problem string
}

func (e *ModelError) Error() string { return "identity." + e.Setting + ": " + e.Problem }

// maxSharedCap keeps the cap below what the index holds per identifier,
// so that going over it can be seen.
const maxSharedCap = 63

// Validate reports the first setting that makes no sense.
func (m Model) Validate() error {
	bad := func(s, p string) error { return &ModelError{s, p} }
	for _, ev := range []struct {
		name string
		v    Evidence
	}{{"phone", m.Phone}, {"email", m.Email}, {"external_id", m.ExternalID}} {
		switch {
		case !(ev.v.M > 0 && ev.v.M < 1):
			return bad(ev.name+"_m", "must be above 0 and below 1")
		case !(ev.v.U > 0 && ev.v.U < 1):
			return bad(ev.name+"_u", "must be above 0 and below 1")
		case ev.v.U >= ev.v.M:
			return bad(ev.name+"_u", fmt.Sprintf("must be below %s_m (%g): otherwise a match would count against the customer", ev.name, ev.v.M))
		}
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"recency_bits", m.RecencyBits}, {"stale_penalty_bits", m.StalePenaltyBits},
		{"attestation_a_bits", m.AttestationABits}, {"attestation_b_penalty_bits", m.AttestationBPenaltyBits},
		{"attestation_c_penalty_bits", m.AttestationCPenaltyBits}, {"attestation_failed_penalty_bits", m.AttestationFailedPenaltyBits}} {
		if !(f.v >= 0) || math.IsInf(f.v, 0) {
			return bad(f.name, "must not be negative")
		}
	}
	if math.IsNaN(m.PriorBits) || math.Abs(m.PriorBits) > 30 {
		return bad("prior_bits", "must be between -30 and 30")
	}
	switch {
	case m.RecencyWindow < 0:
		return bad("recency_window", "must not be negative")
	case m.StaleAfter < 0:
		return bad("stale_after", "must not be negative (0 turns the guard off)")
	case !(m.Reuse > 0 && m.Reuse < 1):
		return bad("reuse_threshold", "must be above 0 and below 1")
	case !(m.Confirm > 0 && m.Confirm < 1):
		return bad("confirm_threshold", "must be above 0 and below 1")
	case m.Reuse < m.Confirm:
		return bad("reuse_threshold", fmt.Sprintf("must not be below confirm_threshold (%g)", m.Confirm))
	case m.AttestationCPenaltyBits < m.AttestationBPenaltyBits:
		return bad("attestation_c_penalty_bits", "must not be below attestation_b_penalty_bits: C vouches for less than B")
	case m.AttestationFailedPenaltyBits < m.AttestationCPenaltyBits:
		return bad("attestation_failed_penalty_bits", "must not be below attestation_c_penalty_bits: a failed verification vouches for nothing")
	case m.SharedCap < 2 || m.SharedCap > maxSharedCap:
		return bad("shared_cap", fmt.Sprintf("must be between 2 and %d", maxSharedCap))
	}
	return nil
}

// Attestation levels of a caller id (STIR/SHAKEN).
const (
	AttestationFull    = "A"
	AttestationPartial = "B"
	AttestationGateway = "C"
	AttestationFailed  = "failed"
)

// attestationBits is what the caller id's attestation adds to its evidence.
func (m Model) attestationBits(att string) (float64, string) {
	switch att {
	case AttestationFull:
		return m.AttestationABits, "caller id attested A: the carrier knows the caller may use this number"
	case AttestationPartial:
		return -m.AttestationBPenaltyBits, "caller id attested B: the carrier knows the caller, not that the number is theirs"
	case AttestationGateway:
		return -m.AttestationCPenaltyBits, "caller id attested C: it came through a gateway and may be spoofed"
	case AttestationFailed:
		return -m.AttestationFailedPenaltyBits, "caller id failed STIR/SHAKEN verification: probably spoofed"
	}
	return 0, ""
}

// weakAttestation: a caller id the network could not vouch for, which
// alone must not reuse a customer.
func weakAttestation(att string) bool { return att == AttestationGateway || att == AttestationFailed }

// posterior turns scores (log2 odds of each candidate against "someone
// else") into each candidate's posterior probability, in place, and the
// posterior that the caller is one of them.
func posterior(scores []float64) (each []float64, known float64) {
	top := math.Inf(-1)
	for _, s := range scores {
		top = max(top, s)
	}
	if len(scores) == 0 {
		return nil, 0
	}
	// Normalise against the largest score so 2^s cannot overflow; "someone
	// else" weighs 2^0 before the shift.
	sum := math.Exp2(-top)
	each = scores // overwritten in place
	for i, s := range scores {
		each[i] = math.Exp2(s - top)
		sum += each[i]
	}
	for i := range each {
		each[i] /= sum
		known += each[i]
	}
	return each, known
}

// logit2 is log2(p/(1-p)), the log odds a probability stands for.
func logit2(p float64) float64 {
	p = min(max(p, 1e-9), 1-1e-9)
	return math.Log2(p / (1 - p))
}

func round2(f float64) float64 { return math.Round(f*100) / 100 }

// candidate is a customer the hints point at, as scored.
type candidate struct {
	ref     string
	cust    store.Customer
	matched []bool  // per claim: the customer holds it
	score   float64 // log2 odds that this customer is the caller rather than someone else
	post    float64 // posterior among the candidates and someone else
	strong  bool    // some evidence beyond a stale or unvouched caller id
	sources []string
}

// resolution is the outcome of scoring hints against the store.
type resolution struct {
	identity Identity
	best     *candidate // the customer to reuse; nil: none
	known    bool       // an explicit, known customer_ref settled it
	// unassigned: known customers match but none surely enough; the call
	// gets no customer (and no new one is created) until someone says who.
	unassigned bool
	candidates []string // every candidate, best first
}

// claimHolder is what the index says about one claim: how many customers
// hold it, and whether that is over the shared cap.
type claimHolder struct {
	n    int
	over bool
	seen time.Time // the latest any live holder was seen with it
}

// resolve scores every customer the hints point at. It never writes. The
// holders' counts come from the index entries it reads anyway, so shared
// identifiers cost no scan.
func (e *Engine) resolve(t *store.Txn, hs hintSet, now time.Time) (resolution, error) {
	m := e.opts.Model
	var explicit *store.Customer
	if hs.ref != "" {
		c, ok, err := t.Customer(hs.ref)
		if err != nil {
			return resolution{}, err
		}
		if ok {
			explicit = &c
		}
	}
	h := make([]claimHolder, len(hs.claims))
	var order []*candidate
	find := func(ref string) *candidate {
		for _, c := range order {
			if c.ref == ref {
				return c
			}
		}
		return nil
	}
	for i, cl := range hs.claims {
		if cl.ignore != "" {
			continue
		}
		refs, err := t.Refs(cl.id.Kind, cl.id.Value)
		if err != nil {
			return resolution{}, err
		}
		h[i].n = len(refs)
		if len(refs) > m.SharedCap {
			h[i].over = true
			continue
		}
		for _, ref := range refs {
			c := find(ref)
			if c == nil {
				c = &candidate{ref: ref, matched: make([]bool, len(hs.claims))}
				order = append(order, c)
			}
			c.matched[i] = true
		}
	}
	// Load each candidate; drop index entries whose customer is gone and
	// fold refs that a merge made one customer.
	live := make([]*candidate, 0, len(order))
	for _, c := range order {
		cust, ok, err := t.Customer(c.ref)
		if err != nil {
			return resolution{}, err
		}
		if !ok {
			continue
		}
		if i := slices.IndexFunc(live, func(o *candidate) bool { return o.ref == cust.Ref }); i >= 0 {
			for k, v := range c.matched {
				live[i].matched[k] = live[i].matched[k] || v
			}
			continue
		}
		c.cust, c.ref = cust, cust.Ref
		live = append(live, c)
	}
	// A number is stale when no holder was seen with it for long: one
	// that a household still uses was not given to someone else.
	for i, cl := range hs.claims {
		for _, c := range live {
			if c.matched[i] {
				if at := seenAt(c.cust, cl.id); at.After(h[i].seen) {
					h[i].seen = at
				}
			}
		}
	}
	scores := make([]float64, len(live))
	for i, c := range live {
		scores[i] = e.score(c, hs, h, now, nil)
	}
	posts, known := posterior(scores) // in place: scores are not needed after
	for i, c := range live {
		c.post = posts[i]
	}
	slices.SortStableFunc(live, func(a, b *candidate) int {
		switch {
		case a.post != b.post:
			if a.post > b.post {
				return -1
			}
			return 1
		case !a.cust.LastContactAt.Equal(b.cust.LastContactAt):
			return b.cust.LastContactAt.Compare(a.cust.LastContactAt)
		}
		return strings.Compare(a.ref, b.ref)
	})

	var res resolution
	id := &res.identity
	id.Sources, id.Explanation, id.Candidates = []string{}, []Signal{}, []Candidate{}
	var best *candidate
	if len(live) > 0 {
		best = live[0]
	}
	switch {
	case explicit != nil:
		res.known = true
		b := best
		if b == nil || b.ref != explicit.Ref {
			b = &candidate{ref: explicit.Ref, cust: *explicit, matched: make([]bool, len(hs.claims))}
			for _, c := range live {
				if c.ref == explicit.Ref {
					b = c
				}
			}
		}
		res.best = b
		id.Confidence = 1
		id.Sources = append([]string{"customer_ref"}, b.sources...)
		id.Explanation = append([]Signal{{"customer_ref", 0, "the request named a known customer: that settles it"}},
			e.explain(b, hs, h, now)...)
	case best != nil:
		conf := min(best.post, 0.999)
		id.Explanation = e.explain(best, hs, h, now)
		if d := logit2(best.post) - best.score; len(live) > 1 || math.Abs(d) > 0.005 {
			others := len(live) - 1
			id.Explanation = append(id.Explanation, Signal{"candidates", round2(d),
				fmt.Sprintf("%d other customer(s) match too, or someone else may be calling: this customer's share of the odds", others)})
		}
		switch {
		case conf >= m.Reuse && best.strong:
			res.best = best
			id.Confidence = round3(conf)
			id.Sources = slices.Clone(best.sources)
		case known >= m.Confirm && hs.ref == "":
			res.unassigned = true
			id.Confidence = round3(conf)
			id.Sources = slices.Clone(best.sources)
			why := "not sure enough which one"
			if !best.strong && conf >= m.Reuse {
				why = "a stale or unvouched caller id alone never reuses a customer"
			}
			id.Explanation = append(id.Explanation, Signal{"unassigned", 0,
				fmt.Sprintf("%d known customer(s) may be calling (together %.0f%%), %s: ask who it is; no new customer is created", len(live), 100*known, why)})
		default:
			id.Explanation = append(id.Explanation, Signal{"new_customer", 0,
				"the customers these hints point at are probably not the caller; a new one was created"})
		}
	default:
		id.Explanation = e.explain(nil, hs, h, now)
	}
	for _, c := range live {
		if res.best != nil && c.ref == res.best.ref {
			continue
		}
		id.Candidates = append(id.Candidates, Candidate{CustomerRef: c.ref, Score: round3(c.post), Sources: c.sources})
	}
	if res.best == nil { // kept with an unassigned or parked call
		for _, c := range live {
			res.candidates = append(res.candidates, c.ref)
		}
	}
	id.Level = Level(id.Confidence)
	switch {
	case res.best != nil:
		id.Recommendation = RecommendReuse
	case res.unassigned:
		id.Recommendation = RecommendConfirm
	default:
		id.Recommendation = RecommendIgnore
	}
	return res, nil
}

// score sets c's score (log2 odds against someone else), strength and
// sources; with out set it also appends what each signal contributed.
func (e *Engine) score(c *candidate, hs hintSet, h []claimHolder, now time.Time, out *[]Signal) float64 {
	m := e.opts.Model
	add := func(src string, w float64, detail string) {
		if out != nil {
			*out = append(*out, Signal{src, round2(w), detail})
		}
	}
	s := m.PriorBits
	if s != 0 {
		add("prior", s, "prior odds that a customer holding the evidence is the caller")
	}
	c.strong, c.sources = false, c.sources[:0]
	for i, cl := range hs.claims {
		name := kindName(cl.id.Kind)
		switch {
		case cl.ignore != "":
			add(cl.source, 0, name+" is "+cl.ignore)
		case h[i].over:
			add(cl.source, 0, fmt.Sprintf("%s is held by %d customers, more than the cap of %d: no longer evidence", name, h[i].n, m.SharedCap))
		case c.matched[i]:
			w := cl.ev.agree(h[i].n)
			detail := name + " matches"
			if h[i].n > 1 {
				detail += fmt.Sprintf(" (held by %d customers: %.1f bits less than a personal one)", h[i].n, math.Log2(float64(h[i].n)))
			}
			s += w
			add(cl.source, w, detail)
			strong := true
			if cl.ani {
				if b, why := m.attestationBits(hs.attestation); why != "" {
					s += b
					add("attestation:"+hs.attestation, b, why)
					strong = !weakAttestation(hs.attestation)
				}
			}
			if cl.id.Kind == KindPhone && m.StaleAfter > 0 {
				if seen := h[i].seen; !seen.IsZero() && now.Sub(seen) > m.StaleAfter {
					s -= m.StalePenaltyBits
					add("stale", -m.StalePenaltyBits, fmt.Sprintf("this number was last seen with a customer %d days ago: it may have been given to someone else", int(now.Sub(seen)/(24*time.Hour))))
					strong = false
				}
			}
			c.strong = c.strong || strong
			if !slices.Contains(c.sources, cl.source) {
				c.sources = append(c.sources, cl.source)
			}
		case c.cust.Ref != "" && hasKind(c.cust, cl.id.Kind):
			w := cl.ev.disagree()
			s += w
			add(cl.source, w, "the customer has a different "+name+" on file")
		case h[i].n > 0:
			add(cl.source, 0, name+" belongs to another customer")
		default:
			add(cl.source, 0, "no customer has this "+name+" yet")
		}
	}
	if r, days := e.recency(c.cust, now); r > 0 {
		src := fmt.Sprintf("recency:%dday", days)
		c.sources = append(c.sources, src)
		s += r
		add(src, r, fmt.Sprintf("last contact %d day(s) ago", days))
	}
	c.score = s
	return s
}

// explain is the signals of c (nil: of no candidate, just what each hint
// found).
func (e *Engine) explain(c *candidate, hs hintSet, h []claimHolder, now time.Time) []Signal {
	out := []Signal{}
	if c == nil {
		c = &candidate{matched: make([]bool, len(hs.claims))}
	}
	keep := *c
	e.score(c, hs, h, now, &out)
	c.score, c.strong = keep.score, keep.strong
	return out
}

func (e *Engine) recency(c store.Customer, now time.Time) (float64, int) {
	m := e.opts.Model
	if c.LastContactAt.IsZero() || m.RecencyWindow <= 0 {
		return 0, -1
	}
	age := max(now.Sub(c.LastContactAt), 0)
	days := int(age / (24 * time.Hour))
	f := 1 - float64(age)/float64(m.RecencyWindow)
	if f <= 0 {
		return 0, days
	}
	return m.RecencyBits * f, days
}

func hasKind(c store.Customer, kind string) bool {
	for _, id := range c.Identifiers {
		if id.Kind == kind {
			return true
		}
	}
	return false
}

// seenAt is when id was last confirmed on c: its Seen entry, else when it
// was linked.
func seenAt(c store.Customer, id store.Identifier) time.Time {
	for _, s := range c.Seen {
		if s.Kind == id.Kind && s.Value == id.Value {
			return s.At
		}
	}
	for _, o := range c.Identifiers {
		if o.Kind == id.Kind && o.Value == id.Value {
			return o.LinkedAt
		}
	}
	return time.Time{}
}

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }
