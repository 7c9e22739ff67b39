package core_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/core/redact"
	"github.com/sticky-cc/sticky/core/store"
	"github.com/sticky-cc/sticky/core/store/storetest"
)

// redactions is an Observer that keeps what the engine redacted.
type redactions struct {
	mu sync.Mutex
	c  redact.Counts
}

func (r *redactions) Started(*core.StartResult, time.Duration, error)     {}
func (r *redactions) Ended(*core.EndResult, string, time.Duration, error) {}
func (r *redactions) Redacted(c redact.Counts)                            { r.mu.Lock(); r.c.Add(c); r.mu.Unlock() }
func (r *redactions) counts() redact.Counts                               { r.mu.Lock(); defer r.mu.Unlock(); return r.c }
func newRedactingEngine(t *testing.T, db *store.DB, o core.Observer) *core.Engine {
	t.Helper()
	r, err := redact.New(`ACCT-\d{6}`)
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: monday}
	return core.New(core.Options{Store: db, Now: clk.Now, Redactor: r, Observer: o})
}

func openStore(t *testing.T, dir string) *store.DB {
	t.Helper()
	db, err := store.Open(store.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// rawNumbers are the planted numbers in every form they were written in.
var rawNumbers = []string{"4111 1111 1111 1111", "4111111111111111", "123-45-6789", "ACCT-123456", "DE89370400440532013000"}

func holdsRaw(s string) string {
	for _, n := range rawNumbers {
		if strings.Contains(s, n) {
			return n
		}
	}
	return ""
}

func TestEndRedactsVariablesBeforeAnythingIsStored(t *testing.T) {
	ctx := context.Background()
	db := openStore(t, t.TempDir())
	defer db.Close()
	obs := &redactions{}
	e := newRedactingEngine(t, db, obs)
	vars := map[string]string{
		"summary":        "Customer: card 4111 1111 1111 1111 exp 12/27 was charged twice for order 114-3941689-8772232",
		"note":           "ssn 123-45-6789, account ACCT-123456, iban DE89370400440532013000",
		"phone":          "+1 415 555 1234",
		"account_number": "4111111111111111", // an identifier that is a card number
		"email":          "jane@example.test",
	}
	req := core.EndRequest{CallID: "chat_1", Channel: "chat", Hints: &core.Hints{ExternalIDs: map[string]string{"email": "jane@example.test"}},
		Intent: "billing_inquiry", IntentStatus: "open", Variables: vars}
	first, err := e.End(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if vars["account_number"] != "4111111111111111" || !strings.Contains(vars["summary"], "4111 1111") {
		t.Fatal("End changed the caller's map")
	}
	want := redact.Counts{}
	want[redact.Card], want[redact.Expiry], want[redact.SSN], want[redact.Pattern], want[redact.IBAN] = 2, 1, 1, 1, 1
	if got := obs.counts(); got != want {
		t.Errorf("observer heard %v, want %v", got, want)
	}

	// the same body again is the same end (the fingerprint is taken after
	// redaction), a different one is still a conflict
	again, err := e.End(ctx, req)
	if err != nil || *again != *first {
		t.Fatalf("retry: %v %+v, want %+v", err, again, first)
	}
	other := req
	other.Variables = map[string]string{"summary": "card 5555 5555 5555 4444"}
	if _, err := e.End(ctx, other); core.ErrorCode(err) != core.CodeConflict {
		t.Fatalf("a different body: %v, want conflict", err)
	}

	prof, err := e.Customer(ctx, first.CustomerRef, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(prof)
	if n := holdsRaw(string(b)); n != "" {
		t.Errorf("the profile holds %q: %s", n, b)
	}
	for _, w := range []string{"[card ending 1111] exp [expiry] was charged twice for order 114-3941689-8772232",
		"ssn [ssn], account [redacted], iban [iban ending 3000]", "+1 415 555 1234"} {
		if !strings.Contains(string(b), w) {
			t.Errorf("the profile lacks %q: %s", w, b)
		}
	}
	if strings.Contains(string(b), "account_number") {
		t.Errorf("an identifier variable holding a card number was kept: %s", b)
	}

	// the next start's context
	st, err := e.Start(ctx, core.StartRequest{CallID: "call_2", Hints: core.Hints{ExternalIDs: map[string]string{"email": "jane@example.test"}}})
	if err != nil {
		t.Fatal(err)
	}
	if st.CustomerRef != first.CustomerRef || !strings.Contains(st.Variables["summary"].Value, "[card ending 1111]") ||
		len(st.History) == 0 || !strings.Contains(st.History[0].Summary, "[card ending 1111]") {
		t.Errorf("start context: %+v", st)
	}

	// nothing of it anywhere in the store
	if n := holdsRaw(storetest.Dump(t, db)); n != "" {
		t.Errorf("the store holds %q", n)
	}
}

func TestEndWithoutARedactorKeepsTheText(t *testing.T) {
	ctx := context.Background()
	e, _, _ := newEngine(t, monday)
	res, err := e.End(ctx, core.EndRequest{CallID: "c1", CustomerRef: "cust_1", Variables: map[string]string{"summary": "card 4111111111111111"}})
	if err != nil {
		t.Fatal(err)
	}
	prof, err := e.Customer(ctx, res.CustomerRef, 0)
	if err != nil || prof.Variables["summary"].Value != "card 4111111111111111" {
		t.Fatalf("%v %+v", err, prof)
	}
}

// A redacted value may be longer than the one sent: it is cut to the
// variable limit rather than refused.
func TestRedactedValuesStayWithinTheLimit(t *testing.T) {
	ctx := context.Background()
	db := openStore(t, t.TempDir())
	defer db.Close()
	e := newRedactingEngine(t, db, nil)
	v := strings.Repeat("4222222222222 ", core.MaxVarValueBytes/14+1) // 13-digit Visas grow to 18 bytes
	v = v[:core.MaxVarValueBytes]
	res, err := e.End(ctx, core.EndRequest{CallID: "c1", CustomerRef: "cust_1", Variables: map[string]string{"summary": v}})
	if err != nil {
		t.Fatal(err)
	}
	prof, err := e.Customer(ctx, res.CustomerRef, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := prof.Variables["summary"].Value; len(got) > core.MaxVarValueBytes || !strings.HasPrefix(got, "[card ending 2222] ") || strings.Contains(got, "4222222222222") {
		t.Errorf("%d bytes: %.80q", len(got), got)
	}
}

// plant writes customers whose chats hold card numbers, with an engine
// that does not redact (a store from before redaction).
func plant(t *testing.T, db *store.DB, customers int) {
	t.Helper()
	e := core.New(core.Options{Store: db})
	for i := range customers {
		ref := "cust_" + string(rune('a'+i))
		for j, ch := range []string{"chat", "email"} {
			_, err := e.End(context.Background(), core.EndRequest{CallID: ref + "_" + ch, CustomerRef: ref, Channel: ch,
				EndedAt:   monday.Add(time.Duration(j) * time.Hour),
				Variables: map[string]string{"summary": "paid with 4111 1111 1111 1111 exp 12/27", "order": "114-3941689-8772232"}})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestRedactStoreIsResumable(t *testing.T) {
	ctx := context.Background()
	db := openStore(t, t.TempDir())
	defer db.Close()
	const customers = 7
	plant(t, db, customers)
	r, _ := redact.New()

	// stopped after its first batch
	cctx, cancel := context.WithCancel(ctx)
	var batches []store.SweepProgress
	p, err := core.RedactStore(cctx, db, r, 3, func(p store.SweepProgress) {
		batches = append(batches, p)
		cancel()
	})
	if !errors.Is(err, context.Canceled) || len(batches) != 1 || p.Done != 3 || p.Complete {
		t.Fatalf("first run: %v, %d batches, %+v", err, len(batches), p)
	}
	// records: 7 customers and 14 interactions
	if p.Total != 3*customers {
		t.Fatalf("total %d, want %d", p.Total, 3*customers)
	}

	// run again: it continues and counts nothing twice
	batches = nil
	p, err = core.RedactStore(ctx, db, r, 3, func(p store.SweepProgress) { batches = append(batches, p) })
	if err != nil || !p.Resumed || !p.Complete || p.Done != p.Total {
		t.Fatalf("second run: %v %+v", err, p)
	}
	if batches[0].Done != 6 {
		t.Errorf("the second run began at %d, want 6", batches[0].Done)
	}
	// each customer: the summary variable and two recent interactions;
	// each interaction record: its summary
	if want := int64(customers * 5); p.Found["card"] != want || p.Found["expiry"] != want || p.Rewritten != p.Total {
		t.Errorf("found %v, rewritten %d; want card=expiry=%d, %d rewritten", p.Found, p.Rewritten, want, p.Total)
	}
	if n := holdsRaw(storetest.Dump(t, db)); n != "" {
		t.Errorf("the store still holds %q", n)
	}
	dump := storetest.Dump(t, db)
	if !strings.Contains(dump, "paid with [card ending 1111] exp [expiry]") || !strings.Contains(dump, "114-3941689-8772232") {
		t.Errorf("the store lost what it should keep:\n%.2000s", dump)
	}

	// complete, it forgets its place: a new run starts over and finds nothing
	p, err = core.RedactStore(ctx, db, r, 0, nil)
	if err != nil || p.Resumed || !p.Complete || p.Rewritten != 0 || len(p.Found) != 0 {
		t.Fatalf("third run: %v %+v", err, p)
	}
}
