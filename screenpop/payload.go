package screenpop

import (
	"encoding/json"
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
	// history timeline included, when the caller's identity is at or
	// above the disclosure level. Below it, it is withheld: the call,
	// the identity and the candidates' names, with Withheld set and
	// Verify saying what to ask; the desktop fetches the rest once the
	// agent has verified the caller.
	Context *PopContext `json:"context"`
}

// PopContext is a pop's context: a whole core.StartResult, or a withheld
// one (core.Withheld: call_id, call_start, identity, withheld,
// candidates) with Verify.
type PopContext struct {
	core.StartResult
	Withheld   bool                  `json:"withheld,omitempty"`
	Candidates []core.NamedCandidate `json:"candidates,omitempty"`
	Verify     *Verify               `json:"verify,omitempty"`
}

// Verify is what a withheld pop asks of the agent, and where its desktop
// fetches the context afterwards.
type Verify struct {
	Prompts []string `json:"prompts"`
	// ContextSubject is the agent's context subject ("" for a pop to a
	// queue only: nobody may fetch the context of a call that rang no
	// agent).
	ContextSubject string `json:"context_subject,omitempty"`
}

// withheldPop is the context of a withheld pop as it is encoded: only
// what core.Withheld holds, and what to ask.
type withheldPop struct {
	*core.Withheld
	Verify Verify `json:"verify"`
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
	return Customer{Ref: res.CustomerRef, Name: core.DisplayName(func(name string) string { return res.Variables[name].Value })}
}
