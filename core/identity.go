package core

import (
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"sync"

	"github.com/nyaruka/phonenumbers"

	"github.com/sticky-cc/sticky/core/store"
)

// Identifier kinds. Other external ids are kept as "x.<key>".
const (
	KindPhone      = "phone"
	KindEmail      = "email"
	KindCustomerID = "customer_id"
	KindCRMID      = "crm_id"
	KindAccount    = "account_number"
)

// Identity levels and recommendations.
const (
	LevelVeryHigh = "very_high"
	LevelHigh     = "high"
	LevelMedium   = "medium"
	LevelLow      = "low"

	RecommendReuse   = "reuse"
	RecommendConfirm = "confirm"
	RecommendIgnore  = "ignore"
)

// Level maps a confidence to its level.
func Level(c float64) string {
	switch {
	case c >= 0.9:
		return LevelVeryHigh
	case c >= 0.7:
		return LevelHigh
	case c >= 0.5:
		return LevelMedium
	}
	return LevelLow
}

var withheld = map[string]bool{
	"": true, "anonymous": true, "restricted": true, "unknown": true, "unavailable": true,
	"private": true, "withheld": true, "blocked": true,
}

// ErrNotPhone is returned for a caller number that cannot be a phone number.
var ErrNotPhone = errors.New("not a phone number")

// IsWithheld reports whether a caller number means "no number".
func IsWithheld(raw string) bool { return withheld[strings.ToLower(strings.TrimSpace(raw))] }

// IsExtension reports whether a caller number is a PBX extension: 2 to 6
// digits and nothing else. Agents calling each other (consults,
// transfers) ring with such numbers; they identify no customer, so the PBX
// bridges treat them like a withheld number instead of asking the engine,
// which would refuse them as not a phone number. Real numbers are longer
// even in national form.
func IsExtension(raw string) bool {
	s := strings.TrimSpace(raw)
	if len(s) < 2 || len(s) > 6 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// CallerANI is the caller number a PBX bridge should resolve: raw, or ""
// for an extension (see IsExtension).
func CallerANI(raw string) string {
	if IsExtension(raw) {
		return ""
	}
	return raw
}

// NormalizePhone turns a caller number in any common form (+1 415-555-1234,
// 4155551234, sip:+14155551234@host, tel:+1...) into E.164, reading numbers
// without a country code in region. Withheld numbers give "" and no error.
func NormalizePhone(raw, region string) (string, error) {
	s := strings.TrimSpace(raw)
	if IsWithheld(s) {
		return "", nil
	}
	lower := strings.ToLower(s)
	for _, scheme := range []string{"sips:", "sip:", "tel:"} {
		if strings.HasPrefix(lower, scheme) {
			s = s[len(scheme):]
			if i := strings.IndexByte(s, '@'); i >= 0 {
				s = s[:i]
			}
			break
		}
	}
	if i := strings.IndexByte(s, ';'); i >= 0 {
		s = s[:i]
	}
	if IsWithheld(s) {
		return "", nil
	}
	digits := 0
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == '+' || r == '-' || r == ' ' || r == '(' || r == ')' || r == '.' || r == '/':
		default:
			return "", ErrNotPhone
		}
	}
	if digits < 3 || digits > 17 {
		return "", ErrNotPhone
	}
	if nanp(s) {
		return s, nil
	}
	cacheKey := region + "|" + s
	if v, ok := phoneCache.Load(cacheKey); ok {
		return v.(string), nil
	}
	num, err := parsePhone(s, region)
	if err != nil || !phonenumbers.IsPossibleNumber(num) {
		return "", ErrNotPhone
	}
	e164 := phonenumbers.Format(num, phonenumbers.E164)
	// E.164 allows at most 15 digits; the library formats what it parsed
	// even when that is longer (found by fuzzing: "+81 00 1000 0000 0 0000").
	if len(e164) < 4 || len(e164) > 16 || e164[0] != '+' || strings.Trim(e164[1:], "0123456789") != "" {
		return "", ErrNotPhone
	}
	// Numbers the metadata does not know can shift on a second parse (a
	// national zero taken for a trunk prefix); the same caller must always
	// give the same key, so such numbers must be stable to be accepted. A
	// number already in its E.164 form is stable by definition, which
	// spares the costly validity check on the common path.
	if e164 != s && !phonenumbers.IsValidNumber(num) {
		again, err := parsePhone(e164, region)
		if err != nil || phonenumbers.Format(again, phonenumbers.E164) != e164 {
			return "", ErrNotPhone
		}
	}
	phoneCache.Store(cacheKey, e164)
	return e164, nil
}

// phoneCache remembers recent normalisations: callers call again, and
// parsing is the costliest step of a start. It is cleared when it grows
// past phoneCacheMax, which bounds its memory without bookkeeping.
var (
	phoneCache    boundedMap
	phoneCacheMax = 100_000
)

type boundedMap struct {
	mu sync.Mutex
	m  map[string]string
}

func (b *boundedMap) Load(k string) (any, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	v, ok := b.m[k]
	return v, ok
}

func (b *boundedMap) Store(k, v string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil || len(b.m) >= phoneCacheMax {
		b.m = make(map[string]string)
	}
	b.m[k] = v
}

// parsePhone guards the library: it is not documented to be panic-free on
// every input, and a caller number must never take the process down.
func parsePhone(s, region string) (num *phonenumbers.PhoneNumber, err error) {
	defer func() {
		if recover() != nil {
			num, err = nil, ErrNotPhone
		}
	}()
	return phonenumbers.Parse(s, region)
}

// nanp reports a number already in North American E.164 form (+1, then a
// ten-digit number whose area code and exchange start with 2-9). The
// library would return it unchanged, at a cost that dominates a start when
// callers are many and varied, so such numbers skip it.
func nanp(s string) bool {
	if len(s) != 12 || s[0] != '+' || s[1] != '1' || s[2] < '2' || s[5] < '2' {
		return false
	}
	for i := 2; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

var lineTypeCache boundedMap // E.164 -> line type

// LineType returns mobile, landline or voip when the number's own metadata
// is certain, else unknown. North American numbers never are: mobile and
// fixed lines share their ranges (and numbers move between them).
func LineType(e164 string) string {
	if strings.HasPrefix(e164, "+1") {
		return "unknown"
	}
	if v, ok := lineTypeCache.Load(e164); ok {
		return v.(string)
	}
	lt := "unknown"
	if num, err := parsePhone(e164, ""); err == nil {
		switch phonenumbers.GetNumberType(num) {
		case phonenumbers.MOBILE:
			lt = "mobile"
		case phonenumbers.FIXED_LINE:
			lt = "landline"
		case phonenumbers.VOIP:
			lt = "voip"
		}
	}
	lineTypeCache.Store(e164, lt)
	return lt
}

// NormalizeEmail trims and lower-cases an address and checks its shape.
func NormalizeEmail(raw string) (string, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return "", nil
	}
	if plainEmail(s) {
		return strings.ToLower(s), nil
	}
	return normalizeEmailSlow(s)
}

// plainEmail reports whether s is a dot-atom address made of letters,
// digits and ._%+- only, such as almost every real address is. For those
// normalizeEmailSlow's two RFC 5322 parses return s lower-cased, so the
// parse (a third of a start's normalisation time) is skipped;
// FuzzNormalizeEmail checks that both paths agree.
func plainEmail(s string) bool {
	at := strings.IndexByte(s, '@')
	if at <= 0 || at == len(s)-1 || len(s) > 254 {
		return false
	}
	return dotAtom(s[:at], "._%+-") && dotAtom(s[at+1:], ".-")
}

// dotAtom: non-empty runs of letters, digits and the non-dot characters of
// allowed, separated by single dots.
func dotAtom(s, allowed string) bool {
	prevDot := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			if prevDot {
				return false
			}
			prevDot = true
			continue
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c < 0x80 && strings.IndexByte(allowed, c) >= 0:
		default:
			return false
		}
		prevDot = false
	}
	return !prevDot
}

func normalizeEmailSlow(s string) (string, error) {
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || strings.ContainsAny(a.Address, " \t") {
		return "", fmt.Errorf("not an email address")
	}
	// The stored form must parse back to itself, or the same customer
	// would be found by one spelling and not by the stored one (found by
	// fuzzing: the quoted local part in "\"(\"@0" unquotes to "(@0").
	out := strings.ToLower(a.Address)
	if b, err := mail.ParseAddress(out); err != nil || strings.ToLower(b.Address) != out {
		return "", fmt.Errorf("not an email address")
	}
	return out, nil
}

// idKind maps an external id key to the identifier kind it indexes.
func idKind(key string) string {
	k := strings.ToLower(key)
	switch k {
	case KindEmail, KindCustomerID, KindCRMID, KindAccount, KindPhone:
		return k
	}
	return "x." + k
}

// claim is one normalised identity hint and the evidence it can give.
type claim struct {
	id     store.Identifier
	source string
	ev     Evidence
	ani    bool   // the caller id: its attestation applies
	ignore string // why it is no evidence and never linked ("": it is evidence)
}

// hintSet is a validated, normalised set of hints.
type hintSet struct {
	claims      []claim
	ref         string
	dnis        string
	attestation string
}

// identifiers are the hints that may be linked to a customer: not
// placeholders, and not a caller id that failed verification (it is
// probably someone else's number).
func (h hintSet) identifiers() []store.Identifier {
	out := make([]store.Identifier, 0, len(h.claims))
	for _, c := range h.claims {
		if c.ignore == "" && !(c.ani && h.attestation == AttestationFailed) {
			out = append(out, c.id)
		}
	}
	return out
}

func (h *hintSet) add(c claim) {
	for _, o := range h.claims {
		if o.id.Kind == c.id.Kind && o.id.Value == c.id.Value {
			return // the first (the caller id before an external "phone") wins
		}
	}
	if c.ignore == "" && blocked(c.id) {
		c.ignore = "a placeholder value: never evidence, never linked"
	}
	h.claims = append(h.claims, c)
}

var lineTypes = map[string]bool{"mobile": true, "landline": true, "voip": true, "unknown": true}

// normalizeHints validates hints and turns them into weighted claims.
func (e *Engine) normalizeHints(is *issues, h Hints, lineType string, path ...any) hintSet {
	at := func(p ...any) []any { return append(slices.Clone(path), p...) }
	var hs hintSet
	checkText(is, h.CustomerRef, MaxIDLen, false, at("customer_ref")...)
	hs.ref = h.CustomerRef
	checkText(is, h.DNIS, MaxHintLen, false, at("dnis")...)
	hs.dnis = strings.TrimSpace(h.DNIS)
	if lineType != "" && !lineTypes[lineType] {
		is.add("must be one of mobile, landline, voip, unknown", "telco", "line_type")
	}
	if att, ok := normAttestation(h.Attestation); ok {
		hs.attestation = att
	} else {
		is.add("must be A, B, C or failed (STIR/SHAKEN attestation)", at("attestation")...)
	}
	m := e.opts.Model
	if len(h.ANI) > MaxHintLen {
		is.add("must be at most 128 characters", at("ani")...)
	} else if placeholderDigits(h.ANI) {
		// 0000000000 and the like: what carriers send for "no number".
		hs.claims = append(hs.claims, claim{id: store.Identifier{Kind: KindPhone, Value: strings.TrimSpace(h.ANI)},
			source: "ani:unknown", ev: m.Phone, ani: true, ignore: "a placeholder number: never evidence, never linked"})
	} else if ani, err := NormalizePhone(h.ANI, e.opts.DefaultRegion); err != nil {
		is.add("is not a phone number; send E.164 (+14155551234), a national number, or a sip:/tel: URI", at("ani")...)
	} else if ani != "" {
		lt := lineType
		if lt == "" {
			lt = LineType(ani)
		}
		hs.add(claim{id: store.Identifier{Kind: KindPhone, Value: ani}, source: "ani:" + lt, ev: m.Phone, ani: true})
	}
	if len(h.ExternalIDs) > MaxExternalIDs {
		is.add("must hold at most "+itoa(MaxExternalIDs)+" ids", at("external_ids")...)
		return hs
	}
	keys := make([]string, 0, len(h.ExternalIDs))
	for k := range h.ExternalIDs {
		keys = append(keys, k)
	}
	slices.Sort(keys) // deterministic claims, explanations and fingerprints
	for _, k := range keys {
		v := strings.TrimSpace(h.ExternalIDs[k])
		p := at("external_ids", k)
		if !validName(k) {
			is.add("name must be 1-64 letters, digits, '_', '-' or '.'", p...)
			continue
		}
		if v == "" {
			continue
		}
		checkText(is, v, MaxHintLen, false, p...)
		kind := idKind(k)
		switch kind {
		case KindEmail:
			email, err := NormalizeEmail(v)
			if err != nil {
				is.add("is not an email address", p...)
				continue
			}
			hs.add(claim{id: store.Identifier{Kind: KindEmail, Value: email}, source: "external_id", ev: m.Email})
		case KindPhone:
			ph, err := NormalizePhone(v, e.opts.DefaultRegion)
			if err != nil {
				is.add("is not a phone number", p...)
				continue
			}
			if ph != "" {
				hs.add(claim{id: store.Identifier{Kind: KindPhone, Value: ph}, source: "external_id", ev: m.Phone})
			}
		default:
			hs.add(claim{id: store.Identifier{Kind: kind, Value: v}, source: "external_id", ev: m.ExternalID})
		}
	}
	return hs
}

// variableClaims finds identifiers among an end's variables (email, phone,
// customer_id, account_number, crm_id). Values that do not normalise are
// context, not identity, and are skipped.
func (e *Engine) variableClaims(vars map[string]string) []store.Identifier {
	var out []store.Identifier
	for _, name := range []string{KindEmail, KindPhone, KindCustomerID, KindAccount, KindCRMID} {
		v := strings.TrimSpace(vars[name])
		if v == "" || len(v) > MaxHintLen || strings.IndexFunc(v, invisible) >= 0 {
			continue
		}
		switch name {
		case KindEmail:
			v, _ = NormalizeEmail(v)
		case KindPhone:
			v, _ = NormalizePhone(v, e.opts.DefaultRegion)
		}
		if id := (store.Identifier{Kind: name, Value: v}); v != "" && !blocked(id) {
			out = append(out, id)
		}
	}
	return out
}

// Identity is who the engine thinks is calling, and why. Confidence is the
// posterior probability that the best candidate (customer_ref, or the
// first of candidates while the call is unassigned) is the caller.
type Identity struct {
	Confidence     float64     `json:"confidence"`
	Level          string      `json:"level"`
	Sources        []string    `json:"sources"`
	Recommendation string      `json:"recommendation"`
	Explanation    []Signal    `json:"explanation"`
	Candidates     []Candidate `json:"candidates"`
}

// Signal is one piece of evidence and what it contributed: Weight is its
// log2 Bayes factor in bits (+1 doubles the odds that the best candidate
// is the caller); the weights of an explanation add up to the log2 odds of
// the confidence.
type Signal struct {
	Source string  `json:"source"`
	Weight float64 `json:"weight"`
	Detail string  `json:"detail"`
}

// Candidate is another customer the hints point at (while a call is
// unassigned, every one, best first); Score is its posterior.
type Candidate struct {
	CustomerRef string   `json:"customer_ref"`
	Score       float64  `json:"score"`
	Sources     []string `json:"sources"`
}

func kindName(kind string) string {
	switch kind {
	case KindPhone:
		return "phone number"
	case KindEmail:
		return "email"
	case KindCustomerID:
		return "customer id"
	case KindCRMID:
		return "CRM id"
	case KindAccount:
		return "account number"
	}
	return "external id " + strings.TrimPrefix(kind, "x.")
}
