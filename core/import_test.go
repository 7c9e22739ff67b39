package core_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/core/redact"
	"github.com/sticky-cc/sticky/core/store"
)

func importRows() []core.ImportRow {
	return []core.ImportRow{
		{Line: 2, CustomerRef: "cust_ann", Name: "Ann Lee", Phones: []string{"(415) 555-2100", "+44 20 7946 0958"},
			Emails: []string{"Ann@example.test"}, CustomerID: "C-1", Variables: map[string]string{"plan": "gold"},
			OpenIntents: []string{"billing_inquiry"}},
		{Line: 3, Name: "Bob", Emails: []string{"bob@example.test"}, CustomerID: "C-2"},
		{Line: 4, Name: "No identifier at all", Variables: map[string]string{"plan": "x"}},
		{Line: 5, CustomerID: "C-3", Phones: []string{"call me maybe"}},
		{Line: 6, CustomerID: "C-4", Emails: []string{"not an address@"}},
		{Line: 7, Reject: "not valid JSON (at byte 3)"},
		{Line: 8, AccountNumber: "A-9", Phones: []string{"4155552199"}},
	}
}

func TestImportCreatesThenChangesNothing(t *testing.T) {
	ctx := context.Background()
	e, clk, db := newEngine(t, monday)
	res, err := e.Import(ctx, importRows(), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"imported", "imported", "rejected", "rejected", "rejected", "rejected", "imported"}
	for i, r := range res {
		if r.Outcome != want[i] {
			t.Errorf("line %d: %s (%s), want %s", r.Line, r.Outcome, r.Reason, want[i])
		}
	}
	for _, r := range res[2:6] {
		for _, leak := range []string{"call me", "not an address", "No identifier"} {
			if strings.Contains(r.Reason, leak) {
				t.Errorf("line %d: the reason %q holds the row's data", r.Line, r.Reason)
			}
		}
	}
	if !strings.Contains(res[3].Reason, "phone 1 is not a phone number") || !strings.Contains(res[4].Reason, "email 1 is not an email address") ||
		!strings.Contains(res[2].Reason, "no identifier") {
		t.Errorf("reasons: %q / %q / %q", res[2].Reason, res[3].Reason, res[4].Reason)
	}
	// Ann is found by her number in national form, with her context.
	st, err := e.Start(ctx, core.StartRequest{CallID: "c1", Hints: core.Hints{ANI: "+14155552100"}})
	if err != nil {
		t.Fatal(err)
	}
	if st.CustomerRef != "cust_ann" || st.Variables["plan"].Value != "gold" || st.Variables["name"].Value != "Ann Lee" ||
		len(st.OpenIntents) != 1 || st.OpenIntents[0].Intent != "billing_inquiry" {
		t.Fatalf("start after import: %+v", st)
	}
	// Bob has a ref derived from his customer id, and the same one again.
	if !strings.HasPrefix(res[1].CustomerRef, "cust_") || len(res[1].CustomerRef) != 21 {
		t.Fatalf("derived ref %q", res[1].CustomerRef)
	}
	before, n, err := db.StateDigest()
	if err != nil || n == 0 {
		t.Fatal(n, err)
	}
	clk.Add(time.Hour)
	again, err := e.Import(ctx, importRows(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range again {
		if w := map[string]string{"imported": "unchanged", "rejected": "rejected"}[want[i]]; r.Outcome != w || r.CustomerRef != res[i].CustomerRef {
			t.Errorf("rerun line %d: %+v, want %s %s", r.Line, r, w, res[i].CustomerRef)
		}
	}
	if after, _, _ := db.StateDigest(); after != before {
		t.Fatal("running the same rows again changed the store")
	}

	// A changed row updates: a new email is linked, a variable changes.
	rows := importRows()[:2]
	rows[1].Emails = append(rows[1].Emails, "robert@example.test")
	rows[0].Variables = map[string]string{"plan": "platinum"}
	up, err := e.Import(ctx, rows, nil)
	if err != nil {
		t.Fatal(err)
	}
	if up[0].Outcome != "updated" || up[1].Outcome != "updated" || up[1].CustomerRef != res[1].CustomerRef {
		t.Fatalf("changed rows: %+v", up)
	}
	p, err := e.Customer(ctx, res[1].CustomerRef, 0)
	if err != nil {
		t.Fatal(err)
	}
	linked := map[string]string{}
	for _, id := range p.Identifiers {
		linked[id.Value] = id.Source
	}
	if linked["robert@example.test"] != "import" || linked["bob@example.test"] != "import" || linked["C-2"] != "import" {
		t.Fatalf("identifiers after the update: %+v", p.Identifiers)
	}
	ann, _ := e.Customer(ctx, "cust_ann", 0)
	if v := ann.Variables["plan"]; v.Value != "platinum" || v.Source == nil || *v.Source != "import" {
		t.Fatalf("plan after the update: %+v", v)
	}
}

// A row without a ref finds the customer who already holds its customer id
// (an end linked it), instead of creating a second one.
func TestImportFindsTheHolderOfTheCustomerID(t *testing.T) {
	ctx := context.Background()
	e, _, _ := newEngine(t, monday)
	if _, err := e.End(ctx, core.EndRequest{CallID: "chat1", CustomerRef: "cust_web", Variables: map[string]string{"customer_id": "C-7"}}); err != nil {
		t.Fatal(err)
	}
	res, err := e.Import(ctx, []core.ImportRow{{Line: 2, CustomerID: "C-7", Emails: []string{"zoe@example.test"}}}, nil)
	if err != nil || res[0].CustomerRef != "cust_web" || res[0].Outcome != "updated" {
		t.Fatalf("%+v %v", res, err)
	}
}

// The batch and its place in the file commit together; the last batch
// forgets the place.
func TestImportRecordsProgressWithTheBatch(t *testing.T) {
	ctx := context.Background()
	e, _, _ := newEngine(t, monday)
	rows := importRows()
	if _, err := e.Import(ctx, rows[:4], &store.ImportProgress{Source: "file1", Offset: 100, Line: 5, Rows: 4, RejectsAt: 12}); err != nil {
		t.Fatal(err)
	}
	p, ok, err := e.ImportProgress("file1")
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if p.Offset != 100 || p.Line != 5 || p.Imported != 2 || p.Rejected != 2 || p.RejectsAt != 12 || len(p.Rejects) != 2 || p.Rejects[0].Line != 4 {
		t.Fatalf("progress: %+v", p)
	}
	if _, err := e.Import(ctx, rows[4:], &store.ImportProgress{Source: "file1", Offset: 200, Line: 8, Rows: 7, RejectsAt: 40}); err != nil {
		t.Fatal(err)
	}
	if p, _, _ = e.ImportProgress("file1"); p.Imported != 3 || p.Rejected != 4 || len(p.Rejects) != 2 || p.Rejects[0].Line != 6 {
		t.Fatalf("progress after the second batch: %+v", p)
	}
	if _, err := e.Import(ctx, nil, &store.ImportProgress{Source: "file1", Offset: 200, Line: 8, Rows: 7, Done: true}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := e.ImportProgress("file1"); ok {
		t.Fatal("the finished import left its place behind")
	}
}

// Imported free text is redacted like an end's; an identifier-named
// variable with a card number in it is dropped.
func TestImportRedactsVariables(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(store.Options{Dir: t.TempDir(), MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r, err := redact.New()
	if err != nil {
		t.Fatal(err)
	}
	e := core.New(core.Options{Store: db, Redactor: r})
	_, err = e.Import(ctx, []core.ImportRow{{Line: 2, CustomerRef: "cust_r", Variables: map[string]string{
		"notes": "paid with 4111 1111 1111 1111", "account_number": "4111111111111111"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.Customer(ctx, "cust_r", 0)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(p.Variables["notes"].Value, "4111 1111") || p.Variables["notes"].Value == "" {
		t.Errorf("notes: %q", p.Variables["notes"].Value)
	}
	if _, ok := p.Variables["account_number"]; ok {
		t.Errorf("an identifier variable holding a card number was kept")
	}
}

func TestImportRefusesOversizedBatches(t *testing.T) {
	e, _, _ := newEngine(t, monday)
	rows := make([]core.ImportRow, core.MaxImportRows+1)
	if _, err := e.Import(context.Background(), rows, nil); code(err) != core.CodeTooLarge {
		t.Fatalf("%v", err)
	}
}

// The import's shortcut for North American numbers gives what
// NormalizePhone gives, in every form it takes and some it must not.
func TestImportPhoneShortcutAgrees(t *testing.T) {
	check := checkShortcut(t)
	for _, region := range []string{"US", "CA", "GB"} {
		for _, n := range []string{
			"(415) 555-2100", "415-555-2100", "4155552100", "+1 415 555 2100", "1 415 555 2100", "1.415.555.2100",
			"+14155552100", "+1 (212) 555-2199", "(015) 555-2100", "(415) 155-0100", "+2 415 555 2100", "+1415555010",
			"11 415 555 2100", "415 555 2100 ext 3", "+44 20 7946 0958", "020 7946 0958", "++14155552100", "1-800-555-2199",
			"(800) 555 2199", "+1 800 555 2199", "12345678901", "+12345678901",
		} {
			check(n, region)
		}
		for area := 200; area < 1000; area += 37 {
			for _, ex := range []int{200, 311, 555, 911, 958, 999} {
				check(fmt.Sprintf("(%03d) %03d-0142", area, ex), region)
				check(fmt.Sprintf("+1 %03d %03d 0142", area, ex), region)
			}
		}
	}
}

func checkShortcut(t *testing.T) func(n, region string) {
	return func(n, region string) {
		t.Helper()
		{
			want, werr := core.NormalizePhone(n, region)
			got, gerr := core.ImportPhone(n, region)
			if got != want || (werr == nil) != (gerr == nil) {
				t.Errorf("%s %q: shortcut %q %v, NormalizePhone %q %v", region, n, got, gerr, want, werr)
			}
		}
	}
}

// Rows of one batch that touch the same customer or identifier see what
// the earlier rows wrote: the batch's reads run ahead in parallel, but a
// batch leaves the store as the same rows imported one at a time do.
func TestImportBatchEqualsRowByRow(t *testing.T) {
	ctx := context.Background()
	rows := []core.ImportRow{
		{Line: 2, CustomerRef: "cust_x", Phones: []string{"(415) 555-0100"}, CustomerID: "C-9"},
		{Line: 3, CustomerRef: "cust_x", Variables: map[string]string{"plan": "gold"}, OpenIntents: []string{"billing_inquiry"}},
		// no ref: found by the customer id the first row linked
		{Line: 4, CustomerID: "C-9", Emails: []string{"x@example.test"}},
		// another customer on the same phone, then the first row again
		{Line: 5, CustomerRef: "cust_y", Phones: []string{"+1 415 555 0100"}},
		{Line: 6, CustomerRef: "cust_x", Phones: []string{"(415) 555-0100"}, CustomerID: "C-9"},
		{Line: 7, Name: "Zed", AccountNumber: "A-1"},
		{Line: 8, Name: "Zed", AccountNumber: "A-1", Variables: map[string]string{"plan": "silver"}},
	}
	for i := range 300 { // enough rows that the read-ahead spreads over workers
		rows = append(rows, core.ImportRow{Line: int64(9 + i), CustomerRef: fmt.Sprintf("cust_%03d", i%50),
			Phones: []string{fmt.Sprintf("(415) 555-%04d", 1000+i%70)}, Variables: map[string]string{"n": fmt.Sprint(i % 7)}})
	}
	batch, _, dbBatch := newEngine(t, monday)
	got, err := batch.Import(ctx, rows, nil)
	if err != nil {
		t.Fatal(err)
	}
	single, _, dbSingle := newEngine(t, monday)
	for i, r := range rows {
		res, err := single.Import(ctx, []core.ImportRow{r}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res[0] != got[i] {
			t.Errorf("line %d: in a batch %+v, alone %+v", r.Line, got[i], res[0])
		}
	}
	if got[2].CustomerRef != "cust_x" || got[1].Outcome != "updated" || got[4].Outcome != "unchanged" || got[6].CustomerRef != got[5].CustomerRef {
		t.Errorf("outcomes: %+v", got[:7])
	}
	a, n, err := dbBatch.StateDigest()
	if err != nil {
		t.Fatal(err)
	}
	b, m, err := dbSingle.StateDigest()
	if err != nil {
		t.Fatal(err)
	}
	if a != b || n != m {
		t.Fatalf("the batch left %d keys (digest %x), row by row %d (%x)", n, a[:4], m, b[:4])
	}
}
