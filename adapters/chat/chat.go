// Package chat turns a finished chat session, as a chat platform reports
// it, into the end of a `chat` interaction for the core engine.
package chat

import (
	"fmt"
	"strings"
	"time"

	"github.com/sticky-cc/sticky/adapters/webhook"
	"github.com/sticky-cc/sticky/core"
)

// Session is a finished chat session.
type Session struct {
	ID           string
	Channel      string // default chat
	Email        string
	Phone        string
	CustomerID   string
	CustomerRef  string
	StartedAt    time.Time
	EndedAt      time.Time
	Summary      string
	Transcript   []Message
	Intent       string
	IntentStatus string
}

// Message is one line of a transcript.
type Message struct {
	From string // customer, agent, bot or system
	Text string
	At   time.Time
}

var senders = map[string]bool{"customer": true, "agent": true, "bot": true, "system": true}

// MaxTranscript bounds the transcript lines read.
const MaxTranscript = 2000

// Parse decodes the body
//
//	{"session_id", "customer": {"email","phone","id","customer_ref"}, "started_at", "ended_at",
//	 "summary", "transcript": [{"from","text","at"}], "intent", "intent_status", "channel"}
//
// Problems come back as a *core.Error (CodeInvalid) whose issue paths point
// into this body.
func Parse(b []byte) (*Session, error) {
	f, err := webhook.Decode(b)
	if err != nil {
		return nil, err
	}
	var is webhook.Issues
	s := &Session{}
	s.ID = f.ID(&is, "session_id")
	s.Channel = f.Str(&is, "channel")
	if c := f.Obj(&is, "customer"); c != nil {
		s.Email = c.Str(&is, "email")
		s.Phone = c.Str(&is, "phone")
		s.CustomerID = c.ID(&is, "id")
		s.CustomerRef = c.Str(&is, "customer_ref")
	}
	if s.CustomerRef == "" { // a flat customer_ref is accepted too
		s.CustomerRef = f.Str(&is, "customer_ref")
	}
	s.StartedAt = f.Time(&is, "started_at")
	s.EndedAt = f.Time(&is, "ended_at")
	s.Summary = f.Str(&is, "summary")
	s.Intent = f.Str(&is, "intent")
	s.IntentStatus = f.Str(&is, "intent_status")
	for _, m := range f.Objects(&is, "transcript", MaxTranscript) {
		msg := Message{From: strings.ToLower(strings.TrimSpace(m.Str(&is, "from"))), Text: m.Str(&is, "text"), At: m.Time(&is, "at")}
		if !senders[msg.From] {
			is.Add("must be customer, agent, bot or system", m.At("from")...)
		}
		s.Transcript = append(s.Transcript, msg)
	}
	if s.ID == "" && !is.Has("session_id") {
		is.Add("is required", "session_id")
	}
	if s.Email == "" && s.Phone == "" && s.CustomerID == "" && s.CustomerRef == "" && !is.Has("customer") {
		is.Add("must hold at least one of email, phone, id, customer_ref", "customer")
	}
	if err := is.Err("invalid chat session"); err != nil {
		return nil, err
	}
	// Times missing from the session come from its transcript.
	var first, last time.Time
	for _, m := range s.Transcript {
		if m.At.IsZero() {
			continue
		}
		if first.IsZero() || m.At.Before(first) {
			first = m.At
		}
		if m.At.After(last) {
			last = m.At
		}
	}
	if s.StartedAt.IsZero() {
		s.StartedAt = first
	}
	if s.EndedAt.IsZero() {
		s.EndedAt = last
	}
	return s, nil
}

// CallID is the interaction id of a session: the session id as given when
// it already starts with "chat", else "chat_" + id, so chat ids never
// collide with a PBX's call ids.
func CallID(session string) string {
	if strings.HasPrefix(strings.ToLower(session), "chat") {
		return session
	}
	return "chat_" + session
}

// Request is the end of the session's interaction. Identifiers go into
// identity hints: email as external_ids.email, phone as the ANI, the chat
// platform's customer id as external_ids.customer_id; a Sticky
// customer_ref, when the chat platform holds one, names the customer.
func (s *Session) Request() core.EndRequest {
	req := core.EndRequest{
		CallID:       CallID(s.ID),
		CustomerRef:  strings.TrimSpace(s.CustomerRef),
		Intent:       strings.TrimSpace(s.Intent),
		IntentStatus: strings.ToLower(strings.TrimSpace(s.IntentStatus)),
		Channel:      "chat",
		StartedAt:    s.StartedAt,
		EndedAt:      s.EndedAt,
	}
	if s.Channel != "" {
		req.Channel = s.Channel
	}
	h := core.Hints{ANI: strings.TrimSpace(s.Phone), ExternalIDs: map[string]string{}}
	if v := strings.TrimSpace(s.Email); v != "" {
		h.ExternalIDs["email"] = v
	}
	if v := strings.TrimSpace(s.CustomerID); v != "" {
		h.ExternalIDs["customer_id"] = v
	}
	req.Hints = &h
	summary := strings.TrimSpace(s.Summary)
	if summary == "" {
		summary = Summarize(s.Transcript)
	}
	if summary != "" {
		req.Variables = map[string]string{"summary": summary}
	}
	return req
}

// Path maps an issue path of the core's EndRequest back to this body.
func Path(p []any) []any {
	if len(p) == 0 {
		return p
	}
	switch p[0] {
	case "call_id":
		return []any{"session_id"}
	case "customer_ref":
		return []any{"customer", "customer_ref"}
	case "channel":
		return []any{"channel"}
	case "identity_hints":
		if len(p) >= 2 && p[1] == "ani" {
			return []any{"customer", "phone"}
		}
		if len(p) >= 3 && p[1] == "external_ids" {
			switch p[2] {
			case "email":
				return []any{"customer", "email"}
			case "customer_id":
				return []any{"customer", "id"}
			}
		}
		return []any{"customer"}
	case "variables":
		return []any{"summary"}
	}
	return p
}

// Summarize makes a short summary of a transcript, deterministically: what
// the customer said first, what the agent said last, and how long it was.
func Summarize(t []Message) string {
	var first, last string
	n := 0
	for _, m := range t {
		text := webhook.OneLine(m.Text)
		if text == "" {
			continue
		}
		n++
		if m.From == "customer" && first == "" {
			first = text
		}
		if m.From == "agent" {
			last = text
		}
	}
	if n == 0 {
		return ""
	}
	var parts []string
	if first != "" {
		parts = append(parts, "Customer: "+webhook.Clip(first, 200))
	}
	if last != "" {
		parts = append(parts, "Agent: "+webhook.Clip(last, 160))
	}
	if len(parts) == 0 {
		return fmt.Sprintf("Chat of %d messages", n)
	}
	return strings.Join(parts, " / ") + fmt.Sprintf(" (%d messages)", n)
}
