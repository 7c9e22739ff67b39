package freeswitch

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sticky-cc/sticky/core"
)

// How calls are followed. A call is a tree of legs under its first leg (the
// root: a caller's inbound leg, or the A half of an originate); Sticky's
// call_id is "fs-<root Unique-ID>". Each call has its own queue and at most
// one goroutine working it, so one call's events are handled in the order
// FreeSWITCH sent them while other calls go on in parallel.

const (
	startTimeout = 10 * time.Second // a Start still running after this is given up
	endTimeout   = 10 * time.Second
	popTimeout   = 5 * time.Second
	cmdTimeout   = 2 * time.Second
	retireAfter  = time.Minute // late events of an ended call are ignored this long
)

type tracker struct {
	b     *Bridge
	mu    sync.Mutex
	legs  map[string]*call // every known leg → its call
	calls map[string]*call // active calls by root
	core  string           // FreeSWITCH's Core-UUID as last seen
}

func newTracker(b *Bridge) *tracker {
	return &tracker{b: b, legs: map[string]*call{}, calls: map[string]*call{}}
}

// dispatch routes one event to its call. It runs on the reading goroutine
// and never blocks on the call's work.
func (t *tracker) dispatch(le *legEvent) {
	t.mu.Lock()
	if le.core != "" {
		if t.core != "" && t.core != le.core {
			// FreeSWITCH restarted: the calls of the old core are gone
			// and their hang-ups will never come. Save what we know.
			for _, c := range t.calls {
				if c.core == t.core {
					c.enqueue(&legEvent{name: evFinish, at: le.at})
				}
			}
		}
		t.core = le.core
	}
	c := t.legs[le.uuid]
	if le.parent != "" {
		pc := t.legs[le.parent]
		switch {
		case pc == nil && c == nil:
			// The parent was never seen (it began before we attached):
			// the call is the parent's all the same.
			pc = t.newCall(le.parent, le.core)
			t.legs[le.parent] = pc
		case pc == nil:
			pc = c
		}
		if c != pc && c != nil && !le.inbound && c.root == le.uuid && len(t.legsOf(c)) == 1 {
			// An outbound leg first seen before it showed its parent
			// joins the parent's call; its own empty call (outbound legs
			// alone start nothing) is dropped.
			c.enqueue(&legEvent{name: evDrop, at: le.at})
			delete(t.calls, c.root)
			c = nil
		}
		if c == nil {
			c = pc
		}
	}
	if c == nil {
		c = t.newCall(le.uuid, le.core)
	}
	t.legs[le.uuid] = c
	c.enqueue(le)
	t.mu.Unlock()
}

func (t *tracker) legsOf(c *call) []string {
	var out []string
	for l, cc := range t.legs {
		if cc == c {
			out = append(out, l)
			if len(out) > 1 {
				break
			}
		}
	}
	return out
}

func (t *tracker) newCall(root, core string) *call {
	c := &call{t: t, b: t.b, id: "fs-" + root, root: root, core: core, legs: map[string]*leg{}}
	t.calls[root] = c
	return c
}

// retire forgets an ended call after a while; until then its late events
// land on the ended call and are ignored.
func (t *tracker) retire(c *call) {
	t.mu.Lock()
	delete(t.calls, c.root)
	t.mu.Unlock()
	time.AfterFunc(retireAfter, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		for l, cc := range t.legs {
			if cc == c {
				delete(t.legs, l)
			}
		}
	})
}

// active returns the calls not yet ended.
func (t *tracker) active() []*call {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*call, 0, len(t.calls))
	for _, c := range t.calls {
		out = append(out, c)
	}
	return out
}

// Synthetic events a call sends itself.
const (
	evFinish = "sticky:finish" // end now with what is known
	evDrop   = "sticky:drop"   // merged into another call
)

type leg struct {
	uuid    string
	inbound bool
	// varsDone closes when a variables attempt running off the call's
	// goroutine ends; varsSet says whether it (or a later one) succeeded.
	varsDone  chan struct{}
	varsSet   atomic.Bool
	continued bool
	popped    bool
	hungUp    bool
}

type call struct {
	t    *tracker
	b    *Bridge
	id   string
	root string
	core string

	mu      sync.Mutex
	queue   []*legEvent
	running bool

	// Owned by the goroutine working the queue.
	legs           map[string]*leg
	ani            string
	aniFromInbound bool
	dnis           string
	dnisInbound    bool
	vars           map[string]string
	started        bool
	resDone        chan struct{}
	res            *core.StartResult
	resErr         error
	rootDuration   time.Duration
	rootHungUp     bool
	graceArmed     bool
	internal       bool // the caller is an extension (counted once)
	errCounted     atomic.Bool
	lastAt         atomic.Int64 // unix ns of the last FreeSWITCH event
	ended          bool
}

// lastEvent is when the call last heard from FreeSWITCH.
func (c *call) lastEvent() time.Time { return time.Unix(0, c.lastAt.Load()) }

func (c *call) enqueue(le *legEvent) {
	if le.name != evFinish && le.name != evDrop {
		c.lastAt.Store(c.b.now().UnixNano())
	}
	c.mu.Lock()
	c.queue = append(c.queue, le)
	if c.running {
		c.mu.Unlock()
		return
	}
	c.running = true
	c.mu.Unlock()
	if !c.b.spawn(c.work) {
		c.mu.Lock()
		c.running = false
		q := c.queue
		c.queue = nil
		c.mu.Unlock()
		for _, le := range q {
			le.finishOutbound(false)
		}
	}
}

func (c *call) work() {
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.running = false
			c.mu.Unlock()
			return
		}
		le := c.queue[0]
		c.queue[0] = nil
		c.queue = c.queue[1:]
		c.mu.Unlock()
		c.handle(le)
	}
}

func (c *call) log() *slog.Logger { return c.b.log.With("call_id", c.id) }

func (c *call) handle(le *legEvent) {
	continued := false
	defer func() { le.finishOutbound(continued) }()
	if c.ended {
		return
	}
	switch le.name {
	case evDrop:
		c.ended = true
		return
	case evFinish:
		c.end("FreeSWITCH restarted or the call's legs never reported their hang-up")
		return
	}
	l := c.legs[le.uuid]
	if l == nil {
		l = &leg{uuid: le.uuid, inbound: le.inbound}
		c.legs[le.uuid] = l
	}
	c.learn(le)
	switch le.name {
	case "CHANNEL_CREATE", "CHANNEL_PARK":
		if l.inbound {
			continued = c.resolveInbound(l, le)
		}
	case "CHANNEL_PROGRESS", "CHANNEL_PROGRESS_MEDIA":
		if !l.inbound && !l.popped {
			c.pop(l, le)
		}
	case "CHANNEL_HANGUP_COMPLETE":
		if l.hungUp {
			return
		}
		l.hungUp = true
		if le.uuid == c.root {
			c.rootHungUp = true
			c.rootDuration = le.duration
		}
		c.maybeEnd()
	}
}

// learn keeps what the event tells about the caller. The caller's number is
// taken once, from the first inbound leg (or, until one shows up, from the
// first leg seen), and never changes afterwards: FreeSWITCH rewrites the
// caller id of an A-leg after the B-leg answers (CALL_UPDATE), which says
// nothing about who is calling.
func (c *call) learn(le *legEvent) {
	if !c.aniFromInbound {
		var n string
		if le.name == "CHANNEL_CREATE" && usableNumber(le.cidNumber) {
			n = le.cidNumber
		} else {
			for _, s := range []string{le.origCID, le.cidNumber, le.ani} {
				if usableNumber(s) {
					n = s
					break
				}
			}
		}
		if n != "" && (c.ani == "" || le.inbound) {
			c.ani = n
			c.aniFromInbound = le.inbound
		}
	}
	if !c.dnisInbound && le.dest != "" && (c.dnis == "" || le.inbound) {
		c.dnis = le.dest
		c.dnisInbound = le.inbound
	}
	for k, v := range le.vars {
		if c.vars == nil {
			c.vars = map[string]string{}
		}
		c.vars[k] = v
	}
}

func (c *call) externalIDs() map[string]string {
	var ext map[string]string
	for kind, v := range map[string]string{
		"email":          c.vars["sticky_email"],
		"customer_id":    c.vars["sticky_customer_id"],
		"account_number": c.vars["sticky_account_number"],
	} {
		if v = strings.TrimSpace(v); v != "" {
			if ext == nil {
				ext = map[string]string{}
			}
			ext[kind] = v
		}
	}
	return ext
}

// attestation is the caller id's STIR/SHAKEN attestation, if the
// dialplan or FreeSWITCH said.
func (c *call) attestation() string {
	verstat := c.vars["sticky_verstat"]
	if verstat == "" {
		verstat = c.vars["sip_verstat"]
	}
	return core.Attestation(c.vars["sticky_attestation"], verstat)
}

// startResolve begins the one Start of this call, if there is anything to
// resolve from. It does not wait.
func (c *call) startResolve() bool {
	if c.started {
		return true
	}
	h := core.Hints{ANI: core.CallerANI(c.ani), DNIS: c.dnis, ExternalIDs: c.externalIDs(), Attestation: c.attestation()}
	if h.ANI == "" && len(h.ExternalIDs) == 0 {
		if core.IsExtension(c.ani) && !c.internal {
			c.internal = true
			c.b.count("internal_call")
			c.log().Debug("the caller is an extension (an internal call); not resolved")
		}
		return false
	}
	c.started = true
	done := make(chan struct{})
	c.resDone = done
	req := core.StartRequest{CallID: c.id, Hints: h, Channel: "phone"}
	if !c.b.spawn(func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(c.b.runCtx(), startTimeout)
		defer cancel()
		res, err := c.b.calls.Start(ctx, req)
		c.res, c.resErr = res, err
	}) {
		c.resErr = errors.New("bridge stopping")
		close(done)
	}
	return true
}

// awaitResult waits for the Start (done) until deadline; false on timeout.
// It may run off the call's goroutine: it only reads what the Start wrote
// before closing done.
func (c *call) awaitResult(done chan struct{}, deadline time.Time) bool {
	if done == nil {
		return false
	}
	select {
	case <-done:
		return true
	default:
	}
	d := time.Until(deadline)
	if d <= 0 {
		return false
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-done:
		return true
	case <-tm.C:
		return false
	case <-c.b.runCtx().Done():
		return false
	}
}

// result is the Start's result once done closes, or nil if it failed or
// did not finish by deadline (counted once per call).
func (c *call) result(done chan struct{}, deadline time.Time, why string) *core.StartResult {
	if done == nil {
		return nil
	}
	if !c.awaitResult(done, deadline) {
		c.b.count("resolve_timeout")
		c.log().Warn("caller not resolved within budget; going on without", "while", why, "budget", c.b.opts.Budget)
		return nil
	}
	if c.resErr != nil {
		if c.errCounted.CompareAndSwap(false, true) {
			c.b.count("resolve_error")
			c.log().Warn("resolving the caller failed", "err", c.resErr)
		}
		return nil
	}
	return c.res
}

// resolveInbound gives an inbound leg its sticky_* variables and, when it
// is parked with sticky_continue set, sends it on. It reports whether the
// call was sent on.
func (c *call) resolveInbound(l *leg, le *legEvent) (continued bool) {
	deadline := le.recv.Add(c.b.opts.Budget)
	if !c.startResolve() {
		return false
	}
	if le.name == "CHANNEL_CREATE" {
		// Nothing waits on a new leg: set its variables off the call's
		// goroutine, so this call's next events (its agent ringing) are
		// not held up by the round trip.
		if l.varsDone == nil {
			done, vdone := c.resDone, make(chan struct{})
			l.varsDone = vdone
			c.b.spawn(func() {
				defer close(vdone)
				if res := c.result(done, deadline, le.name); res != nil {
					l.varsSet.Store(c.setVars(le, res))
				}
			})
		}
		return false
	}
	// Parked: the call waits for its variables (at most the budget).
	if l.varsDone != nil {
		c.awaitResult(l.varsDone, deadline)
	}
	if !l.varsSet.Load() {
		if res := c.result(c.resDone, deadline, le.name); res != nil {
			l.varsSet.Store(c.setVars(le, res))
		}
	}
	if !l.continued {
		if dest := cleanArg(c.vars["sticky_continue"]); dest != "" {
			l.continued = true
			ctx, cancel := context.WithTimeout(c.b.runCtx(), cmdTimeout)
			defer cancel()
			if _, err := c.b.api(ctx, le.src, "uuid_transfer", le.uuid+" "+dest); err != nil {
				c.b.count("continue_error")
				c.log().Warn("could not send the parked call on", "err", err)
				return false
			}
			return true
		}
	}
	return false
}

func (c *call) setVars(le *legEvent, res *core.StartResult) bool {
	pairs := []string{
		"sticky_customer_ref=" + cleanValue(res.CustomerRef),
		"sticky_confidence=" + strconv.FormatFloat(res.Identity.Confidence, 'f', 2, 64),
		"sticky_level=" + cleanValue(res.Identity.Level),
		"sticky_recommendation=" + cleanValue(res.Identity.Recommendation),
	}
	intent, attempts := "", 0
	if len(res.OpenIntents) > 0 {
		intent, attempts = res.OpenIntents[0].Intent, res.OpenIntents[0].AttemptCount
	}
	if intent = cleanValue(intent); intent != "" {
		pairs = append(pairs, "sticky_open_intent="+intent)
	}
	pairs = append(pairs, "sticky_attempts="+strconv.Itoa(attempts))
	ctx, cancel := context.WithTimeout(c.b.runCtx(), cmdTimeout)
	defer cancel()
	if _, err := c.b.api(ctx, le.src, "uuid_setvar_multi", le.uuid+" "+strings.Join(pairs, ";")); err != nil {
		c.b.count("setvar_error")
		c.log().Warn("setting the sticky_* variables failed", "err", err)
		return false
	}
	return true
}

// cleanValue makes a value safe inside "uuid_setvar_multi u k=v;k=v": no
// separators, no line breaks (a blank line would end the command and start
// another), no control characters.
func cleanValue(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == ';' || r == '=' {
			return -1
		}
		return r
	}, s)
	if len(s) > 256 {
		s = s[:256]
	}
	return strings.TrimSpace(s)
}

// cleanArg is cleanValue for an api argument (spaces kept, '=' kept).
func cleanArg(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}

func (c *call) pop(l *leg, le *legEvent) {
	agent := ""
	for _, ep := range le.endpoints() {
		if a, ok := c.b.agents.Agent(ep); ok {
			agent = a
			break
		}
	}
	if agent == "" {
		return // not a leg that rings an agent we know
	}
	l.popped = true
	c.startResolve()
	if c.b.popper == nil {
		return
	}
	p := core.Pop{
		CallID: c.id, PBX: "freeswitch", PBXCallID: le.uuid,
		ANI: c.ani, DNIS: c.dnis, Agent: agent, RangAt: le.at.UTC(),
	}
	// The pop goes on its own goroutine: it waits only for the caller's
	// context, not for this call's other work (variables, commands).
	done, deadline := c.resDone, le.recv.Add(c.b.opts.Budget)
	c.b.spawn(func() {
		p.Context = c.result(done, deadline, le.name)
		ctx, cancel := context.WithTimeout(c.b.runCtx(), popTimeout)
		defer cancel()
		if err := c.b.popper.Pop(ctx, p); err != nil {
			c.b.count("pop_error")
			c.log().Warn("screen-pop failed", "agent", agent, "err", err)
		}
	})
}

// maybeEnd ends the call once its root leg and every other leg seen have
// hung up; if some leg never reports, the call ends after a grace period.
func (c *call) maybeEnd() {
	if !c.rootHungUp {
		return
	}
	for _, l := range c.legs {
		if !l.hungUp {
			if !c.graceArmed {
				c.graceArmed = true
				c.b.afterFunc(c.b.opts.EndGrace, func() {
					c.enqueue(&legEvent{name: evFinish, at: c.b.now()})
				})
			}
			return
		}
	}
	c.end("")
}

func (c *call) end(why string) {
	c.ended = true
	defer c.t.retire(c)
	req := core.EndRequest{CallID: c.id, Channel: "phone", Merge: true}
	// A started call's customer is the engine's to know: an agent may have
	// said who the caller is since (or who it is not), so the end names
	// nobody and the engine takes the call's customer.
	resolved := c.awaitResult(c.resDone, time.Now().Add(startTimeout)) && c.res != nil
	if h := (core.Hints{ANI: core.CallerANI(c.ani), DNIS: c.dnis, ExternalIDs: c.externalIDs()}); h.ANI != "" || h.DNIS != "" || len(h.ExternalIDs) > 0 {
		req.Hints = &h
	}
	if !resolved && (req.Hints == nil || req.Hints.ANI == "" && len(req.Hints.ExternalIDs) == 0) {
		c.b.count("end_skipped")
		c.log().Info("call ended with nothing that identifies the caller; not saved")
		return
	}
	if in := cleanArg(c.vars["sticky_intent"]); in != "" {
		req.Intent = in
		switch st := strings.ToLower(cleanArg(c.vars["sticky_intent_status"])); st {
		case "open", "resolved", "abandoned":
			req.IntentStatus = st
		}
	}
	if s := c.vars["sticky_summary"]; s != "" {
		req.Variables = map[string]string{"summary": s}
	}
	req.EndedAt = c.b.now().UTC()
	if c.rootDuration > 0 {
		req.StartedAt = req.EndedAt.Add(-c.rootDuration)
	}
	if why != "" {
		c.log().Info("ending call", "why", why)
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(c.b.runCtx()), endTimeout)
		_, err = c.b.calls.End(ctx, req)
		cancel()
		var ce *core.Error
		if err == nil || errors.As(err, &ce) && ce.Code != core.CodeUnavailable && ce.Code != core.CodeInternal {
			break
		}
		if !c.b.sleep(time.Duration(attempt+1) * 200 * time.Millisecond) {
			break
		}
	}
	if err != nil {
		c.b.count("end_error")
		c.log().Error("saving the phone interaction failed", "err", err, "ani", core.PII(c.ani))
	}
}

func (le *legEvent) finishOutbound(continued bool) {
	if le.parked != nil {
		le.parked(continued)
		le.parked = nil
	}
}
