package core

import (
	"slices"
	"strings"
	"time"

	"github.com/sticky-cc/sticky/core/store"
)

// VariableView is a variable as clients see it.
type VariableView struct {
	Value      string  `json:"value"`
	Source     *string `json:"source"`
	TTLSeconds int64   `json:"ttl_seconds"`
}

// OpenIntent is an intent still open or abandoned, with how often it was raised.
type OpenIntent struct {
	Intent        string    `json:"intent"`
	Status        string    `json:"status"`
	AttemptCount  int       `json:"attempt_count"`
	FirstRaisedAt Timestamp `json:"first_raised_at"`
	LastContactAt Timestamp `json:"last_contact_at"`
}

// HistoryItem is one earlier interaction.
type HistoryItem struct {
	CallID       string    `json:"call_id"`
	Channel      string    `json:"channel"`
	StartedAt    Timestamp `json:"started_at"`
	EndedAt      Timestamp `json:"ended_at"`
	Intent       string    `json:"intent"`
	IntentStatus string    `json:"intent_status"`
	Summary      string    `json:"summary"`
	DNIS         string    `json:"dnis,omitempty"`
}

// Context is what we know about a customer right now.
type Context struct {
	OpenIntents []OpenIntent            `json:"open_intents"`
	Variables   map[string]VariableView `json:"variables"`
	History     []HistoryItem           `json:"history"`
	Headline    string                  `json:"headline"`
}

func (e *Engine) readContext(t *store.Txn, c store.Customer, now time.Time) (Context, error) {
	hist := c.Recent[:min(len(c.Recent), e.opts.HistoryLimit)]
	return Context{
		OpenIntents: e.openIntents(c, now),
		Variables:   variableViews(c.Variables, now),
		History:     historyItems(hist),
		Headline:    e.headline(hist, now),
	}, nil
}

// findVariable is where the variable name is, or would go, in vars
// (sorted by name, as a customer record keeps them).
func findVariable(vars []store.Variable, name string) (int, bool) {
	return slices.BinarySearchFunc(vars, name, func(a store.Variable, name string) int { return strings.Compare(a.Name, name) })
}

// setVariable sets one variable in the customer record (sorted by name).
func setVariable(c *store.Customer, v store.Variable) {
	i, found := findVariable(c.Variables, v.Name)
	if found {
		c.Variables[i] = v
		return
	}
	c.Variables = slices.Insert(c.Variables, i, v)
}

// addRecent puts an interaction into the record's newest-first list,
// keeping at most limit.
func addRecent(c *store.Customer, h store.Interaction, limit int) {
	i := 0
	for i < len(c.Recent) && !h.EndedAt.After(c.Recent[i].EndedAt) {
		i++
	}
	c.Recent = slices.Insert(c.Recent, i, h)
	if len(c.Recent) > limit {
		c.Recent = c.Recent[:limit]
	}
}

func variableViews(vars []store.Variable, now time.Time) map[string]VariableView {
	out := make(map[string]VariableView, len(vars))
	for _, v := range vars {
		left := v.ExpiresAt.Sub(now)
		if left <= 0 {
			continue
		}
		vv := VariableView{Value: v.Value, TTLSeconds: int64((left + time.Second - 1) / time.Second)}
		if v.Source != "" {
			src := v.Source
			vv.Source = &src
		}
		out[v.Name] = vv
	}
	return out
}

// intentLive reports whether an intent is still unresolved and in its window.
func (e *Engine) intentLive(in store.Intent, now time.Time) bool {
	return (in.Status == StatusOpen || in.Status == StatusAbandoned) &&
		now.Sub(in.LastContactAt) <= e.opts.IntentWindow
}

func (e *Engine) openIntents(c store.Customer, now time.Time) []OpenIntent {
	out := []OpenIntent{}
	var live []store.Intent
	for _, in := range c.Intents {
		if e.intentLive(in, now) {
			live = append(live, in)
		}
	}
	slices.SortStableFunc(live, func(a, b store.Intent) int { return b.LastContactAt.Compare(a.LastContactAt) })
	for _, in := range live {
		out = append(out, OpenIntent{in.Name, in.Status, in.AttemptCount, TS(in.FirstRaisedAt), TS(in.LastContactAt)})
	}
	return out
}

func historyItems(hist []store.Interaction) []HistoryItem {
	out := make([]HistoryItem, 0, len(hist))
	for _, h := range hist {
		out = append(out, HistoryItem{h.CallID, h.Channel, TS(h.StartedAt), TS(h.EndedAt), h.Intent, h.IntentStatus, h.Summary, h.DNIS})
	}
	return out
}

var channelVerb = map[string]string{"chat": "chatted", "email": "emailed", "phone": "called", "sms": "texted", "web": "wrote"}

// headline says in one line what the customer did lately, oldest first:
// "Chatted Mon about billing_inquiry · emailed Tue about refund_status".
func (e *Engine) headline(hist []store.Interaction, now time.Time) string {
	if len(hist) == 0 {
		return "First contact"
	}
	n := min(len(hist), 3)
	parts := make([]string, 0, n)
	for i := n - 1; i >= 0; i-- {
		h := hist[i]
		verb, ok := channelVerb[h.Channel]
		if !ok {
			verb = "contacted via " + h.Channel
		}
		p := verb + " " + e.when(h.EndedAt, now)
		if h.Intent != "" {
			p += " about " + h.Intent
		}
		parts = append(parts, p)
	}
	s := strings.Join(parts, " · ")
	return strings.ToUpper(s[:1]) + s[1:]
}

func (e *Engine) when(t, now time.Time) string {
	t, now = t.In(e.opts.Location), now.In(e.opts.Location)
	y1, m1, d1 := t.Date()
	y2, m2, d2 := now.Date()
	days := int(time.Date(y2, m2, d2, 0, 0, 0, 0, time.UTC).Sub(time.Date(y1, m1, d1, 0, 0, 0, 0, time.UTC)) / (24 * time.Hour))
	switch {
	case days == 0:
		return "today"
	case days >= 1 && days < 7:
		return t.Format("Mon")
	case t.Year() == now.Year():
		return t.Format("Jan 2")
	}
	return t.Format("Jan 2 2006")
}
