package screenpop

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/sticky-cc/sticky/core"
)

// PayloadVersion is the version of the pop JSON. Fields are only ever added
// within a version; a change that breaks readers gets a new version.
const PayloadVersion = 1

// Payload is the JSON body of every pop message (documented in the README).
type Payload struct {
	Version int    `json:"version"`
	Type    string `json:"type"` // always "screenpop"
	// ID is the pop's identity: the same PBX leg ringing the same agent
	// again gives the same ID (JetStream drops the duplicate).
	ID string `json:"id"`
	// Target says which subject this copy was published on: agent, queue
	// or call.
	Target   string    `json:"target"`
	Call     Call      `json:"call"`
	Customer Customer  `json:"customer"`
	SentAt   time.Time `json:"sent_at"`
	// Context is exactly the answer of /v1/calls/start for this call,
	// history timeline included.
	Context *core.StartResult `json:"context"`
}

// wirePayload is Payload as it is encoded: the same fields in the same
// order, with the context already encoded.
type wirePayload struct {
	Version  int             `json:"version"`
	Type     string          `json:"type"`
	ID       string          `json:"id"`
	Target   string          `json:"target"`
	Call     Call            `json:"call"`
	Customer Customer        `json:"customer"`
	SentAt   time.Time       `json:"sent_at"`
	Context  json.RawMessage `json:"context"`
}

// Call holds the call facts of a pop.
type Call struct {
	CallID    string    `json:"call_id"`
	PBX       string    `json:"pbx"`
	PBXCallID string    `json:"pbx_call_id,omitempty"`
	ANI       string    `json:"ani,omitempty"`
	DNIS      string    `json:"dnis,omitempty"`
	Agent     string    `json:"agent,omitempty"`
	Queue     string    `json:"queue,omitempty"`
	RangAt    time.Time `json:"rang_at"`
}

// Customer is who the pop is about, for the card's title.
type Customer struct {
	Ref string `json:"customer_ref,omitempty"`
	// Name comes from the customer's variables (name, customer_name,
	// full_name, or first_name + last_name); empty when none is known.
	Name string `json:"name,omitempty"`
}

// popID is the dedupe key of one copy of a pop.
func popID(p core.Pop, target, key string) string {
	leg := p.PBXCallID
	if leg == "" {
		leg = p.CallID
	}
	id := p.PBX + ":" + leg + ":" + target
	if key != "" {
		id += ":" + key
	}
	return id
}

func customerOf(res *core.StartResult) Customer {
	if res == nil {
		return Customer{}
	}
	c := Customer{Ref: res.CustomerRef}
	v := func(name string) string {
		if vv, ok := res.Variables[name]; ok {
			return strings.TrimSpace(vv.Value)
		}
		return ""
	}
	for _, name := range []string{"name", "customer_name", "full_name", "display_name"} {
		if s := v(name); s != "" {
			c.Name = s
			return c
		}
	}
	c.Name = strings.TrimSpace(v("first_name") + " " + v("last_name"))
	return c
}
