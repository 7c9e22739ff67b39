// Package zendesk turns a Zendesk ticket webhook (a trigger's JSON body)
// into the end of the ticket's interaction for the core engine.
package zendesk

import (
	"strings"
	"time"

	"github.com/sticky-cc/sticky/adapters/webhook"
	"github.com/sticky-cc/sticky/core"
)

// Ticket is what a trigger webhook reports about a ticket.
type Ticket struct {
	ID          string
	Status      string // new, open, pending, hold, solved, closed
	Subject     string
	Description string
	Channel     string // via.channel as sent
	Intent      string // optional: a label the trigger body adds
	CreatedAt   time.Time
	UpdatedAt   time.Time
	Requester   Requester
}

// Requester is the ticket's customer.
type Requester struct {
	ID, Email, Phone, Name string
}

// statuses maps Zendesk ticket statuses to intent statuses.
var statuses = map[string]string{
	"new": core.StatusOpen, "open": core.StatusOpen, "pending": core.StatusOpen, "hold": core.StatusOpen,
	"on-hold": core.StatusOpen, "on_hold": core.StatusOpen,
	"solved": core.StatusResolved, "closed": core.StatusResolved,
}

// channels maps via.channel values (API names and the labels {{ticket.via}}
// renders) to Sticky channels; others are kept, made channel-shaped.
var channels = map[string]string{
	"email": "email", "mail": "email",
	"voice": "phone", "phone": "phone", "phone_call_(incoming)": "phone", "phone_call_(outgoing)": "phone",
	"chat": "chat", "native_messaging": "chat", "messaging": "chat", "web_widget": "chat",
	"sms": "sms", "text": "sms",
	"web": "web", "web_form": "web", "web_service": "web", "api": "web",
}

// Parse decodes a trigger webhook body
//
//	{"ticket": {"id", "status", "subject", "description", "via": {"channel"},
//	 "requester": {"id", "email", "phone", "name"}, "created_at", "updated_at", "intent"}}
//
// Problems come back as a *core.Error (CodeInvalid) with paths into the body.
func Parse(b []byte) (*Ticket, error) {
	f, err := webhook.Decode(b)
	if err != nil {
		return nil, err
	}
	var is webhook.Issues
	tk := f.Obj(&is, "ticket")
	if tk == nil {
		if !is.Has("ticket") {
			is.Add("is required: the trigger body must be {\"ticket\": {...}}", "ticket")
		}
		return nil, is.Err("invalid Zendesk webhook")
	}
	t := &Ticket{}
	t.ID = tk.ID(&is, "id")
	t.Status = strings.ToLower(strings.TrimSpace(tk.Str(&is, "status")))
	t.Subject = tk.Str(&is, "subject")
	t.Description = tk.Str(&is, "description")
	t.Intent = strings.TrimSpace(tk.Str(&is, "intent"))
	t.CreatedAt = tk.Time(&is, "created_at")
	t.UpdatedAt = tk.Time(&is, "updated_at")
	if via := tk.Obj(&is, "via"); via != nil {
		t.Channel = via.Str(&is, "channel")
	}
	if r := tk.Obj(&is, "requester"); r != nil {
		t.Requester = Requester{ID: r.ID(&is, "id"), Email: r.Str(&is, "email"), Phone: r.Str(&is, "phone"), Name: r.Str(&is, "name")}
	}
	if t.ID == "" && !is.Has("ticket") {
		is.Add("is required", "ticket", "id")
	}
	if _, ok := statuses[t.Status]; !ok && t.Status != "" {
		is.Add("must be one of new, open, pending, hold, solved, closed", "ticket", "status")
	}
	rq := t.Requester
	if strings.TrimSpace(rq.ID+rq.Email+rq.Phone) == "" && !is.Has("ticket") {
		is.Add("must hold at least one of id, email, phone", "ticket", "requester")
	}
	if err := is.Err("invalid Zendesk webhook"); err != nil {
		return nil, err
	}
	return t, nil
}

// CallID is the ticket's interaction id.
func CallID(ticket string) string { return "zendesk_" + ticket }

// IDKind is the external id kind a requester's Zendesk user id is indexed
// under. It is not customer_id: Zendesk user ids are numbered by Zendesk,
// and sharing a kind with a CRM's customer ids would link strangers whose
// numbers happen to be equal.
const IDKind = "zendesk_user_id"

// Channel maps via.channel to a Sticky channel (zendesk when absent).
func Channel(via string) string {
	v := strings.ToLower(strings.Join(strings.Fields(via), "_"))
	if v == "" {
		return "zendesk"
	}
	if ch, ok := channels[v]; ok {
		return ch
	}
	out := make([]byte, 0, len(v))
	for i := 0; i < len(v) && len(out) < core.MaxChannelLen; i++ {
		c := v[i]
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return "zendesk"
	}
	return string(out)
}

// Request is the end of the ticket's interaction: the requester's email,
// phone (as the ANI) and Zendesk user id as identity hints, the status as
// the intent status (solved and closed are resolved), the description as
// the summary, and the ticket id and status as variables. The intent is
// the trigger's "intent" field when it sends one, else ticket_<id>.
func (t *Ticket) Request() core.EndRequest {
	req := core.EndRequest{
		CallID:    CallID(t.ID),
		Channel:   Channel(t.Channel),
		StartedAt: t.CreatedAt,
		EndedAt:   t.UpdatedAt,
		Intent:    t.Intent,
	}
	if req.Intent == "" {
		req.Intent = "ticket_" + t.ID
	}
	req.IntentStatus = core.StatusOpen
	if st, ok := statuses[t.Status]; ok {
		req.IntentStatus = st
	}
	h := core.Hints{ANI: strings.TrimSpace(t.Requester.Phone), ExternalIDs: map[string]string{}}
	if v := strings.TrimSpace(t.Requester.Email); v != "" {
		h.ExternalIDs["email"] = v
	}
	if v := strings.TrimSpace(t.Requester.ID); v != "" {
		h.ExternalIDs[IDKind] = v
	}
	req.Hints = &h
	vars := map[string]string{"ticket_id": t.ID}
	if t.Status != "" {
		vars["ticket_status"] = t.Status
	}
	summary := strings.TrimSpace(t.Description)
	if summary == "" {
		summary = strings.TrimSpace(t.Subject)
	}
	if summary != "" {
		vars["summary"] = webhook.ClipBytes(summary, core.MaxVarValueBytes)
	}
	req.Variables = vars
	return req
}

// Path maps an issue path of the core's EndRequest back to this body.
func Path(p []any) []any {
	if len(p) == 0 {
		return p
	}
	switch p[0] {
	case "call_id":
		return []any{"ticket", "id"}
	case "intent", "intent_status":
		return []any{"ticket", p[0]}
	case "channel":
		return []any{"ticket", "via", "channel"}
	case "started_at":
		return []any{"ticket", "created_at"}
	case "ended_at":
		return []any{"ticket", "updated_at"}
	case "identity_hints":
		if len(p) >= 2 && p[1] == "ani" {
			return []any{"ticket", "requester", "phone"}
		}
		if len(p) >= 3 && p[1] == "external_ids" {
			switch p[2] {
			case "email":
				return []any{"ticket", "requester", "email"}
			case IDKind:
				return []any{"ticket", "requester", "id"}
			}
		}
		return []any{"ticket", "requester"}
	case "variables":
		if len(p) >= 2 && p[1] == "summary" {
			return []any{"ticket", "description"}
		}
		return []any{"ticket", "id"}
	}
	return p
}
