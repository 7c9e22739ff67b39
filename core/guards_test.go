package core_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/core/store"
)

func TestStaleNumberAloneNeverReuses(t *testing.T) {
	ctx := context.Background()
	e, clk, _ := newEngine(t, monday)
	seed(t, e, clk, monday, "cust_a", core.Hints{ANI: "+14155550001", ExternalIDs: map[string]string{"email": "a@example.test"}})
	// an email two weeks ago keeps the customer recent, but the number
	// was last seen 100 days ago
	seed(t, e, clk, monday.Add(86*24*time.Hour+time.Hour), "cust_a", core.Hints{ExternalIDs: map[string]string{"email": "a@example.test"}})
	clk.Set(monday.Add(100 * 24 * time.Hour))
	res, err := e.Start(ctx, core.StartRequest{CallID: "c1", Hints: core.Hints{ANI: "+14155550001"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.CustomerRef != "" || res.Identity.Recommendation != core.RecommendConfirm || len(res.Identity.Candidates) != 1 {
		t.Fatalf("stale number alone: %q %+v", res.CustomerRef, res.Identity)
	}
	if !strings.Contains(fmt.Sprint(res.Identity.Explanation), "last seen with a customer 100 days ago") {
		t.Errorf("explanation does not say why: %+v", res.Identity.Explanation)
	}
	// with the email it is them; the end sees the number again
	res, err = e.Start(ctx, core.StartRequest{CallID: "c2", Hints: core.Hints{ANI: "+14155550001", ExternalIDs: map[string]string{"email": "a@example.test"}}})
	if err != nil || res.CustomerRef != "cust_a" {
		t.Fatalf("stale number and email: %+v %v", res, err)
	}
	if _, err := e.End(ctx, core.EndRequest{CallID: "c2"}); err != nil {
		t.Fatal(err)
	}
	res, err = e.Start(ctx, core.StartRequest{CallID: "c3", Hints: core.Hints{ANI: "+14155550001"}})
	if err != nil || res.CustomerRef != "cust_a" || res.Identity.Recommendation != core.RecommendReuse {
		t.Fatalf("number seen again: %+v %v", res, err)
	}
}

func TestPlaceholdersNeverLink(t *testing.T) {
	ctx := context.Background()
	e, _, _ := newEngine(t, monday)
	if _, err := e.End(ctx, core.EndRequest{CallID: "e1", CustomerRef: "cust_a",
		Hints:     &core.Hints{ANI: "+14155550142", ExternalIDs: map[string]string{"email": "noreply@shop.test", "account_number": "0000000"}},
		Variables: map[string]string{"email": "someone@example.com", "customer_id": "C-7"}}); err != nil {
		t.Fatal(err)
	}
	p, err := e.Customer(ctx, "cust_a", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Identifiers) != 1 || p.Identifiers[0].Value != "C-7" {
		t.Fatalf("identifiers %+v: only C-7 is real", p.Identifiers)
	}
	// and a start with a placeholder finds nobody (and is no 400)
	res, err := e.Start(ctx, core.StartRequest{CallID: "c1", Hints: core.Hints{ANI: "0000000000", ExternalIDs: map[string]string{"email": "noreply@shop.test"}}})
	if err != nil || res.Identity.Recommendation != core.RecommendIgnore || len(res.Identity.Candidates) != 0 {
		t.Fatalf("%+v %v", res, err)
	}
}

func TestIdentifierOverTheCapGluesNobody(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	m := core.DefaultModel()
	m.SharedCap = 5
	clk := &clock{t: monday}
	e := core.New(core.Options{Store: db, Now: clk.Now, Model: m})
	const trunk = "+14155550999"
	for i := range 7 {
		if _, err := e.End(ctx, core.EndRequest{CallID: fmt.Sprint("e", i), CustomerRef: fmt.Sprint("cust_", i), Hints: &core.Hints{ANI: trunk}}); err != nil {
			t.Fatal(err)
		}
	}
	err = db.View(func(tx *store.Txn) error {
		refs, err := tx.Refs(core.KindPhone, trunk)
		if err == nil && len(refs) != 6 {
			t.Errorf("held by %d customers; linking must stop once it is over the cap of 5", len(refs))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.Start(ctx, core.StartRequest{CallID: "c1", Hints: core.Hints{ANI: trunk}})
	if err != nil || res.CustomerRef == "" || len(res.Identity.Candidates) != 0 || !strings.Contains(fmt.Sprint(res.Identity.Explanation), "more than the cap of 5") {
		t.Fatalf("%q %+v %v", res.CustomerRef, res.Identity, err)
	}
}

func TestAttestationFromThePBX(t *testing.T) {
	for _, tc := range []struct{ attest, verify, want string }{
		{"A", "Verification succeeded", "A"},
		{"b", "", "B"},
		{"C", "Signature verification failed", "failed"},
		{"", "TN-Validation-Passed-A", "A"},
		{"", "TN-Validation-Failed", "failed"},
		{"", "No-TN-Validation", ""},
		{"", "", ""},
		{"Z", "", ""},
	} {
		if got := core.Attestation(tc.attest, tc.verify); got != tc.want {
			t.Errorf("Attestation(%q, %q) = %q, want %q", tc.attest, tc.verify, got, tc.want)
		}
	}
}

func TestBlockedValues(t *testing.T) {
	for v, want := range map[string]bool{
		"noreply@shop.test": true, "no-reply+bounce@shop.test": true, "jane@example.com": true, "jane@mail.example.org": true,
		"x@host.invalid": true, "jane@example.test": false, "jane@shop.test": false, "noreplying@shop.test": false,
	} {
		if got := core.BlockedEmail(v); got != want {
			t.Errorf("BlockedEmail(%q) = %v", v, got)
		}
	}
	for v, want := range map[string]bool{
		"+14155550100": true, "+14155550199": true, "+12125550142": true, "+10000000000": true, "+14151234567": true,
		"+14155550200": false, "+14155550001": false, "+442071838750": false, "+14155551234": false,
	} {
		if got := core.BlockedPhone(v); got != want {
			t.Errorf("BlockedPhone(%q) = %v", v, got)
		}
	}
}
