package asterisk

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/CyCoreSystems/ari/v5"
	"github.com/CyCoreSystems/ari/v5/client/native"

	"github.com/sticky-cc/sticky/core"
)

// Channel variables the bridge reads: hints an IVR set before the call
// reached Sticky, and the outcome the dialplan or agent recorded.
const (
	varEmail        = "STICKY_EMAIL"
	varCustomerID   = "STICKY_CUSTOMER_ID"
	varAccount      = "STICKY_ACCOUNT_NUMBER"
	varIntent       = "STICKY_INTENT"
	varIntentStatus = "STICKY_INTENT_STATUS"
	varSummary      = "STICKY_SUMMARY"
	// STIR/SHAKEN, set by the dialplan from Asterisk's STIR_SHAKEN()
	// function: Set(STICKY_ATTESTATION=${STIR_SHAKEN(0,attestation)}) and
	// Set(STICKY_VERIFY_RESULT=${STIR_SHAKEN(0,verify_result)}).
	varAttestation  = "STICKY_ATTESTATION"
	varVerifyResult = "STICKY_VERIFY_RESULT"
)

// hintVars map IVR variables to external id kinds.
var hintVars = []struct{ name, kind string }{
	{varEmail, "email"}, {varCustomerID, "customer_id"}, {varAccount, "account_number"},
}

var trackedVars = map[string]bool{
	varEmail: true, varCustomerID: true, varAccount: true,
	varIntent: true, varIntentStatus: true, varSummary: true,
	varAttestation: true, varVerifyResult: true,
}

type itemKind int

const (
	itemEvent     itemKind = iota
	itemConnected          // a connection is up; its events follow
	itemLive               // the channels Asterisk has after a reconnect
)

type item struct {
	kind itemKind
	ev   *event
	at   time.Time // when the event arrived
	gen  int
	live map[string]bool
	err  error
}

// call is one customer call, keyed by its inbound channel. The dispatcher
// owns every field except the atomics and those written before resolved
// is closed.
type call struct {
	id        string // Sticky's call_id: ast-<inbound channel id>
	chanID    string
	ids       []string // other channel ids indexed to this call
	aliases   []string // names of Local ;2 halves that act for it
	gen       int      // connection generation it was created in
	created   time.Time
	startedAt time.Time
	ani       string
	dnis      string
	queue     string
	ext       map[string]string // external ids from IVR variables
	vars      map[string]string // STICKY_* seen in ChannelVarset
	popped    map[string]bool   // agents popped
	ended     bool

	resolving bool
	resolved  chan struct{} // closed once res/rerr are set
	res       *core.StartResult
	rerr      error
	// waiting are pops for agents that rang before the start finished;
	// the resolving goroutine sends them, saving a goroutine and a wake-up
	// on the way to the agent.
	mu      sync.Mutex
	done    bool // res/rerr set (under mu)
	waiting []core.Pop

	continueSent atomic.Bool // the bridge asked Asterisk to continue it
	continued    atomic.Bool // and Asterisk accepted
}

type dispatcher struct {
	b        *Bridge
	byID     map[string]*call
	byName   map[string]*call // Local/x@y-0000001;2 of a dialled Local;1
	live     map[*call]struct{}
	gen      int
	internal chan item
	done     chan struct{}
}

func newDispatcher(b *Bridge) *dispatcher {
	return &dispatcher{b: b, byID: map[string]*call{}, byName: map[string]*call{},
		live: map[*call]struct{}{}, internal: make(chan item, 16), done: make(chan struct{})}
}

// run handles events in arrival order. It never does I/O: anything slow
// runs in per-call goroutines, so a slow core cannot stall the websocket.
func (d *dispatcher) run(queue <-chan item) {
	defer close(d.done)
	sweep := time.NewTicker(time.Minute)
	defer sweep.Stop()
	for {
		select {
		case it, ok := <-queue:
			if !ok {
				return
			}
			d.handle(it)
		case it := <-d.internal:
			d.handle(it)
		case now := <-sweep.C:
			d.sweep(now)
		}
	}
}

// send hands the result of background work back to the dispatcher.
func (d *dispatcher) send(it item) {
	select {
	case d.internal <- it:
	case <-d.done:
	}
}

func (d *dispatcher) handle(it item) {
	switch it.kind {
	case itemConnected:
		d.connected()
		return
	case itemLive:
		d.reconcile(it)
		return
	}
	ev := it.ev
	switch ev.Type {
	case "StasisStart":
		d.stasisStart(ev, it.at)
	case "StasisEnd":
		c := d.byID[ev.Channel.ID]
		// Leaving Stasis because the bridge continued the call is not a
		// hang-up; ChannelDestroyed will say when it ends.
		if c != nil && c.chanID == ev.Channel.ID && !c.continueSent.Load() {
			d.end(c, ev.Channel, ev.Timestamp, it.at)
		}
	case "Dial":
		d.dial(ev, it.at)
	case "ChannelVarset":
		if c := d.lookup(ev.Channel); c != nil && trackedVars[ev.Variable] {
			c.vars[ev.Variable] = ev.Value
		}
	case "ChannelDestroyed":
		id := ev.Channel.ID
		c := d.byID[id]
		delete(d.byID, id)
		if c != nil && c.chanID == id {
			d.end(c, ev.Channel, ev.Timestamp, it.at)
		}
	}
}

func (d *dispatcher) lookup(ch *channel) *call {
	if c := d.byID[ch.ID]; c != nil {
		return c
	}
	if c := d.byName[ch.Name]; c != nil {
		d.byID[ch.ID] = c
		c.ids = append(c.ids, ch.ID)
		return c
	}
	return nil
}

func (d *dispatcher) create(ch *channel, at time.Time) *call {
	c := &call{
		id: "ast-" + ch.ID, chanID: ch.ID, gen: d.gen, created: at,
		startedAt: parseTime(ch.CreationTime), ani: ch.callerNumber(), dnis: ch.exten(),
		ext: map[string]string{}, vars: map[string]string{}, popped: map[string]bool{},
		resolved: make(chan struct{}),
	}
	if c.startedAt.IsZero() {
		c.startedAt = at.UTC()
	}
	d.byID[ch.ID] = c
	d.live[c] = struct{}{}
	return c
}

// absorb takes the IVR's variables from a channel snapshot (ari.conf
// channelvars); it says whether the snapshot had them.
func (c *call) absorb(ch *channel) bool {
	if ch.Vars == nil {
		return false
	}
	for _, h := range hintVars {
		if v := strings.TrimSpace(ch.Vars[h.name]); v != "" {
			c.ext[h.kind] = v
		}
	}
	for name := range trackedVars {
		if v, ok := ch.Vars[name]; ok && v != "" {
			c.vars[name] = v
		}
	}
	return true
}

func (d *dispatcher) stasisStart(ev *event, at time.Time) {
	b := d.b
	if ev.Application != "" && ev.Application != b.opts.App {
		return
	}
	ch := ev.Channel
	c := d.lookup(ch)
	if c == nil {
		c = d.create(ch, at)
	}
	if c.ended {
		return
	}
	if !b.stasis {
		b.log.Warn("a call entered Stasis although mode is observe; continuing it anyway", "call_id", c.id)
	}
	c.continueSent.Store(false)
	c.continued.Store(false)
	fetch := !c.absorb(ch)
	d.resolve(c, ch.ID, fetch, true)
	deadline := at.Add(b.opts.Budget)
	id := ch.ID
	b.goWork(func() { b.stasisWork(c, id, deadline) })
}

func (d *dispatcher) dial(ev *event, at time.Time) {
	caller := ev.Caller
	if caller == nil || caller.ID == "" {
		return // an originate: no customer on the other end
	}
	c := d.lookup(caller)
	if c == nil {
		c = d.create(caller, at)
	}
	if c.ended {
		return
	}
	if q := caller.queue(); q != "" && c.queue == "" {
		c.queue = q
	}
	peer := ev.Peer
	// The far half of a dialled Local channel runs the dialplan that dials
	// the agent's phone: its Dial events belong to this call.
	if strings.HasPrefix(peer.Name, "Local/") && strings.HasSuffix(peer.Name, ";1") {
		alias := strings.TrimSuffix(peer.Name, ";1") + ";2"
		if d.byName[alias] == nil {
			d.byName[alias] = c
			c.aliases = append(c.aliases, alias)
		}
	}
	if !c.resolving {
		fetch := !c.absorb(caller)
		d.resolve(c, caller.ID, fetch, false)
	}
	if ev.Dialstatus != "RINGING" {
		return
	}
	agent, ok := d.b.agents.Agent(peer.Name)
	if !ok {
		d.b.count("unmapped_agent")
		d.b.log.Debug("no agent rule matches the ringing endpoint", "call_id", c.id, "endpoint", peer.Name)
	}
	if c.popped[agent] {
		return
	}
	c.popped[agent] = true
	rang := parseTime(ev.Timestamp)
	if rang.IsZero() {
		rang = at.UTC()
	}
	p := core.Pop{CallID: c.id, PBX: "asterisk", PBXCallID: peer.ID, ANI: c.ani, DNIS: c.dnis,
		Agent: agent, Queue: c.queue, RangAt: rang}
	c.mu.Lock()
	if !c.done {
		c.waiting = append(c.waiting, p)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	d.b.goWork(func() { d.b.pop(c, p) })
}

// resolve starts the one Start of c; pops, the Stasis worker and the end
// wait on c.resolved.
func (d *dispatcher) resolve(c *call, chanID string, fetch, pop bool) {
	if c.resolving {
		return
	}
	c.resolving = true
	b := d.b
	req := core.StartRequest{CallID: c.id, Hints: core.Hints{ANI: core.CallerANI(c.ani), DNIS: c.dnis,
		Attestation: core.Attestation(c.vars[varAttestation], c.vars[varVerifyResult])}}
	if len(c.ext) > 0 {
		req.Hints.ExternalIDs = make(map[string]string, len(c.ext))
		for k, v := range c.ext {
			req.Hints.ExternalIDs[k] = v
		}
	}
	p := core.Pop{CallID: c.id, PBX: "asterisk", PBXCallID: chanID, ANI: c.ani, DNIS: c.dnis, RangAt: c.created.UTC()}
	b.goWork(func() {
		ctx, cancel := context.WithTimeout(b.work, b.opts.ResolveTimeout)
		defer cancel()
		if fetch {
			// No channelvars in the snapshot: ask for the IVR's hints.
			ext := b.fetchHints(ctx, chanID)
			if len(ext) > 0 && req.Hints.ExternalIDs == nil {
				req.Hints.ExternalIDs = ext
			}
		}
		var res *core.StartResult
		var err error
		if req.Hints.ANI == "" && len(req.Hints.ExternalIDs) == 0 {
			err = errNoHints
		} else {
			res, err = b.opts.Calls.Start(ctx, req)
		}
		c.res, c.rerr = res, err
		close(c.resolved)
		c.mu.Lock()
		c.done = true
		waiting := c.waiting
		c.waiting = nil
		c.mu.Unlock()
		for _, w := range waiting { // agents ringing meanwhile; see pop
			w.Context = res
			b.publish(w)
		}
		switch {
		case errors.Is(err, errNoHints) && core.IsExtension(c.ani):
			b.count("internal_call")
			b.log.Debug("the caller is an extension (an internal call); not resolved", "call_id", c.id)
		case errors.Is(err, errNoHints):
			b.log.Debug("call has no caller number or IVR hints; not resolved", "call_id", c.id)
		case err != nil:
			b.count("resolve_error")
			b.log.Warn("resolving caller failed", "call_id", c.id, "ani", core.PII(req.Hints.ANI), "err", err)
		default:
			b.log.Debug("caller resolved", "call_id", c.id, "ani", core.PII(req.Hints.ANI),
				"customer_ref", res.CustomerRef, "confidence", res.Identity.Confidence)
			if pop {
				p.Context = res
				b.publish(p)
			}
		}
	})
}

var errNoHints = errors.New("no caller number or IVR hints")

func (b *Bridge) fetchHints(ctx context.Context, chanID string) map[string]string {
	type kv struct{ kind, value string }
	out := make(chan kv, len(hintVars))
	key := ari.NewKey(ari.ChannelKey, chanID)
	for _, h := range hintVars {
		go func() {
			var v string
			err := b.call(ctx, func() (err error) {
				v, err = b.ari.Channel().GetVariable(key, h.name)
				return err
			})
			// Asterisk answers 404 for a variable that is not set.
			if err != nil && native.CodeFromError(err) != 404 {
				b.log.Debug("reading channel variable failed", "variable", h.name, "err", err)
			}
			out <- kv{h.kind, strings.TrimSpace(v)}
		}()
	}
	ext := map[string]string{}
	for range hintVars {
		if r := <-out; r.value != "" {
			ext[r.kind] = r.value
		}
	}
	return ext
}

// stasisWork tags a call in Stasis with what Sticky knows and continues it
// in the dialplan; past the budget it continues without the variables.
func (b *Bridge) stasisWork(c *call, chanID string, deadline time.Time) {
	key := ari.NewKey(ari.ChannelKey, chanID)
	subscribed := make(chan struct{})
	if b.observe {
		close(subscribed)
	} else {
		// Without subscribeAll the app stops hearing about the channel when
		// it leaves Stasis; subscribe to it to see the hang-up.
		b.goWork(func() {
			defer close(subscribed)
			err := b.call(b.work, func() error {
				return b.ari.Application().Subscribe(ari.NewKey(ari.ApplicationKey, b.opts.App), "channel:"+chanID)
			})
			if err != nil {
				b.log.Warn("subscribing to the call's channel failed; its hang-up may be missed", "call_id", c.id, "err", err)
			}
		})
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-c.resolved:
		if c.res != nil {
			b.setVars(c, key, c.res)
		}
	case <-t.C:
		b.count("resolve_timeout")
		b.log.Warn("resolving took longer than the budget; continuing without variables",
			"call_id", c.id, "budget", b.opts.Budget)
	}
	// Continue only once the subscription is in place (within the budget):
	// a caller who hangs up right after leaving Stasis would otherwise go
	// unheard, and the call would never end.
	if wait := time.Until(deadline); wait > 0 {
		st := time.NewTimer(wait)
		select {
		case <-subscribed:
		case <-st.C:
		}
		st.Stop()
	}
	b.continueCall(c, key)
}

func (b *Bridge) setVars(c *call, key *ari.Key, res *core.StartResult) {
	vars := [][2]string{
		{"STICKY_CUSTOMER_REF", res.CustomerRef},
		{"STICKY_CONFIDENCE", strconv.FormatFloat(res.Identity.Confidence, 'f', 2, 64)},
		{"STICKY_LEVEL", res.Identity.Level},
		{"STICKY_RECOMMENDATION", res.Identity.Recommendation},
	}
	// Without an open intent both stay unset, as dialplans test them with
	// ${STICKY_OPEN_INTENT} != "" and 0${STICKY_ATTEMPTS}.
	if len(res.OpenIntents) > 0 {
		vars = append(vars,
			[2]string{"STICKY_OPEN_INTENT", res.OpenIntents[0].Intent},
			[2]string{"STICKY_ATTEMPTS", strconv.Itoa(res.OpenIntents[0].AttemptCount)})
	}
	// One after the other, on one pooled connection: in parallel they cost
	// Asterisk six connections per call at hundreds of calls per second,
	// for a saving of a few round trips on a call already resolved.
	for _, v := range vars {
		err := b.call(b.work, func() error { return b.ari.Channel().SetVariable(key, v[0], v[1]) })
		if err != nil {
			b.count("setvar_error")
			b.log.Warn("setting STICKY_* variables failed", "call_id", c.id, "variable", v[0], "err", err)
			return
		}
	}
}

func (b *Bridge) continueCall(c *call, key *ari.Key) {
	c.continueSent.Store(true)
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		err = b.call(b.work, func() error { return b.ari.Channel().Continue(key, "", "", 0) })
		if err == nil {
			c.continued.Store(true)
			return
		}
		if code := native.CodeFromError(err); code == 404 || code == 409 {
			return // hung up already, or someone else moved it
		}
	}
	b.count("continue_error")
	b.log.Error("continuing the call in the dialplan failed; will retry after reconnecting", "call_id", c.id, "err", err)
}

// pop publishes an agent's pop once the caller is resolved, with the
// context, or without it when the caller could not be resolved (withheld,
// an extension, the engine failing): the agent's phone rings either way,
// and the desktop shows who rings (as the FreeSWITCH bridge does).
func (b *Bridge) pop(c *call, p core.Pop) {
	<-c.resolved
	p.Context = c.res
	b.publish(p)
}

func (b *Bridge) publish(p core.Pop) {
	ctx, cancel := context.WithTimeout(b.work, b.opts.ResolveTimeout)
	defer cancel()
	if err := b.opts.Popper.Pop(ctx, p); err != nil {
		b.count("pop_error")
		b.log.Warn("screen-pop failed", "call_id", p.CallID, "agent", p.Agent, "err", err)
	}
}

// end saves the interaction of c, which hung up at ts.
func (d *dispatcher) end(c *call, ch *channel, ts string, at time.Time) {
	if c.ended {
		return
	}
	d.forget(c)
	if ch != nil {
		c.absorb(ch)
	}
	ended := parseTime(ts)
	if ended.IsZero() {
		ended = at.UTC()
	}
	req := core.EndRequest{CallID: c.id, Channel: "phone", StartedAt: c.startedAt, EndedAt: ended, Merge: true}
	if req.StartedAt.After(ended) {
		req.StartedAt = ended
	}
	if in := strings.TrimSpace(c.vars[varIntent]); in != "" {
		req.Intent = in
		switch st := strings.ToLower(strings.TrimSpace(c.vars[varIntentStatus])); st {
		case "", core.StatusOpen, core.StatusResolved, core.StatusAbandoned:
			req.IntentStatus = st
		default:
			d.b.log.Warn("ignoring STICKY_INTENT_STATUS: must be open, resolved or abandoned", "call_id", c.id, "value", st)
		}
	}
	if s := c.vars[varSummary]; s != "" {
		req.Variables = map[string]string{"summary": s}
	}
	hints := core.Hints{ANI: core.CallerANI(c.ani), DNIS: c.dnis}
	if len(c.ext) > 0 {
		hints.ExternalIDs = make(map[string]string, len(c.ext))
		for k, v := range c.ext {
			hints.ExternalIDs[k] = v
		}
	}
	resolving := c.resolving
	b := d.b
	b.goWork(func() {
		if resolving {
			<-c.resolved
		}
		if c.res == nil {
			if hints.ANI == "" && len(hints.ExternalIDs) == 0 {
				return // nobody to save it for
			}
			// The start failed: the end resolves the caller itself.
			req.Hints = &hints
		}
		b.saveEnd(req)
	})
}

// saveEnd calls End, retrying while the store is unavailable.
func (b *Bridge) saveEnd(req core.EndRequest) {
	var err error
	for attempt, wait := 0, 200*time.Millisecond; attempt < 3; attempt, wait = attempt+1, wait*4 {
		if attempt > 0 {
			t := time.NewTimer(wait)
			<-t.C
		}
		ctx, cancel := context.WithTimeout(b.work, b.opts.ResolveTimeout)
		_, err = b.opts.Calls.End(ctx, req)
		cancel()
		if err == nil {
			return
		}
		if c := core.ErrorCode(err); c != core.CodeUnavailable && c != core.CodeInternal {
			break
		}
	}
	b.count("end_error")
	b.log.Error("saving the phone interaction failed", "call_id", req.CallID, "err", err)
}

// forget removes c from the indexes.
func (d *dispatcher) forget(c *call) {
	c.ended = true
	delete(d.live, c)
	if d.byID[c.chanID] == c {
		delete(d.byID, c.chanID)
	}
	for _, id := range c.ids {
		if d.byID[id] == c {
			delete(d.byID, id)
		}
	}
	for _, n := range c.aliases {
		if d.byName[n] == c {
			delete(d.byName, n)
		}
	}
}

// connected starts reconciling the calls known before this connection:
// their hang-ups may have happened while the bridge was away.
func (d *dispatcher) connected() {
	d.gen++
	gen, older := d.gen, false
	for c := range d.live {
		if c.gen < gen {
			older = true
			break
		}
	}
	if !older {
		return
	}
	b := d.b
	b.goWork(func() {
		var keys []*ari.Key
		err := b.call(b.work, func() (err error) {
			keys, err = b.ari.Channel().List(nil)
			return err
		})
		live := make(map[string]bool, len(keys))
		for _, k := range keys {
			live[k.ID] = true
		}
		d.send(item{kind: itemLive, gen: gen, live: live, err: err, at: time.Now()})
	})
}

func (d *dispatcher) reconcile(it item) {
	b := d.b
	if it.err != nil {
		b.count("reconcile_error")
		b.log.Warn("listing channels after reconnecting failed; calls that ended meanwhile are kept until they expire", "err", it.err)
		return
	}
	for c := range d.live {
		if c.gen >= it.gen {
			continue
		}
		if !it.live[c.chanID] {
			b.count("ended_while_disconnected")
			d.end(c, nil, "", it.at)
			continue
		}
		c.gen = it.gen
		if c.continueSent.Load() && !c.continued.Load() {
			key := ari.NewKey(ari.ChannelKey, c.chanID)
			b.goWork(func() { b.continueCall(c, key) })
		}
	}
}

// sweep forgets calls whose hang-up never came.
func (d *dispatcher) sweep(now time.Time) {
	for c := range d.live {
		if now.Sub(c.created) > d.b.opts.MaxCallAge {
			d.b.count("call_expired")
			d.forget(c)
		}
	}
}
