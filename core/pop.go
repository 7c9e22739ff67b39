package core

import (
	"context"
	"time"
)

// Pop is a screen-pop: a call ringing at an agent or waiting in a queue,
// with everything the agent should see before saying hello. The PBX bridges
// make them; package screenpop delivers them.
type Pop struct {
	CallID    string       `json:"call_id"`               // Sticky's call id (the call_id of Start)
	PBX       string       `json:"pbx"`                   // asterisk or freeswitch
	PBXCallID string       `json:"pbx_call_id,omitempty"` // the PBX's id of the ringing leg
	ANI       string       `json:"ani,omitempty"`
	DNIS      string       `json:"dnis,omitempty"`
	Agent     string       `json:"agent,omitempty"`
	Queue     string       `json:"queue,omitempty"`
	RangAt    time.Time    `json:"rang_at"`
	Context   *StartResult `json:"context"`
}

// Popper delivers screen-pops. Pop must not return before the pop is safely
// handed over (or has failed), and must honour ctx.
type Popper interface {
	Pop(ctx context.Context, p Pop) error
}

// Calls is the engine as channels see it: the one Start and the one End.
// *Engine implements it.
type Calls interface {
	Start(ctx context.Context, req StartRequest) (*StartResult, error)
	End(ctx context.Context, req EndRequest) (*EndResult, error)
}

var _ Calls = (*Engine)(nil)
