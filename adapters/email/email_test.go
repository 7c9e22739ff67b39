package email

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sticky-cc/sticky/core"
)

func load(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var ticketRE = regexp.MustCompile(DefaultTicketPattern)

func TestParseMultipartReply(t *testing.T) {
	m, err := ParseRaw(load(t, "reply.eml"))
	if err != nil {
		t.Fatal(err)
	}
	if m.From != "customer@example.test" || m.FromName != "Jane Döe" {
		t.Fatalf("from = %q %q", m.From, m.FromName)
	}
	if m.Subject != "Re: [TKT-789] Refund for order #4521 – still waiting" {
		t.Fatalf("subject = %q", m.Subject)
	}
	if m.MessageID != "CAJane-002@mail.example.com" || !slices.Equal(m.References, []string{"CAJane-000@mail.example.com", "agent-001@shop.example"}) {
		t.Fatalf("ids = %q %q", m.MessageID, m.References)
	}
	if !m.Date.Equal(time.Date(2026, 1, 27, 10, 0, 0, 0, time.UTC)) {
		t.Fatalf("date = %v", m.Date)
	}
	if m.CallID() != "email_CAJane-000@mail.example.com" {
		t.Fatalf("call id = %q", m.CallID())
	}
	// The plain part was chosen, decoded from quoted-printable Latin-1.
	if !strings.Contains(m.Text, "Jane Döe | Customer since 2019") {
		t.Fatalf("text not decoded: %q", m.Text)
	}
	nt := NewText(m.Text)
	for _, gone := range []string{"Hello Jane", "wrote:", "Customer since", "Thanks,", "+1 415"} {
		if strings.Contains(nt, gone) {
			t.Errorf("new text keeps %q:\n%s", gone, nt)
		}
	}
	want := "[TKT-789] Refund for order #4521 – still waiting — I still haven't received the refund for order #4521. " +
		"It has been ten days since you confirmed it on the phone. Could you tell me when it will arrive? " +
		"The bank says nothing is pending. I attached the receipt from the original purchase."
	if got := m.Summary(); got != want {
		t.Fatalf("summary\n got %q\nwant %q", got, want)
	}
	if got := m.TicketID(ticketRE); got != "TKT-789" {
		t.Fatalf("ticket = %q", got)
	}
	if len(m.Defects) != 0 {
		t.Fatalf("defects in well-formed mail: %q", m.Defects)
	}
	req := m.Request(Options{TicketPattern: ticketRE})
	if _, ok := req.Variables[DefectsVariable]; ok {
		t.Fatalf("%s set for well-formed mail", DefectsVariable)
	}
	if req.Channel != "email" || req.Hints.ExternalIDs["email"] != "customer@example.test" ||
		req.Variables["ticket_id"] != "TKT-789" || !req.StartedAt.IsZero() || !req.EndedAt.Equal(m.Date) {
		t.Fatalf("request = %+v", req)
	}
}

func TestParseHTMLOnly(t *testing.T) {
	m, err := ParseRaw(load(t, "html-only.eml"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "Double charge – invoice INV-2026-01" || m.From != "marc@example.test" {
		t.Fatalf("headers: %q %q", m.Subject, m.From)
	}
	if strings.Contains(m.Text, "Your invoice is attached") || strings.Contains(m.Text, "billing@") {
		t.Fatalf("Outlook's quoted thread kept: %q", m.Text)
	}
	want := "Double charge – invoice INV-2026-01 — My invoice INV-2026-01 shows a charge of €49 twice. Please refund one of them."
	if got := m.Summary(); got != want {
		t.Fatalf("summary\n got %q\nwant %q", got, want)
	}
	if m.IsReply() || m.CallID() != "email_DB9PR01MB0001@eurprd01.prod.outlook.com" {
		t.Fatalf("thread: reply=%v id=%q", m.IsReply(), m.CallID())
	}
	if len(m.Defects) != 0 {
		t.Fatalf("defects in well-formed mail: %q", m.Defects)
	}
	req := m.Request(Options{TicketPattern: ticketRE})
	if !req.StartedAt.Equal(m.Date) || req.Variables["ticket_id"] != "" {
		t.Fatalf("request = %+v", req)
	}
}

func TestParseHTMLPartOfGmailReply(t *testing.T) {
	// A Gmail reply, had it come without a plain part.
	got := NewText(HTMLText(`<div dir="ltr"><p>Hi team,</p><p>Where is my refund?</p><p>Thanks,<br>Jane</p></div>
<div class="gmail_quote"><div class="gmail_attr">On Mon, Jan 26 Shop wrote:</div><blockquote>issued</blockquote></div>`))
	if got != "Hi team,\n\nWhere is my refund?" {
		t.Fatalf("new text = %q", got)
	}
}

func TestNewText(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"attribution on two lines", "Sure, Tuesday works.\n\nOn Mon, Jan 26, 2026 at 3:00 PM Shop Support <\nsupport@shop.example> wrote:\n> When?", "Sure, Tuesday works."},
		{"outlook header block", "Please cancel.\r\n\r\nFrom: Shop <s@shop.example>\r\nSent: Monday\r\nTo: me\r\n\r\nOld text", "Please cancel."},
		{"original message", "New.\n-----Original Message-----\nOld.", "New."},
		{"interleaved quotes", "> question one?\nAnswer one.\n> question two?\nAnswer two.", "Answer one.\nAnswer two."},
		{"mobile signature", "Call me back please\n\nSent from my iPhone", "Call me back please"},
		{"sig delimiter", "Text\n-- \nJane\nACME", "Text"},
		{"german", "Danke!\n\nAm 26.01.2026 um 15:00 schrieb Shop <s@shop.example>:\n> alt", "Danke!"},
		{"thanks mid-text kept", "Thanks for the quick answer.\nIt works now.", "Thanks for the quick answer.\nIt works now."},
	} {
		if got := NewText(tc.in); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestParseJSON(t *testing.T) {
	m, err := ParseJSON([]byte(`{"from":"Jane Doe <customer@example.com>","to":"support@shop.example",
		"subject":"Re: [TKT-789] Refund","html":"<p>Any news?</p><blockquote>old</blockquote>",
		"message_id":"<m2@mail.example.com>","in_reply_to":"<m1@mail.example.com>",
		"references":["<m1@mail.example.com>"],"date":"Tue, 27 Jan 2026 10:00:00 +0000"}`))
	if err != nil {
		t.Fatal(err)
	}
	if m.CallID() != "email_m1@mail.example.com" || m.Summary() != "[TKT-789] Refund — Any news?" || m.Date.Hour() != 10 {
		t.Fatalf("message = %+v, summary %q", m, m.Summary())
	}
	for _, bad := range []struct{ body, path string }{
		{`{"subject":"x"}`, "from"},
		{`{"from":"not an address"}`, "from"},
		{`{"from":"a@b.example","date":"yesterday"}`, "date"},
		{`{"from":"a@b.example","references":{"a":1}}`, "references"},
		{`{"from":42}`, "from"},
	} {
		_, err := ParseJSON([]byte(bad.body))
		var ce *core.Error
		if !asCore(err, &ce) || ce.Code != core.CodeInvalid || ce.Issues[0].Path[0] != bad.path {
			t.Errorf("%s: err = %v", bad.body, err)
		}
	}
}

func asCore(err error, dst **core.Error) bool {
	e, ok := err.(*core.Error)
	*dst = e
	return ok
}

func TestCallIDBounded(t *testing.T) {
	long := strings.Repeat("x", 200) + "@example.com"
	m := &Message{References: []string{long}}
	if id := m.CallID(); len(id) > core.MaxIDLen || !strings.HasPrefix(id, "email_h") {
		t.Fatalf("long id = %q", id)
	}
	m = &Message{MessageID: "a b\x01@c"}
	if id := m.CallID(); !strings.HasPrefix(id, "email_h") {
		t.Fatalf("unsafe id = %q", id)
	}
	// No ids at all: a stable id from the message itself.
	a := &Message{From: "a@b.example", Subject: "s", Text: "t"}
	b := &Message{From: "a@b.example", Subject: "s", Text: "t"}
	if a.CallID() != b.CallID() || len(a.CallID()) > core.MaxIDLen {
		t.Fatalf("ids %q %q", a.CallID(), b.CallID())
	}
}

// TestMalformedRaw: what ParseRaw refuses. What it reads despite defects
// is the corpus in testdata/wild (TestMailFromTheWild).
func TestMalformedRaw(t *testing.T) {
	for name, raw := range map[string]string{
		"not a message": "this is not an email",
		"no from":       "Subject: hi\r\n\r\nbody",
		"bad from":      "From: nobody\r\n\r\nbody",
	} {
		if _, err := ParseRaw([]byte(raw)); core.ErrorCode(err) != core.CodeInvalid {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

func TestObsoleteFieldSyntax(t *testing.T) {
	// White space before the colon is RFC 5322's obsolete syntax, not an
	// mbox "From " line.
	m, err := ParseRaw([]byte("From : Jane <jane@example.com>\r\nSubject : hi\r\n\r\nbody"))
	if err != nil || m.From != "jane@example.com" || m.Subject != "hi" || len(m.Defects) != 0 {
		t.Fatalf("%+v, %v", m, err)
	}
}

func TestSenderPickedOutOfABrokenFrom(t *testing.T) {
	for _, tc := range []struct{ from, addr, name string }{
		{"Jane Doe jane@example.com", "jane@example.com", ""},
		{`"Doe, Jane <Jane@Example.com>`, "jane@example.com", "Doe, Jane"},
		{"J\xf6rg <joerg@example.de>", "joerg@example.de", "Jörg"},
		{"=?x-none?Q?Caf=C3=A9?= <owner@cafe.example>", "owner@cafe.example", "Café"},
		{"mailto:jane@example.com.", "jane@example.com", ""},
		{"Jane <MAILTO:jane@example.com>", "jane@example.com", "Jane"},
		{"Jane <jane@exa", "", ""}, // cut short: no address rather than a wrong one
		{"Jane Doe", "", ""},
		{"undisclosed-recipients:;", "", ""},
	} {
		addr, name, ok := rawSender(tc.from, nil)
		if addr != tc.addr || name != tc.name || ok != (tc.addr != "") {
			t.Errorf("rawSender(%q) = %q %q %v, want %q %q", tc.from, addr, name, ok, tc.addr, tc.name)
		}
	}
}

func TestLenientDecoders(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		bad      bool
	}{
		{"SGVsbG8=V29ybGQ=", "HelloWorld", false}, // concatenated chunks
		{"SGVs\r\nbG8", "Hello", false},           // no padding
		{"SGVs*bG8=", "Hello", true},
		{"SGVsbG8gV", "Hello ", true}, // a dangling character
		{"", "", false},
	} {
		got, bad := unbase64([]byte(tc.in))
		if string(got) != tc.want || bad != tc.bad {
			t.Errorf("unbase64(%q) = %q %v, want %q %v", tc.in, got, bad, tc.want, tc.bad)
		}
	}
	for _, tc := range []struct {
		in, want string
		bad      bool
	}{
		{"a=3Db=\r\nc\r\n", "a=bc\n", false},
		{"caf=e9 \t\n", "caf\xe9\n", false}, // lower-case hex; transport white space
		{"50 =ZZ off=", "50 =ZZ off", true},
		{"=4", "=4", true},
	} {
		got, bad := unQuotedPrintable([]byte(tc.in))
		if string(got) != tc.want || bad != tc.bad {
			t.Errorf("unQuotedPrintable(%q) = %q %v, want %q %v", tc.in, got, bad, tc.want, tc.bad)
		}
	}
	for _, tc := range []struct {
		in, want string
		defects  []string
	}{
		{"=?utf-8?q?a?= =?utf-8?q?b?=", "ab", nil},
		{"x =?ISO-8859-1?Q?caf=E9?= y", "x café y", nil},
		{"=?utf-8?B?w6k?=", "é", nil}, // no padding
		{"=?utf-8*en?Q?hi?=", "hi", nil},
		{"=?utf-8?B?***?= ok", "=?utf-8?B?***?= ok", []string{DefectBadEncodedWord}},
		{"=?x-none?Q?caf=C3=A9?=", "café", []string{DefectUnknownCharset}},
		{"=?x-none?Q?caf=E9?=", "café", []string{DefectUnknownCharset}},
	} {
		var d defects
		if got := decodeWords(tc.in, &d); got != tc.want || !slices.Equal(d.list, tc.defects) {
			t.Errorf("decodeWords(%q) = %q %q, want %q %q", tc.in, got, d.list, tc.want, tc.defects)
		}
	}
}

func checkMessage(t *testing.T, m *Message) {
	id := m.CallID()
	if utf8.RuneCountInString(id) > core.MaxIDLen || !printable(id) {
		t.Fatalf("call id %q", id)
	}
	req := m.Request(Options{TicketPattern: ticketRE})
	for k, v := range req.Variables {
		if len(v) > core.MaxVarValueBytes || !utf8.ValidString(v) {
			t.Fatalf("variable %s: %d bytes, valid=%v", k, len(v), utf8.ValidString(v))
		}
	}
	if req.Hints.ExternalIDs["email"] == "" {
		t.Fatal("no sender")
	}
	if norm, err := core.NormalizeEmail(m.From); err != nil || norm != m.From {
		t.Fatalf("sender %q does not normalise to itself (%q, %v)", m.From, norm, err)
	}
}

func FuzzParseRaw(f *testing.F) {
	f.Add(load(f, "reply.eml"))
	f.Add(load(f, "html-only.eml"))
	wild, _ := filepath.Glob("testdata/wild/*.eml")
	for _, name := range wild {
		f.Add(load(f, strings.TrimPrefix(name, "testdata/")))
	}
	f.Add([]byte("From: a@b.example\r\nContent-Type: multipart/alternative; boundary=x\r\n\r\n--x\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\nPGI+aGk8L2I+\r\n--x--\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := ParseRaw(raw)
		if err != nil {
			if core.ErrorCode(err) != core.CodeInvalid {
				t.Fatalf("error is not a validation error: %v", err)
			}
			return
		}
		checkMessage(t, m)
	})
}

func FuzzParseJSON(f *testing.F) {
	f.Add([]byte(`{"from":"a@b.example","subject":"[TKT-1] x","text":"hi\n> old","references":"<r@x>"}`))
	f.Add([]byte(`{"from":"a@b.example","html":"<p>x</p>","in_reply_to":["<a>"],"date":"2026-01-27T10:00:00Z"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseJSON(b)
		if err != nil {
			if core.ErrorCode(err) != core.CodeInvalid {
				t.Fatalf("error is not a validation error: %v", err)
			}
			return
		}
		checkMessage(t, m)
	})
}

func BenchmarkParseRaw(b *testing.B) {
	raw := load(b, "reply.eml")
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		m, err := ParseRaw(raw)
		if err != nil {
			b.Fatal(err)
		}
		_ = m.Request(Options{TicketPattern: ticketRE})
	}
}
