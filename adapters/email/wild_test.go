package email_test

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/sticky-cc/sticky/adapters"
	"github.com/sticky-cc/sticky/adapters/email"
	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/core/api"
	"github.com/sticky-cc/sticky/core/store"
)

// rig is the real email endpoint: the adapters mounted on the API server
// over the engine on Badger, open (no keys, no secret) and not rate
// limited, so every answer is about the message.
type rig struct {
	engine *core.Engine
	srv    http.Handler
}

// newRig opens Badger in a temporary directory, or in memory for the
// fuzzer: the fuzzer minimises every input it finds interesting by running
// it thousands of times, and an fsync per run would spend the whole fuzz
// time on one input.
func newRig(t testing.TB, inMemory bool) *rig {
	t.Helper()
	o := store.Options{InMemory: inMemory}
	if !inMemory {
		o.Dir = t.TempDir()
	}
	db, err := store.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e := core.New(core.Options{Store: db})
	srv := api.New(api.Options{Engine: e})
	if err := adapters.Mount(srv, adapters.Options{Calls: e, RatePerSecond: 1e9, Burst: 1 << 30}); err != nil {
		t.Fatal(err)
	}
	return &rig{engine: e, srv: srv}
}

type answer struct {
	status int
	body   map[string]any
	raw    string
}

// post sends raw to the endpoint over the network.
func post(t *testing.T, url string, raw []byte) answer {
	t.Helper()
	req, err := http.NewRequest("POST", url+adapters.EmailPath, bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "message/rfc822")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return decoded(resp.StatusCode, b)
}

// serve hands raw to the same handler in memory, for the fuzzer's speed.
func serve(h http.Handler, raw []byte) answer {
	req := httptest.NewRequest("POST", adapters.EmailPath, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "message/rfc822")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return decoded(rec.Code, rec.Body.Bytes())
}

func decoded(status int, b []byte) answer {
	a := answer{status: status, raw: string(b)}
	_ = json.Unmarshal(b, &a.body)
	return a
}

// envelope reports whether a is the API's error envelope.
func (a answer) envelope() bool {
	m, _ := a.body["message"].(string)
	return a.body["error"] == http.StatusText(a.status) && m != ""
}

func (a answer) hasIssueAt(path []any) bool {
	want, _ := json.Marshal(path)
	d, _ := a.body["details"].(map[string]any)
	issues, _ := d["issues"].([]any)
	for _, is := range issues {
		got, _ := json.Marshal(is.(map[string]any)["path"])
		if string(got) == string(want) {
			return true
		}
	}
	return false
}

// wild is the corpus of malformed mail in testdata/wild, one file per
// defect: what each must give.
var wild = map[string]struct {
	refused []any // the issue path of a 400; nil: accepted
	from    string
	name    string
	subject string
	keep    string // text that must survive, in the text and the summary
	defects []string
}{
	// multipart
	"multipart-truncated.eml": {from: "jane@example.test", subject: "Charged twice",
		keep: "The second charge appeared on January 26 and", defects: []string{email.DefectTruncatedMultipart}},
	"multipart-truncated-nested.eml": {from: "jane@example.test", subject: "Receipt attached",
		keep: "Please confirm the refund.", defects: []string{email.DefectTruncatedMultipart}},
	"multipart-truncated-in-part-header.eml": {from: "jane@example.test", subject: "Refund for order 4521",
		defects: []string{email.DefectTruncatedMultipart}},
	"multipart-without-boundary.eml": {from: "jane@example.test", subject: "Delivery address",
		keep:    "Please send order 4521 to my new address on Elm Street.",
		defects: []string{email.DefectNoBoundary, email.DefectGuessedBoundary}},
	"multipart-without-boundary-text.eml": {from: "jane@example.test", subject: "Cancel my subscription",
		keep:    "Please cancel my subscription at the end of this month.",
		defects: []string{email.DefectNoBoundary, email.DefectNoParts}},
	"multipart-wrong-boundary.eml": {from: "jane@example.test", subject: "Wrong size",
		keep: "one size too small", defects: []string{email.DefectGuessedBoundary}},
	"multipart-without-parts.eml": {from: "jane@example.test", subject: "Invoice copy",
		keep: "Could you send me a copy of invoice INV-2026-01?", defects: []string{email.DefectNoParts}},
	"part-missing-header-separator.eml": {from: "jane@example.test", subject: "Tracking number",
		keep: "The tracking number for order 4521 does not work.", defects: []string{email.DefectNoHeaderSeparator}},
	"content-type-without-semicolon.eml": {from: "jane@example.test", subject: "Return label",
		keep:    "I need a return label for order 4521.",
		defects: []string{email.DefectBadContentType, email.DefectNoBoundary, email.DefectGuessedBoundary}},
	// the header block
	"missing-header-separator.eml": {from: "jane@example.test", subject: "Where is my parcel",
		keep: "My parcel for order 4521 has not arrived yet.", defects: []string{email.DefectNoHeaderSeparator}},
	"no-body.eml": {from: "jane@example.test", subject: "Call me back about order 4521",
		defects: []string{email.DefectNoBody}},
	"folded-first-header-line.eml": {from: "jane@example.test", subject: "Warranty",
		keep: "Is the toaster still under warranty?", defects: []string{email.DefectFoldedFirstLine}},
	"mbox-from-line.eml": {from: "jane@example.test", subject: "Newsletter",
		keep: "Please stop sending me the newsletter.", defects: []string{email.DefectMboxFromLine}},
	"cr-line-endings.eml": {from: "jane@example.test", subject: "Loyalty points",
		keep: "My loyalty points from order 4521 are missing.", defects: []string{email.DefectCRLineEndings}},
	"bad-date.eml": {from: "jane@example.test", subject: "Store credit",
		keep: "How do I use my store credit online?", defects: []string{email.DefectBadDate}},
	// header text
	"header-8bit-latin1.eml": {from: "helene@example.fr", name: "Hélène Martin", subject: "Réclamation commande 4521",
		keep: "La commande 4521 est arrivée abîmée.", defects: []string{email.DefectHeader8Bit}},
	"header-8bit-utf8.eml": {from: "juergen@example.de", name: "Jürgen Groß", subject: "Rücksendung Bestellung 4521",
		keep: "Die Rücksendung für Bestellung 4521 ist unterwegs."},
	"header-bad-encoded-word.eml": {from: "jane@example.test", name: "Jane Doe", subject: "=?utf-8?B?!!!?= Refund for order 4521",
		keep: "Any news on my refund?", defects: []string{email.DefectBadEncodedWord}},
	"header-unknown-charset.eml": {from: "owner@cafe.test", name: "Café Owner", subject: "Café order 4521",
		keep: "The coffee machine from order 4521 leaks.", defects: []string{email.DefectUnknownCharset}},
	"from-not-rfc5322.eml": {from: "jane@example.test", subject: "Password reset",
		keep: "The password reset link never arrives.", defects: []string{email.DefectFromNotRFC5322}},
	"from-broken-quote.eml": {from: "jane@example.test", name: "Doe, Jane", subject: "Wrong item",
		keep: "I received a blue kettle instead of a red one.", defects: []string{email.DefectFromNotRFC5322}},
	// bodies
	"body-bad-base64.eml": {from: "jane@example.test", subject: "Discount code",
		keep: "The discount code SPRING26 is refused at checkout.", defects: []string{email.DefectBadBase64}},
	"body-bad-quoted-printable.eml": {from: "jane@example.test", subject: "Broken zipper",
		keep: "I would like a replacement. It cost 50€.", defects: []string{email.DefectBadQuotedPrintable}},
	"body-unknown-charset.eml": {from: "jane@example.test", subject: "Gift wrap",
		keep: "Please gift wrap order 4521 — it is a birthday present.", defects: []string{email.DefectUnknownCharset}},
	"body-undeclared-8bit.eml": {from: "jane@example.test", subject: "Tracking",
		keep: "Die Sendung 4521 hängt seit Montag im Depot. Grüße", defects: []string{email.DefectUndeclared8Bit}},
	"bad-content-type.eml": {from: "jane@example.test", subject: "Size chart",
		keep: "Is there a size chart for the boots in order 4521?", defects: []string{email.DefectBadContentType}},
	"unknown-transfer-encoding.eml": {from: "jane@example.test", subject: "Opening hours",
		keep: "Are you open on public holidays?", defects: []string{email.DefectUnknownTransferEncoding}},
	// refused: not mail, or no usable sender
	"not-mail.eml":               {refused: []any{}},
	"binary-not-mail.eml":        {refused: []any{}},
	"empty.eml":                  {refused: []any{}},
	"no-from.eml":                {refused: []any{"From"}},
	"from-without-address.eml":   {refused: []any{"From"}},
	"from-undisclosed-group.eml": {refused: []any{"From"}},
}

func TestMailFromTheWild(t *testing.T) {
	files, err := filepath.Glob("testdata/wild/*.eml")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	for name := range wild {
		if !slices.Contains(names, name) {
			t.Errorf("%s is in the table but not in testdata/wild", name)
		}
	}
	r := newRig(t, false)
	hs := httptest.NewServer(r.srv)
	t.Cleanup(hs.Close)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			want, ok := wild[name]
			if !ok {
				t.Fatalf("testdata/wild/%s has no expectation in the table", name)
			}
			raw, err := os.ReadFile(filepath.Join("testdata/wild", name))
			if err != nil {
				t.Fatal(err)
			}
			a := post(t, hs.URL, raw)
			m, perr := email.ParseRaw(raw)
			if want.refused != nil {
				if a.status != http.StatusBadRequest || !a.envelope() || !a.hasIssueAt(want.refused) {
					t.Fatalf("want a 400 envelope with an issue at %v, got %d %s", want.refused, a.status, a.raw)
				}
				if core.ErrorCode(perr) != core.CodeInvalid {
					t.Fatalf("ParseRaw: %v", perr)
				}
				return
			}
			if a.status != http.StatusOK {
				t.Fatalf("want 200, got %d %s", a.status, a.raw)
			}
			if perr != nil {
				t.Fatal(perr)
			}
			if m.From != want.from || m.Subject != want.subject || want.name != "" && m.FromName != want.name {
				t.Errorf("from %q %q subject %q, want %q %q %q", m.From, m.FromName, m.Subject, want.from, want.name, want.subject)
			}
			if !strings.Contains(m.Text, want.keep) {
				t.Errorf("text %q lacks %q", m.Text, want.keep)
			}
			if !slices.Equal(m.Defects, want.defects) {
				t.Errorf("defects %q, want %q", m.Defects, want.defects)
			}

			// What was saved: the sender as the customer's email, the
			// kept text in the summary, the defects beside it.
			ref, _ := a.body["customer_ref"].(string)
			p, err := r.engine.Customer(t.Context(), ref, 0)
			if err != nil {
				t.Fatalf("customer %q of %s: %v", ref, a.raw, err)
			}
			if !slices.ContainsFunc(p.Identifiers, func(id core.IdentifierView) bool { return id.Kind == "email" && id.Value == want.from }) {
				t.Errorf("identifiers %+v lack email %s", p.Identifiers, want.from)
			}
			summary := p.Variables["summary"].Value
			if !strings.Contains(summary, want.keep) || !strings.HasPrefix(summary, want.subject) {
				t.Errorf("summary %q lacks the subject %q or %q", summary, want.subject, want.keep)
			}
			got := p.Variables[email.DefectsVariable].Value
			if got != strings.Join(want.defects, ",") {
				t.Errorf("%s = %q, want %q", email.DefectsVariable, got, strings.Join(want.defects, ","))
			}
		})
	}
}

// TestWildMailCutShort cuts every message of the corpus short at points
// through it, as a connection that drops does: the endpoint answers 200 or
// the 4xx envelope, never 5xx, and once the From line is whole the message
// is accepted, from its sender.
func TestWildMailCutShort(t *testing.T) {
	r := newRig(t, false)
	names := slices.Sorted(maps.Keys(wild))
	fromLine := regexp.MustCompile(`(?m)^From:[^\r\n]*`)
	for _, name := range names {
		want := wild[name]
		raw, err := os.ReadFile(filepath.Join("testdata/wild", name))
		if err != nil {
			t.Fatal(err)
		}
		fromEnd := -1 // where the From line ends
		if loc := fromLine.FindIndex(raw); loc != nil && want.refused == nil {
			fromEnd = loc[1]
		}
		step := max(1, len(raw)/24)
		for cut := 0; cut < len(raw); cut += step {
			part := raw[:cut]
			a := serve(r.srv, part)
			m, perr := email.ParseRaw(part)
			switch {
			case a.status >= 500 || a.status >= 400 && !a.envelope():
				t.Fatalf("%s cut at %d: %d %s", name, cut, a.status, a.raw)
			case a.status >= 400:
				if fromEnd >= 0 && cut >= fromEnd {
					t.Errorf("%s cut at %d, after its From line: %d %s", name, cut, a.status, a.raw)
				}
			case a.status != http.StatusOK || perr != nil:
				t.Fatalf("%s cut at %d: %d %s (ParseRaw: %v)", name, cut, a.status, a.raw, perr)
			case fromEnd >= 0 && cut >= fromEnd && m.From != want.from:
				t.Errorf("%s cut at %d: sender %q, want %q", name, cut, m.From, want.from)
			}
		}
	}
}

// FuzzEmailEndpoint posts arbitrary bytes as a raw message to the real
// endpoint: never a panic, never a 5xx, a refusal is the error envelope,
// and an accepted message was saved under a sender address that
// normalises.
func FuzzEmailEndpoint(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.eml")
	more, _ := filepath.Glob("testdata/wild/*.eml")
	for _, name := range append(files, more...) {
		raw, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	r := newRig(f, true)
	f.Fuzz(func(t *testing.T, raw []byte) {
		a := serve(r.srv, raw)
		m, perr := email.ParseRaw(raw)
		switch {
		case a.status >= 500:
			t.Fatalf("%d for message content: %s", a.status, a.raw)
		case a.status >= 400:
			if !a.envelope() {
				t.Fatalf("%d without the error envelope: %s", a.status, a.raw)
			}
			if perr != nil && core.ErrorCode(perr) != core.CodeInvalid {
				t.Fatalf("ParseRaw refused with a %v", perr)
			}
			return
		case a.status != http.StatusOK:
			t.Fatalf("status %d: %s", a.status, a.raw)
		}
		if perr != nil {
			t.Fatalf("accepted, but ParseRaw refuses: %v", perr)
		}
		norm, err := core.NormalizeEmail(m.From)
		if err != nil || norm == "" || norm != m.From {
			t.Fatalf("accepted sender %q does not normalise (%q, %v)", m.From, norm, err)
		}
		if core.BlockedEmail(norm) {
			return // a placeholder address (noreply@, example.*) never links to anyone
		}
		ref, _ := a.body["customer_ref"].(string)
		if unassigned, _ := a.body["unassigned"].(bool); unassigned && ref == "" {
			// Earlier inputs gave this address to more than one customer:
			// the end waits for someone to say who wrote (identity, issue 14).
			return
		}
		p, err := r.engine.Customer(t.Context(), ref, 0)
		if err != nil {
			t.Fatalf("customer %q: %v", ref, err)
		}
		if !slices.ContainsFunc(p.Identifiers, func(id core.IdentifierView) bool { return id.Kind == "email" && id.Value == norm }) {
			t.Fatalf("customer %s was not saved with the sender's address", ref)
		}
	})
}
