// Package email turns an inbound email (a raw RFC 5322 message or an
// inbound-email JSON) into the end of its thread's `email` interaction.
package email

import (
	"crypto/sha256"
	"encoding/hex"
	"net/mail"
	"regexp"
	"strings"
	"time"
	"unicode"

	"github.com/sticky-cc/sticky/adapters/webhook"
	"github.com/sticky-cc/sticky/core"
)

// Message is an inbound email, decoded.
type Message struct {
	From       string // the sender's address
	FromName   string
	Subject    string
	MessageID  string   // without angle brackets
	InReplyTo  []string // message ids
	References []string // message ids, oldest first
	Date       time.Time
	// Text is the body as text (HTML turned into text), before quoted
	// replies and the signature are removed; NewText does that.
	Text string
	// Intent and IntentStatus are optional labels for the thread.
	Intent, IntentStatus string
	// JSON reports whether the message came as inbound-email JSON (for
	// issue paths).
	JSON bool
	// Defects are what a raw message was read despite (the Defect*
	// codes), in the order met; none for a well-formed message.
	Defects []string
}

// DefaultTicketPattern finds [TKT-789]-style ticket ids in subjects; the
// first capture group is the id.
const DefaultTicketPattern = `\[([A-Za-z][A-Za-z0-9]{1,15}-[0-9]{1,12})\]`

// DefectsVariable is the variable that lists, comma-separated, the defects
// a raw message was read despite (see Message.Defects).
const DefectsVariable = "email_defects"

// SummaryLines is how many lines of new text the summary takes.
const SummaryLines = 3

// Thread is the message id of the thread's root: the first of References,
// else In-Reply-To, else the message's own Message-ID. Empty when the
// message carries none of them.
func (m *Message) Thread() string {
	for _, l := range [][]string{m.References, m.InReplyTo} {
		for _, id := range l {
			if id != "" {
				return id
			}
		}
	}
	return m.MessageID
}

// IsReply reports whether the message answers an earlier one.
func (m *Message) IsReply() bool { return len(m.References) > 0 || len(m.InReplyTo) > 0 }

// CallID makes the interaction id of a thread root: "email_" + the id when
// it fits the 128-character limit and is plain printable text, else
// "email_" + a hash of it. A message with no ids at all is its own thread,
// named by a hash of sender, date and subject.
func (m *Message) CallID() string {
	root := m.Thread()
	if root == "" {
		sum := sha256.Sum256([]byte(m.From + "\x00" + m.Date.UTC().Format(time.RFC3339Nano) + "\x00" + m.Subject + "\x00" + m.Text))
		return "email_" + hex.EncodeToString(sum[:16])
	}
	id := "email_" + root
	if len(id) <= core.MaxIDLen && printable(root) {
		return id
	}
	sum := sha256.Sum256([]byte(root))
	return "email_h" + hex.EncodeToString(sum[:16])
}

func printable(s string) bool {
	for _, r := range s {
		if r <= ' ' || r >= 0x7f {
			return false
		}
	}
	return true
}

// TicketID finds a ticket id in the subject with re (nil: none).
func (m *Message) TicketID(re *regexp.Regexp) string {
	if re == nil {
		return ""
	}
	sm := re.FindStringSubmatch(m.Subject)
	switch {
	case sm == nil:
		return ""
	case len(sm) > 1 && sm[1] != "":
		return sm[1]
	}
	return sm[0]
}

var replyPrefix = regexp.MustCompile(`(?i)^\s*((re|fw|fwd|aw|wg|sv|vs|antw|tr|rif)\s*(\[\d+\])?\s*:\s*)+`)

// Summary is the subject (without Re:/Fwd:) and the first lines of the new
// text, with greetings, quoted replies and the signature removed.
func (m *Message) Summary() string {
	subject := webhook.OneLine(replyPrefix.ReplaceAllString(m.Subject, ""))
	var lines []string
	for _, l := range strings.Split(NewText(m.Text), "\n") {
		l = webhook.OneLine(l)
		if l == "" || len(lines) == 0 && greeting(l) {
			continue
		}
		lines = append(lines, l)
		if len(lines) == SummaryLines {
			break
		}
	}
	text := webhook.Clip(strings.Join(lines, " "), 400)
	switch {
	case subject == "":
		return text
	case text == "":
		return webhook.Clip(subject, 200)
	}
	return webhook.Clip(subject, 200) + " — " + text
}

var greetings = []string{"hi", "hello", "hey", "dear", "good morning", "good afternoon", "good evening", "greetings", "hallo", "bonjour"}

// greeting reports a short opening line such as "Hi team,".
func greeting(l string) bool {
	if len(l) > 40 {
		return false
	}
	low := strings.ToLower(l)
	for _, g := range greetings {
		if rest, ok := strings.CutPrefix(low, g); ok && (rest == "" || !unicode.IsLetter(rune(rest[0]))) {
			return true
		}
	}
	return false
}

// Options shape Request.
type Options struct {
	TicketPattern *regexp.Regexp // nil: no ticket ids
}

// Request is the end of the thread's interaction: the sender as
// external_ids.email, the summary and ticket id as variables, the message
// date as the end (and the start, for the first message of a thread).
func (m *Message) Request(o Options) core.EndRequest {
	req := core.EndRequest{
		CallID:       m.CallID(),
		Channel:      "email",
		Hints:        &core.Hints{ExternalIDs: map[string]string{"email": m.From}},
		Intent:       strings.TrimSpace(m.Intent),
		IntentStatus: strings.ToLower(strings.TrimSpace(m.IntentStatus)),
		EndedAt:      m.Date,
	}
	// A reply's thread began earlier, at a time this message does not
	// carry; leaving the start out keeps the thread's own start.
	if !m.IsReply() {
		req.StartedAt = m.Date
	}
	vars := map[string]string{}
	if s := m.Summary(); s != "" {
		vars["summary"] = webhook.ClipBytes(s, core.MaxVarValueBytes)
	}
	if t := m.TicketID(o.TicketPattern); t != "" {
		vars["ticket_id"] = webhook.ClipBytes(t, core.MaxVarValueBytes)
	}
	// The defects tell whoever reads the summary that the text may be
	// incomplete; they are codes, never content, so they hold no PII.
	if len(m.Defects) > 0 {
		vars[DefectsVariable] = webhook.ClipBytes(strings.Join(m.Defects, ","), core.MaxVarValueBytes)
	}
	if len(vars) > 0 {
		req.Variables = vars
	}
	return req
}

// Path maps an issue path of the core's EndRequest back to the message.
func (m *Message) Path(p []any) []any {
	if len(p) == 0 {
		return p
	}
	name := func(raw, js string) []any {
		if m.JSON {
			return []any{js}
		}
		return []any{raw}
	}
	switch p[0] {
	case "call_id":
		return name("Message-ID", "message_id")
	case "identity_hints":
		return name("From", "from")
	case "started_at", "ended_at":
		return name("Date", "date")
	case "variables":
		return name("Subject", "subject")
	}
	return p
}

// parseIDs extracts message ids ("<a@b> <c@d>", or bare ids) without their
// angle brackets.
func parseIDs(s string) []string {
	var out []string
	for {
		i := strings.IndexByte(s, '<')
		if i < 0 {
			break
		}
		j := strings.IndexByte(s[i:], '>')
		if j < 0 {
			break
		}
		if id := strings.TrimSpace(s[i+1 : i+j]); id != "" {
			out = append(out, id)
		}
		s = s[i+j+1:]
	}
	if out == nil {
		for _, f := range strings.Fields(s) {
			if f = strings.Trim(f, "<>,"); f != "" {
				out = append(out, f)
			}
		}
	}
	if len(out) > 100 {
		out = out[:100]
	}
	return out
}

// ParseJSON decodes an inbound-email JSON body:
//
//	{"from", "to", "subject", "text", "html", "message_id", "in_reply_to",
//	 "references", "date", "intent", "intent_status"}
//
// references and in_reply_to may be strings or arrays; date is RFC 3339 or
// RFC 5322.
func ParseJSON(b []byte) (*Message, error) {
	f, err := webhook.Decode(b)
	if err != nil {
		return nil, err
	}
	var is webhook.Issues
	m := &Message{JSON: true}
	from := f.Str(&is, "from")
	m.Subject = f.Str(&is, "subject")
	text := f.Str(&is, "text")
	html := f.Str(&is, "html")
	m.MessageID = first(parseIDs(f.Str(&is, "message_id")))
	for _, s := range f.Strings(&is, "in_reply_to") {
		m.InReplyTo = append(m.InReplyTo, parseIDs(s)...)
	}
	for _, s := range f.Strings(&is, "references") {
		m.References = append(m.References, parseIDs(s)...)
	}
	if d := strings.TrimSpace(f.Str(&is, "date")); d != "" {
		t, err := core.ParseTime(d)
		if err != nil {
			t, err = mail.ParseDate(d)
		}
		if err != nil {
			is.Add("must be an RFC 3339 or RFC 5322 date", "date")
		}
		m.Date = t.UTC()
	}
	m.Intent = f.Str(&is, "intent")
	m.IntentStatus = f.Str(&is, "intent_status")
	if !is.Has("from") {
		if addr, name, ok := sender(from, nil); ok {
			m.From, m.FromName = addr, name
		} else if strings.TrimSpace(from) == "" {
			is.Add("is required: the sender's address identifies the customer", "from")
		} else {
			is.Add("is not an email address", "from")
		}
	}
	if err := is.Err("invalid inbound email"); err != nil {
		return nil, err
	}
	m.Text = text
	if strings.TrimSpace(text) == "" && html != "" {
		m.Text = HTMLText(html)
	}
	return m, nil
}

func first(l []string) string {
	if len(l) == 0 {
		return ""
	}
	return l[0]
}

// sender parses a From value ("Jane <jane@example.com>", or a list, of
// which the first address counts) and checks it normalises.
func sender(v string, p *mail.AddressParser) (addr, name string, ok bool) {
	if p == nil {
		p = &mail.AddressParser{}
	}
	list, err := p.ParseList(strings.TrimSpace(v))
	if err != nil || len(list) == 0 {
		return "", "", false
	}
	a := list[0]
	norm, err := core.NormalizeEmail(a.Address)
	if err != nil || norm == "" || len(norm) > core.MaxHintLen {
		return "", "", false
	}
	return norm, a.Name, true
}
