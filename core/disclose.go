package core

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sticky-cc/sticky/core/store"
)

// Verification before disclosure (issue 15): a pop whose caller the engine
// is not sure enough of carries who it may be and why, not their history;
// the agent verifies the caller, says who it is (Identify), and only then
// does the desktop fetch the context (Disclose), which only the agent the
// call was popped to may.

// Disclosure levels (Options.DiscloseLevel): the lowest recommendation
// whose pop carries the full context. DiscloseAll discloses every pop (no
// verification), DiscloseNever none (every caller is verified).
const (
	DiscloseAll     = "all"
	DiscloseIgnore  = RecommendIgnore // the lowest recommendation: the same as all
	DiscloseConfirm = RecommendConfirm
	DiscloseReuse   = RecommendReuse // the default
	DiscloseNever   = "never"
)

// DefaultVerifyPrompt is what the desktop asks the agent to check before
// a withheld context is fetched.
const DefaultVerifyPrompt = "Verify: ask for the ZIP code or the last order number"

// DiscloseLevels are the values Options.DiscloseLevel takes, lowest first.
var DiscloseLevels = []string{DiscloseAll, DiscloseIgnore, DiscloseConfirm, DiscloseReuse, DiscloseNever}

// CheckDiscloseLevel says whether s is a disclosure level ("" is the
// default, reuse).
func CheckDiscloseLevel(s string) error {
	if s == "" || slices.Contains(DiscloseLevels, s) {
		return nil
	}
	return fmt.Errorf("must be one of %s (got %q)", strings.Join(DiscloseLevels, ", "), s)
}

var recommendationRank = map[string]int{RecommendIgnore: 0, RecommendConfirm: 1, RecommendReuse: 2}

// Discloses reports whether a pop with identity id carries the full
// context at the engine's disclosure level. An unknown recommendation is
// never enough.
func (e *Engine) Discloses(id Identity) bool {
	level := e.opts.DiscloseLevel
	switch level {
	case "":
		level = DiscloseReuse
	case DiscloseAll, DiscloseIgnore:
		return true
	case DiscloseNever:
		return false
	}
	want, ok := recommendationRank[level]
	got, known := recommendationRank[id.Recommendation]
	return ok && known && got >= want
}

// Withheld is the context of a pop below the disclosure level: the call,
// why the engine thinks it is who it is, and whom it may be (their display
// names, for the agent to ask about), never their history, intents or
// variables.
type Withheld struct {
	CallID    string    `json:"call_id"`
	CallStart Timestamp `json:"call_start"`
	// Identity is the start's, whose explanation names kinds of evidence
	// (a phone number matches), never their values.
	Identity Identity `json:"identity"`
	Withheld bool     `json:"withheld"` // always true
	// Candidates are whom the call may be from, best first: the customer
	// the call is assigned to (if any), then the other candidates.
	Candidates []NamedCandidate `json:"candidates"`
}

// NamedCandidate is a candidate with the name the agent asks about.
type NamedCandidate struct {
	CustomerRef string  `json:"customer_ref"`
	Name        string  `json:"name,omitempty"`
	Score       float64 `json:"score"`
}

// Withhold returns what a pop of res may carry when res is below the
// disclosure level, or nil when the pop may carry res whole. It only
// reads; when the store cannot say the candidates' names it leaves them
// out rather than disclose more.
func (e *Engine) Withhold(ctx context.Context, res *StartResult) *Withheld {
	if res == nil || e.Discloses(res.Identity) {
		return nil
	}
	w := &Withheld{CallID: res.CallID, CallStart: res.CallStart, Identity: res.Identity, Withheld: true, Candidates: []NamedCandidate{}}
	if res.CustomerRef != "" {
		w.Candidates = append(w.Candidates, NamedCandidate{CustomerRef: res.CustomerRef, Score: res.Identity.Confidence})
	}
	for _, c := range res.Identity.Candidates {
		if c.CustomerRef != res.CustomerRef {
			w.Candidates = append(w.Candidates, NamedCandidate{CustomerRef: c.CustomerRef, Score: c.Score})
		}
	}
	now := e.now()
	err := e.db.View(func(t *store.Txn) error {
		for i, c := range w.Candidates {
			cust, ok, err := t.Customer(c.CustomerRef)
			if err != nil {
				return err
			}
			if ok {
				w.Candidates[i].Name = DisplayName(func(name string) string { return liveValue(cust.Variables, name, now) })
			}
		}
		return nil
	})
	if err != nil {
		e.log.Warn("cannot read the candidates' names for a withheld pop; it shows none", "call_id", res.CallID, "err", err)
		for i := range w.Candidates {
			w.Candidates[i].Name = ""
		}
	}
	return w
}

// DisplayName is the name a customer goes by, from their variables (name,
// customer_name, full_name, display_name, or first_name + last_name); ""
// when none is known. value reads one variable.
func DisplayName(value func(name string) string) string {
	for _, name := range []string{"name", "customer_name", "full_name", "display_name"} {
		if s := strings.TrimSpace(value(name)); s != "" {
			return s
		}
	}
	return strings.TrimSpace(strings.TrimSpace(value("first_name")) + " " + strings.TrimSpace(value("last_name")))
}

func liveValue(vars []store.Variable, name string, now time.Time) string {
	i, found := findVariable(vars, name)
	if !found || !vars[i].ExpiresAt.After(now) {
		return ""
	}
	return vars[i].Value
}

// CallContext is a call's full context as a desktop fetches it once the
// caller is verified: the answer of the call's start, read now, with the
// customer's name.
type CallContext struct {
	StartResult
	Name string `json:"name,omitempty"`
}

// ParseDisclose decodes the body of a context fetch: {"call_id"}.
func ParseDisclose(b []byte) (string, error) {
	f, err := decodeObject(b)
	if err != nil {
		return "", err
	}
	var is issues
	var callID string
	f.str(&is, "call_id", &callID)
	if _, ok := f["call_id"]; !ok {
		is.add("is required", "call_id")
	}
	for k := range f {
		if k != "call_id" {
			is.add("is not a field of a context request (call_id)", k)
		}
	}
	return callID, is.err()
}

// Disclose returns the context of call callID to agent, for the desktop
// to show once the caller is verified. Only an agent the call was popped
// to may have it (CodeForbidden otherwise, and the attempt is in the
// access log of the customers it would have disclosed); and only once the
// caller is identified (CodeConflict), unless the call's pop was at or
// above the disclosure level and so carried the context already. A
// disclosure is in the access log too. It is a local read.
func (e *Engine) Disclose(ctx context.Context, callID, agent string) (*CallContext, error) {
	var is issues
	checkText(&is, callID, MaxIDLen, true, "call_id")
	checkText(&is, agent, MaxIDLen, true, "agent")
	if err := is.err(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, &Error{Code: CodeUnavailable, Message: "request cancelled"}
	}
	var out *CallContext
	var denied []string // whose context was asked for, when refused
	err := e.db.View(func(t *store.Txn) error {
		call, found, err := t.Call(callID)
		if err != nil {
			return err
		}
		if !found {
			return notFound("no call " + quoteID(callID))
		}
		ci := callIdentityOf(call)
		if !slices.Contains(ci.PoppedTo, agent) {
			denied = ci.Candidates // an unassigned call would have disclosed one of them
			if call.CustomerRef != "" {
				denied = []string{call.CustomerRef}
			}
			return forbidden("call " + quoteID(callID) + " was not popped to agent " + quoteID(agent) + "; only an agent it rang may see its context")
		}
		var start Identity
		if len(call.StartIdentity) > 0 {
			if err := json.Unmarshal(call.StartIdentity, &start); err != nil {
				return err
			}
		}
		if call.CustomerRef == "" || !e.Discloses(start) && !identifiedAs(ci, call.CustomerRef) {
			return conflict("the caller of call " + quoteID(callID) + " is not identified yet: verify them and say who it is (identify) first")
		}
		cust, ok, err := t.Customer(call.CustomerRef)
		if err != nil {
			return err
		}
		if !ok {
			return notFound("no customer " + quoteID(call.CustomerRef))
		}
		now := e.now()
		cc, err := e.readContext(t, cust, now)
		if err != nil {
			return err
		}
		out = &CallContext{StartResult: StartResult{CallID: call.ID, CustomerRef: cust.Ref, CallStart: TS(call.StartedAt), Identity: start,
			OpenIntents: cc.OpenIntents, Variables: cc.Variables, History: cc.History, Headline: cc.Headline}}
		out.Name = DisplayName(func(name string) string { return liveValue(cust.Variables, name, now) })
		return nil
	})
	if err != nil {
		if ErrorCode(err) == CodeForbidden {
			e.log.Warn("context refused: the call was not popped to this agent", "call_id", callID, "agent", agent)
			for _, ref := range denied {
				e.RecordAccess(ctx, Access{CustomerRef: ref, Kind: AccessContextDenied, Actor: agent, CallID: callID})
			}
		}
		return nil, storeErr(err)
	}
	e.RecordAccess(ctx, Access{CustomerRef: out.CustomerRef, Kind: AccessContext, Actor: agent, CallID: callID})
	return out, nil
}

// identifiedAs: the last decision about ref on the call says it is theirs.
func identifiedAs(ci *store.CallIdentity, ref string) bool {
	for i := len(ci.Decisions) - 1; i >= 0; i-- {
		if d := ci.Decisions[i]; d.Ref == ref {
			return !d.Not
		}
	}
	return false
}
