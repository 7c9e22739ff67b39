package core

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/sticky-cc/sticky/core/store"
)

// Identify is how an agent (or a CRM) says who is calling: it closes the
// loop that an unassigned call (unassigned.go) leaves open, and undoes a
// wrong pop.

// IdentifyRequest says who a call is from, or who it is not from.
type IdentifyRequest struct {
	CallID      string `json:"call_id"`
	CustomerRef string `json:"customer_ref,omitempty"`
	// Not: the caller is not CustomerRef. The call's identifiers are
	// unlinked from that customer (an identify of them later restores
	// them), and the call, if it was theirs and is still active, becomes
	// unassigned.
	Not bool `json:"not,omitempty"`
	// NewCustomer: the caller is none of the known customers; a new one
	// is created for them (CustomerRef must be empty).
	NewCustomer bool `json:"new_customer,omitempty"`
	// Agent, when set, must be an agent the call was popped to. Desktops
	// over NATS always set it (from the subject they may publish on).
	Agent string `json:"agent,omitempty"`
	// By is the credential that sent the decision, for the audit trail:
	// "key:<hash prefix>" over HTTP, "nats:<agent>" from a desktop. The
	// transports set it; it is never read from a body.
	By string `json:"-"`
}

// IdentifyResult is what a decision did.
type IdentifyResult struct {
	CallID string `json:"call_id"`
	// CustomerRef is whom the call belongs to now ("" while unassigned).
	CustomerRef string           `json:"customer_ref"`
	Decision    string           `json:"decision"` // assigned, not, new_customer
	DecidedBy   string           `json:"decided_by"`
	Agent       string           `json:"agent,omitempty"`
	DecidedAt   Timestamp        `json:"decided_at"`
	Linked      []IdentifierView `json:"linked"`
	Unlinked    []IdentifierView `json:"unlinked"`
	// Candidates are who the call may still be from, while unassigned.
	Candidates []string `json:"candidates"`
	// Saved is the call's end, saved on the customer by this decision,
	// when the call had ended before anyone said who it was.
	Saved *EndResult `json:"saved,omitempty"`
	// Context is the customer's context, for the desktop to show.
	Context *Context `json:"context,omitempty"`
}

// Decisions of an IdentifyResult.
const (
	DecisionAssigned    = "assigned"
	DecisionNot         = "not"
	DecisionNewCustomer = "new_customer"
)

// identifyCmd is everything applyIdentify needs: applying it to the same
// store gives the same result on every node.
// In a cluster it travels in the shared log's command (replicate.go), which
// carries Now and NewRef as its own Now and Ref.
type identifyCmd struct {
	CallID string    `json:"call_id"`
	Ref    string    `json:"customer_ref,omitempty"` // the customer decided about ("" with NewRef)
	Not    bool      `json:"not,omitempty"`
	New    bool      `json:"new_customer,omitempty"` // NewRef is to be set (from the command's Ref)
	NewRef string    `json:"-"`                      // create this customer for the caller
	Agent  string    `json:"agent,omitempty"`
	By     string    `json:"by,omitempty"`
	Now    time.Time `json:"-"`
}

// Desk is what agent desktops add to Calls: which agent a call was popped
// to, who the caller is, what a pop may carry and the context once the
// caller is verified (disclose.go). *Engine implements it.
type Desk interface {
	Popped(ctx context.Context, callID, agent string) error
	Identify(ctx context.Context, req IdentifyRequest) (*IdentifyResult, error)
	Withhold(ctx context.Context, res *StartResult) *Withheld
	Disclose(ctx context.Context, callID, agent string) (*CallContext, error)
}

var _ Desk = (*Engine)(nil)

// ParseIdentify decodes the body of an identify: {"customer_ref", "not",
// "new_customer", "agent"}; callID comes from the path (or the body, over
// NATS, when empty).
func ParseIdentify(b []byte, callID string) (IdentifyRequest, error) {
	f, err := decodeObject(b)
	if err != nil {
		return IdentifyRequest{}, err
	}
	var is issues
	r := IdentifyRequest{CallID: callID}
	if callID == "" {
		f.str(&is, "call_id", &r.CallID)
	}
	f.str(&is, "customer_ref", &r.CustomerRef)
	f.str(&is, "agent", &r.Agent)
	var not, nc *bool
	f.boolean(&is, "not", &not)
	f.boolean(&is, "new_customer", &nc)
	r.Not, r.NewCustomer = not != nil && *not, nc != nil && *nc
	for k := range f {
		switch k {
		case "call_id", "customer_ref", "agent", "not", "new_customer":
		default:
			is.add("is not a field of identify (call_id, customer_ref, not, new_customer, agent)", k)
		}
	}
	return r, is.err()
}

// Identify records who a call is from (or is not from), as an agent or an
// integration decided: it assigns the call, links the call's identifiers
// to the customer (or unlinks them, for "not"), saves the ends kept while
// the call was unassigned, and keeps the decision with the call record.
// Nothing is written when it fails: an unknown call or customer is
// CodeNotFound, a call already assigned to someone else CodeConflict (with
// both refs), an agent the call was not popped to CodeForbidden.
func (e *Engine) Identify(ctx context.Context, req IdentifyRequest) (*IdentifyResult, error) {
	var is issues
	checkText(&is, req.CallID, MaxIDLen, true, "call_id")
	checkText(&is, req.CustomerRef, MaxIDLen, !req.NewCustomer, "customer_ref")
	checkText(&is, req.Agent, MaxIDLen, false, "agent")
	if req.NewCustomer && req.CustomerRef != "" {
		is.add("must be empty with new_customer: the new customer gets a new ref", "customer_ref")
	}
	if req.NewCustomer && req.Not {
		is.add("cannot be combined with new_customer", "not")
	}
	if err := is.err(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, &Error{Code: CodeUnavailable, Message: "request cancelled"}
	}
	c := identifyCmd{CallID: req.CallID, Ref: req.CustomerRef, Not: req.Not, New: req.NewCustomer, Agent: req.Agent, By: req.By}
	if c.By == "" {
		c.By = "api"
	}
	var res *IdentifyResult
	if e.rep != nil {
		out, err := e.replicate(ctx, &command{Op: opIdentify, Identify: &c})
		if err != nil {
			return nil, err
		}
		res = out.(*IdentifyResult)
	} else {
		c.Now = e.now()
		if c.New {
			c.NewRef = e.opts.NewRef()
		}
		err := e.db.Update(func(t *store.Txn) error {
			var err error
			res, err = e.applyIdentify(t, c)
			return err
		})
		if err == nil {
			err = e.db.Sync() // a decision someone made must not be lost
		}
		if err != nil {
			return nil, storeErr(err)
		}
	}
	e.log.Info("caller identified", "call_id", c.CallID, "decision", res.Decision, "customer_ref", res.CustomerRef, "by", c.By, "agent", c.Agent)
	if res.CustomerRef != "" { // access log (issue 15): who said the call is theirs
		a := Access{CustomerRef: res.CustomerRef, Kind: AccessIdentify, CallID: c.CallID, Time: res.DecidedAt}
		if c.Agent != "" {
			a.Actor = c.Agent
		}
		e.RecordAccess(ctx, a)
	}
	return res, nil
}

// applyIdentify applies one decision. It reads the time and any new ref
// from the command only.
func (e *Engine) applyIdentify(t *store.Txn, c identifyCmd) (*IdentifyResult, error) {
	call, found, err := t.Call(c.CallID)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, notFound("no call " + quoteID(c.CallID))
	}
	ci := callIdentityOf(call)
	if c.Agent != "" && !slices.Contains(ci.PoppedTo, c.Agent) {
		return nil, forbidden("call " + quoteID(c.CallID) + " was not popped to agent " + quoteID(c.Agent) + "; only an agent it rang may say who the caller is")
	}
	var cust store.Customer
	if c.NewRef != "" {
		cust = store.Customer{Ref: c.NewRef, CreatedAt: c.Now, UpdatedAt: c.Now}
	} else {
		var ok bool
		if cust, ok, err = t.Customer(c.Ref); err != nil {
			return nil, err
		} else if !ok {
			return nil, notFound("no customer " + quoteID(c.Ref))
		}
	}
	d := store.Decision{At: c.Now, By: c.By, Agent: c.Agent, Ref: cust.Ref, Not: c.Not, New: c.NewRef != ""}
	res := &IdentifyResult{CallID: call.ID, DecidedBy: c.By, Agent: c.Agent, DecidedAt: TS(c.Now),
		Linked: []IdentifierView{}, Unlinked: []IdentifierView{}, Candidates: []string{}}
	if c.Not {
		if call.CustomerRef == cust.Ref && call.Ended {
			return nil, &Error{Code: CodeConflict, Message: "call " + quoteID(call.ID) + " has ended and was saved on customer " +
				quoteID(cust.Ref) + "; unlink a wrong identifier with DELETE /v1/customers/{ref}/identifiers/{kind}/{value}, or merge",
				Refs: &RefConflict{Assigned: cust.Ref, Requested: cust.Ref}}
		}
		res.Decision = DecisionNot
		// The evidence that pointed at them is unlinked from them, except
		// identifiers others hold too: that this call on a household
		// line is not Jane says nothing about whether Jane lives there.
		for _, id := range call.Identifiers {
			i := slices.IndexFunc(cust.Identifiers, func(o store.Identifier) bool { return o.Kind == id.Kind && o.Value == id.Value })
			if i < 0 {
				continue
			}
			if refs, err := t.Refs(id.Kind, id.Value); err != nil {
				return nil, err
			} else if len(refs) > 1 {
				continue
			}
			was := cust.Identifiers[i]
			d.Unlinked = append(d.Unlinked, was)
			if at := seenAt(cust, was); !at.IsZero() {
				d.Seen = append(d.Seen, store.Seen{Kind: was.Kind, Value: was.Value, At: at})
			}
			cust.Identifiers = slices.Delete(cust.Identifiers, i, i+1)
			cust.Seen = slices.DeleteFunc(cust.Seen, func(s store.Seen) bool { return s.Kind == was.Kind && s.Value == was.Value })
			if err := t.RemoveRef(was.Kind, was.Value, cust.Ref); err != nil {
				return nil, err
			}
			res.Unlinked = append(res.Unlinked, IdentifierView{was.Kind, was.Value, TS(was.LinkedAt), was.Source})
		}
		if len(d.Unlinked) > 0 {
			cust.UpdatedAt = c.Now
			if err := t.PutCustomer(cust); err != nil {
				return nil, err
			}
		}
		if call.CustomerRef == cust.Ref {
			if err := t.UnlinkCall(cust.Ref, call.ID); err != nil {
				return nil, err
			}
			call.CustomerRef = ""
			if len(ci.Candidates) == 0 { // a reused call: the others the start found
				var start Identity
				if json.Unmarshal(call.StartIdentity, &start) == nil {
					for _, o := range start.Candidates {
						ci.Candidates = append(ci.Candidates, o.CustomerRef)
					}
				}
			}
		}
		ci.Candidates = slices.DeleteFunc(ci.Candidates, func(r string) bool { return r == cust.Ref })
	} else {
		if call.CustomerRef != "" && call.CustomerRef != cust.Ref {
			return nil, &Error{Code: CodeConflict,
				Message: "call " + quoteID(call.ID) + " is already assigned to customer " + quoteID(call.CustomerRef) +
					", not " + quoteID(cust.Ref) + "; say first that it is not " + quoteID(call.CustomerRef) + " (\"not\": true)",
				Refs: &RefConflict{Assigned: call.CustomerRef, Requested: cust.Ref}}
		}
		res.Decision = DecisionAssigned
		if d.New {
			res.Decision = DecisionNewCustomer
		}
		// An earlier "not" of this customer on this call is undone first,
		// with the identifiers as they were.
		for _, old := range ci.Decisions {
			if !old.Not || old.Ref != cust.Ref {
				continue
			}
			for _, id := range old.Unlinked {
				if e.holds(cust, id) {
					continue
				}
				if held, err := t.AddRefUnder(id.Kind, id.Value, cust.Ref, e.opts.Model.SharedCap); err != nil {
					return nil, err
				} else if held {
					cust.Identifiers = append(cust.Identifiers, id)
					for _, s := range old.Seen {
						if s.Kind == id.Kind && s.Value == id.Value {
							cust.Seen = append(cust.Seen, s)
						}
					}
					res.Linked = append(res.Linked, IdentifierView{id.Kind, id.Value, TS(id.LinkedAt), id.Source})
				}
			}
		}
		// The links that held are strengthened (seen now), the call's
		// other identifiers linked.
		before := len(cust.Identifiers)
		if err := e.link(t, &cust, call.Identifiers, c.Now, "identify"); err != nil {
			return nil, err
		}
		for _, id := range cust.Identifiers[before:] {
			res.Linked = append(res.Linked, IdentifierView{id.Kind, id.Value, TS(id.LinkedAt), id.Source})
		}
		cust.UpdatedAt = c.Now
		if err := t.PutCustomer(cust); err != nil {
			return nil, err
		}
		if call.CustomerRef == "" {
			call.Identity = ci
			saved, err := e.settle(t, call, cust.Ref, c.Now)
			if err != nil {
				return nil, err
			}
			res.Saved = saved
			// settle rewrote the call and the customer.
			if call, _, err = t.Call(call.ID); err != nil {
				return nil, err
			}
			ci = callIdentityOf(call)
			if cust, _, err = t.Customer(cust.Ref); err != nil {
				return nil, err
			}
		}
	}
	if n := len(ci.Decisions); n == 0 || !sameDecision(ci.Decisions[n-1], d) || len(d.Unlinked) > 0 || len(res.Linked) > 0 {
		ci.Decisions = append(ci.Decisions, d)
		if n := len(ci.Decisions); n > store.MaxDecisions {
			ci.Decisions = slices.Clone(ci.Decisions[n-store.MaxDecisions:])
		}
	}
	call.Identity = ci
	if err := t.PutCall(call); err != nil {
		return nil, err
	}
	res.CustomerRef = call.CustomerRef
	if call.CustomerRef == "" {
		res.Candidates = append(res.Candidates, ci.Candidates...)
	} else {
		cc, err := e.readContext(t, cust, c.Now)
		if err != nil {
			return nil, err
		}
		res.Context = &cc
	}
	return res, nil
}

// ruledOut: an agent said the call is not from ref (and did not take it
// back since).
func ruledOut(ci *store.CallIdentity, ref string) bool {
	out := false
	for _, d := range ci.Decisions {
		if d.Ref == ref {
			out = d.Not
		}
	}
	return out
}

func sameDecision(a, b store.Decision) bool {
	return a.By == b.By && a.Agent == b.Agent && a.Ref == b.Ref && a.Not == b.Not && a.New == b.New
}

func (e *Engine) holds(c store.Customer, id store.Identifier) bool {
	return slices.ContainsFunc(c.Identifiers, func(o store.Identifier) bool { return o.Kind == id.Kind && o.Value == id.Value })
}

// popCmd records that a call was popped to an agent.
type popCmd struct {
	CallID string `json:"call_id"`
	Agent  string `json:"agent"`
}

// Popped records that call callID was popped to agent, so that agent may
// later say who the caller is. The screen-pop service calls it before it
// publishes the pop. An unknown call is CodeNotFound (the start failed:
// there is nothing to identify).
func (e *Engine) Popped(ctx context.Context, callID, agent string) error {
	var is issues
	checkText(&is, callID, MaxIDLen, true, "call_id")
	checkText(&is, agent, MaxIDLen, true, "agent")
	if err := is.err(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return &Error{Code: CodeUnavailable, Message: "request cancelled"}
	}
	if e.rep != nil {
		_, err := e.replicate(ctx, &command{Op: opPop, Pop: &popCmd{callID, agent}})
		return err
	}
	return storeErr(e.db.Update(func(t *store.Txn) error { return e.applyPop(t, popCmd{callID, agent}) }))
}

func (e *Engine) applyPop(t *store.Txn, c popCmd) error {
	call, found, err := t.Call(c.CallID)
	if err != nil {
		return err
	}
	if !found {
		return notFound("no call " + quoteID(c.CallID))
	}
	ci := callIdentityOf(call)
	if slices.Contains(ci.PoppedTo, c.Agent) {
		return nil
	}
	ci.PoppedTo = append(ci.PoppedTo, c.Agent)
	if n := len(ci.PoppedTo); n > store.MaxPoppedTo {
		ci.PoppedTo = slices.Clone(ci.PoppedTo[n-store.MaxPoppedTo:])
	}
	call.Identity = ci
	return t.PutCall(call)
}
