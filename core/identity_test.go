package core_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/nyaruka/phonenumbers"

	"github.com/sticky-cc/sticky/core"
)

// seed ends an interaction at the clock's current time, linking hints to ref.
func seed(t *testing.T, e *core.Engine, clk *clock, at time.Time, ref string, h core.Hints) {
	t.Helper()
	clk.Set(at)
	if _, err := e.End(context.Background(), core.EndRequest{CallID: "seed_" + ref + "_" + at.Format("150405.000"), CustomerRef: ref, Hints: &h}); err != nil {
		t.Fatalf("seed %s: %v", ref, err)
	}
}

func TestIdentityScoring(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	setup := func(t *testing.T) *core.Engine {
		e, clk, _ := newEngine(t, now)
		seed(t, e, clk, now.Add(-2*day), "cust_a", core.Hints{ANI: "+14155550001",
			ExternalIDs: map[string]string{"email": "a@example.test", "customer_id": "C-1", "loyalty_no": "L-77"}})
		seed(t, e, clk, now.Add(-40*day), "cust_b", core.Hints{ANI: "+14155550002",
			ExternalIDs: map[string]string{"email": "b@example.test", "account_number": "ACC-2"}})
		seed(t, e, clk, now.Add(-1*day), "cust_h1", core.Hints{ANI: "+14155550003", ExternalIDs: map[string]string{"email": "h1@example.test"}})
		seed(t, e, clk, now.Add(-10*day), "cust_h2", core.Hints{ANI: "+14155550003"})
		seed(t, e, clk, now.Add(-15*day), "cust_c", core.Hints{ExternalIDs: map[string]string{"crm_id": "CRM-9", "email": "c@example.test"}})
		clk.Set(now)
		return e
	}

	// The model's numbers (DefaultModel): an ANI match is log2(0.85/0.02)
	// = 5.41 bits, an email 9.89, another external id 8.94; a contact today
	// adds 1 bit, decaying over 30 days; a different email or number on
	// file takes 4.32 or 2.74 bits; confidence is the posterior, capped at
	// 0.999 short of an explicit customer_ref. (Until issue 14 these were
	// the contract's additive weights: an ANI alone was 0.4 and confirm, a
	// customer id alone created a duplicate of cust_a, a shared number or
	// contradicting hints created a third customer.)
	const fresh = "(new)"
	const unassigned = "(unassigned)"
	cases := []struct {
		name     string
		hints    core.Hints
		lineType string
		ref      string // expected customer_ref; fresh: a newly created one; unassigned: none
		conf     float64
		level    string
		rec      string
		sources  []string
		cands    []string
	}{
		// 5.41 + 0.93 recency = 6.34 bits: 81:1
		{"ani alone, contact 2 days ago", core.Hints{ANI: "+14155550001"}, "", "cust_a", 0.988, "very_high", "reuse", []string{"ani:unknown", "recency:2day"}, nil},
		{"ani and email", core.Hints{ANI: "+14155550001", ExternalIDs: map[string]string{"email": "a@example.test"}}, "", "cust_a", 0.999, "very_high", "reuse", []string{"ani:unknown", "external_id", "recency:2day"}, nil},
		{"ani, email and customer id", core.Hints{ANI: "+14155550001", ExternalIDs: map[string]string{"email": "a@example.test", "customer_id": "C-1"}}, "", "cust_a", 0.999, "very_high", "reuse", []string{"ani:unknown", "external_id", "recency:2day"}, nil},
		{"email alone", core.Hints{ExternalIDs: map[string]string{"email": "a@example.test"}}, "", "cust_a", 0.999, "very_high", "reuse", []string{"external_id", "recency:2day"}, nil},
		// a customer id one customer holds identifies them (it created a duplicate before)
		{"customer id alone", core.Hints{ExternalIDs: map[string]string{"customer_id": "C-1"}}, "", "cust_a", 0.999, "very_high", "reuse", []string{"external_id", "recency:2day"}, nil},
		{"ani alone, no recent contact", core.Hints{ANI: "+14155550002"}, "", "cust_b", 0.977, "very_high", "reuse", []string{"ani:unknown"}, nil},
		{"ani and account number", core.Hints{ANI: "+14155550002", ExternalIDs: map[string]string{"account_number": "ACC-2"}}, "", "cust_b", 0.999, "very_high", "reuse", []string{"ani:unknown", "external_id"}, nil},
		// b: 9.89 - 2.74 (another number on file) = 7.15 bits; a: 5.41 -
		// 4.32 (another email) + 0.93 = 2.02; b's share 142/(142+4.1+1)
		{"ani of one, email of another: the email wins, both listed", core.Hints{ANI: "+14155550001", ExternalIDs: map[string]string{"email": "b@example.test"}}, "", "cust_b", 0.966, "very_high", "reuse", []string{"external_id"}, []string{"cust_a"}},
		{"strong match with one contradicting id", core.Hints{ANI: "+14155550001", ExternalIDs: map[string]string{"email": "a@example.test", "account_number": "ACC-2"}}, "", "cust_a", 0.999, "very_high", "reuse", []string{"ani:unknown", "external_id", "recency:2day"}, []string{"cust_b"}},
		// each holder: 5.41 - 1 (two holders) + recency; together 0.99, apart 0.55/0.44
		{"shared number alone: unassigned, both offered", core.Hints{ANI: "+14155550003"}, "", unassigned, 0.545, "medium", "confirm", []string{"ani:unknown", "recency:1day"}, []string{"cust_h1", "cust_h2"}},
		{"shared number plus email", core.Hints{ANI: "+14155550003", ExternalIDs: map[string]string{"email": "h1@example.test"}}, "", "cust_h1", 0.999, "very_high", "reuse", []string{"ani:unknown", "external_id", "recency:1day"}, []string{"cust_h2"}},
		{"known customer_ref settles it", core.Hints{CustomerRef: "cust_b"}, "", "cust_b", 1, "very_high", "reuse", []string{"customer_ref"}, nil},
		{"known customer_ref with ani", core.Hints{CustomerRef: "cust_b", ANI: "+14155550002"}, "", "cust_b", 1, "very_high", "reuse", []string{"customer_ref", "ani:unknown"}, nil},
		{"unknown customer_ref is created", core.Hints{CustomerRef: "cust_brand_new"}, "", "cust_brand_new", 0, "low", "ignore", []string{}, nil},
		{"unknown number", core.Hints{ANI: "+442071838750"}, "", fresh, 0, "low", "ignore", []string{}, nil},
		{"withheld number", core.Hints{ANI: "anonymous"}, "", fresh, 0, "low", "ignore", []string{}, nil},
		{"line type from telco", core.Hints{ANI: "+14155550002"}, "mobile", "cust_b", 0.977, "very_high", "reuse", []string{"ani:mobile"}, nil},
		{"sip uri form", core.Hints{ANI: "sip:+14155550002@10.0.0.1;user=phone"}, "", "cust_b", 0.977, "very_high", "reuse", []string{"ani:unknown"}, nil},
		{"national format", core.Hints{ANI: "(415) 555-0002"}, "", "cust_b", 0.977, "very_high", "reuse", []string{"ani:unknown"}, nil},
		{"tel uri with dashes", core.Hints{ANI: "tel:+1-415-555-0002"}, "", "cust_b", 0.977, "very_high", "reuse", []string{"ani:unknown"}, nil},
		{"email case and spaces", core.Hints{ExternalIDs: map[string]string{"email": "  B@Example.TEST "}}, "", "cust_b", 0.999, "very_high", "reuse", []string{"external_id"}, nil},
		{"crm id alone", core.Hints{ExternalIDs: map[string]string{"crm_id": "CRM-9"}}, "", "cust_c", 0.999, "very_high", "reuse", []string{"external_id", "recency:15day"}, nil},
		{"crm id and email", core.Hints{ExternalIDs: map[string]string{"crm_id": "CRM-9", "email": "c@example.test"}}, "", "cust_c", 0.999, "very_high", "reuse", []string{"external_id", "recency:15day"}, nil},
		{"other external id with ani", core.Hints{ANI: "+14155550001", ExternalIDs: map[string]string{"loyalty_no": "L-77"}}, "", "cust_a", 0.999, "very_high", "reuse", []string{"ani:unknown", "external_id", "recency:2day"}, nil},
		{"mobile number metadata (GB)", core.Hints{ANI: "+447911123456"}, "", fresh, 0, "low", "ignore", []string{}, nil},
		// STIR/SHAKEN: A adds a bit; C takes 7 and alone never reuses; a
		// failed verification takes 12: probably someone else
		{"attested A", core.Hints{ANI: "+14155550002", Attestation: "A"}, "", "cust_b", 0.988, "very_high", "reuse", []string{"ani:unknown"}, nil},
		{"attested C: ask", core.Hints{ANI: "+14155550002", Attestation: "C"}, "", unassigned, 0.249, "low", "confirm", []string{"ani:unknown"}, []string{"cust_b"}},
		{"attested C with email", core.Hints{ANI: "+14155550002", Attestation: "c", ExternalIDs: map[string]string{"email": "b@example.test"}}, "", "cust_b", 0.997, "very_high", "reuse", []string{"ani:unknown", "external_id"}, nil},
		{"verification failed: a new customer, the holder offered", core.Hints{ANI: "+14155550002", Attestation: "failed"}, "", fresh, 0, "low", "ignore", []string{}, []string{"cust_b"}},
		// placeholders are no evidence
		{"placeholder email", core.Hints{ExternalIDs: map[string]string{"email": "noreply@acme.test"}}, "", fresh, 0, "low", "ignore", []string{}, nil},
		{"placeholder number", core.Hints{ANI: "0000000000"}, "", fresh, 0, "low", "ignore", []string{}, nil},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t) // each case on its own store: starts create customers
			res, err := e.Start(context.Background(), core.StartRequest{CallID: "id_case_" + string(rune('A'+i)), Hints: tc.hints, LineType: tc.lineType})
			if err != nil {
				t.Fatal(err)
			}
			id := res.Identity
			switch {
			case tc.ref == fresh:
				if res.CustomerRef == "" || slices.Contains([]string{"cust_a", "cust_b", "cust_h1", "cust_h2", "cust_c"}, res.CustomerRef) {
					t.Errorf("customer_ref %q; want a new customer", res.CustomerRef)
				}
			case tc.ref == unassigned:
				if res.CustomerRef != "" {
					t.Errorf("customer_ref %q; want none (unassigned)", res.CustomerRef)
				}
				if len(id.Candidates) == 0 || id.Candidates[0].Score != tc.conf {
					t.Errorf("candidates %+v: the first must be the best, scored %.3f", id.Candidates, tc.conf)
				}
			case res.CustomerRef != tc.ref:
				t.Errorf("customer_ref = %s, want %s", res.CustomerRef, tc.ref)
			}
			if id.Confidence != tc.conf || id.Level != tc.level || id.Recommendation != tc.rec {
				t.Errorf("got %.3f %s %s, want %.3f %s %s", id.Confidence, id.Level, id.Recommendation, tc.conf, tc.level, tc.rec)
			}
			if !slices.Equal(id.Sources, tc.sources) {
				t.Errorf("sources = %q, want %q", id.Sources, tc.sources)
			}
			var cands []string
			for _, c := range id.Candidates {
				cands = append(cands, c.CustomerRef)
			}
			slices.Sort(cands)
			if !slices.Equal(cands, tc.cands) {
				t.Errorf("candidates = %v, want %v", cands, tc.cands)
			}
			if len(id.Explanation) == 0 && tc.conf > 0 {
				t.Errorf("no explanation for confidence %.3f", id.Confidence)
			}
			checkExplanationAddsUp(t, id)
		})
	}
}

// checkExplanationAddsUp: the weights of the signals add up to the log2
// odds of the confidence, so an agent can see how it came about.
func checkExplanationAddsUp(t *testing.T, id core.Identity) {
	t.Helper()
	if id.Confidence <= 0 || id.Confidence >= 0.999 || slices.Contains(id.Sources, "customer_ref") {
		return
	}
	sum := 0.0
	for _, s := range id.Explanation {
		sum += s.Weight
	}
	// confidence is rounded to 3 decimals, the weights to 2
	if p := math.Exp2(sum) / (1 + math.Exp2(sum)); math.Abs(p-id.Confidence) > 0.002 {
		t.Errorf("explanation adds up to %.2f bits (%.3f), confidence is %.3f: %+v", sum, p, id.Confidence, id.Explanation)
	}
}

func TestLineTypeFromNumberMetadata(t *testing.T) {
	if got := core.LineType("+447911123456"); got != "mobile" {
		t.Errorf("GB 07700 number: %s, want mobile", got)
	}
	if got := core.LineType("+442071838750"); got != "landline" {
		t.Errorf("GB 020 number: %s, want landline", got)
	}
	if got := core.LineType("+14155551234"); got != "unknown" {
		t.Errorf("NANP numbers do not say: %s, want unknown", got)
	}
}

func TestNormalizePhone(t *testing.T) {
	for in, want := range map[string]string{
		"+1 415-555-1234":                   "+14155551234",
		"4155551234":                        "+14155551234",
		"(415) 555-1234":                    "+14155551234",
		"sip:+14155551234@pbx.example.com":  "+14155551234",
		"sips:4155551234@pbx;transport=tls": "+14155551234",
		"tel:+14155551234":                  "+14155551234",
		"+44 20 7183 8750":                  "+442071838750",
		"anonymous":                         "",
		"Restricted":                        "",
		"":                                  "",
		"sip:anonymous@anonymous.invalid":   "",
	} {
		got, err := core.NormalizePhone(in, "US")
		if err != nil || got != want {
			t.Errorf("NormalizePhone(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"abc", "12", "+1 415 555 1234 5678 9012", "4155551234'; DROP TABLE", "☎"} {
		if got, err := core.NormalizePhone(bad, "US"); err == nil {
			t.Errorf("NormalizePhone(%q) = %q, want an error", bad, got)
		}
	}
}

// TestNANPFastPathMatchesTheLibrary checks that skipping the library for
// North American numbers in E.164 form changes no answer.
func TestNANPFastPathMatchesTheLibrary(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		s := fmt.Sprintf("+1%d%02d%d%06d", 2+rng.IntN(8), rng.IntN(100), 2+rng.IntN(8), rng.IntN(1_000_000))
		num, err := phonenumbers.Parse(s, "US")
		if err != nil || !phonenumbers.IsPossibleNumber(num) {
			t.Fatalf("library refuses %s: %v", s, err)
		}
		want := phonenumbers.Format(num, phonenumbers.E164)
		if got, err := core.NormalizePhone(s, "GB"); err != nil || got != want {
			t.Fatalf("%s: fast path %q (%v), library %q", s, got, err, want)
		}
	}
}

func TestIsExtension(t *testing.T) {
	for ani, want := range map[string]bool{
		"1001": true, " 42 ": true, "200": true, "123456": true,
		"1": false, "1234567": false, "4155551234": false, "+1001": false, "+14155551234": false,
		"": false, "anonymous": false, "10 01": false, "1001a": false, "sip:1001@pbx": false,
	} {
		if got := core.IsExtension(ani); got != want {
			t.Errorf("IsExtension(%q) = %v, want %v", ani, got, want)
		}
	}
	// Nothing the extension rule takes is a number the engine would
	// accept: skipping it never loses a caller.
	for _, ani := range []string{"10", "200", "1001", "99999", "123456"} {
		if n, err := core.NormalizePhone(ani, "US"); err == nil && n != "" {
			t.Errorf("%q is an extension but normalises to %q", ani, n)
		}
	}
}
