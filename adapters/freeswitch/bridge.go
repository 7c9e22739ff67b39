// Package freeswitch attaches Sticky to FreeSWITCH through the event socket:
// it resolves inbound callers into sticky_* channel variables, pops the agent
// whose phone rings, and saves the phone interaction at hang-up.
package freeswitch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/percipia/eslgo"
	"github.com/sticky-cc/sticky/adapters/agentmap"
	"github.com/sticky-cc/sticky/core"
)

// Options configures a Bridge. Zero values take the defaults.
type Options struct {
	// Addr is FreeSWITCH's event socket for inbound mode (the bridge
	// connects). Empty turns inbound mode off. New's callers usually pass
	// DefaultAddr.
	Addr     string
	Password string // event socket password (ClueCon)
	// ListenAddr is where FreeSWITCH's socket application connects in
	// outbound mode. Empty: off.
	ListenAddr string
	// Budget is the longest a new or parked call waits for its variables
	// (and a pop for its context); after it the call goes on without (300ms).
	Budget time.Duration
	// DialTimeout bounds connecting and authenticating, and each liveness
	// check (5s).
	DialTimeout time.Duration
	// Agents map a ringing leg's endpoint (user/1001@domain, its channel
	// name, or its destination number) to an agent id; nil uses
	// agentmap.DefaultRules.
	Agents []agentmap.Rule
	Calls  core.Calls  // required
	Popper core.Popper // nil: no screen-pops
	Logger *slog.Logger
	// Count, if set, is told about things worth a counter: "reconnect",
	// "resolve_timeout", "resolve_error", "malformed_event", "pop_error",
	// "end_error", "end_skipped", "setvar_error", "continue_error",
	// "hangup_lost" (found by the sweep), "internal_call" (the caller
	// number is an extension).
	Count func(event string)
	// BackoffMin and BackoffMax bound the wait between reconnects (500ms, 30s).
	BackoffMin, BackoffMax time.Duration
	// PingInterval: after this long without a frame from FreeSWITCH (it
	// sends a HEARTBEAT every 20s) the bridge checks the connection with
	// "api status" and reconnects if that fails (25s).
	PingInterval time.Duration
	// EndGrace: once the root leg has hung up, how long to wait for the
	// other legs' hang-ups (which may carry the wrap-up variables) before
	// saving anyway (2s).
	EndGrace time.Duration
	// SweepEvery: how often calls that have been quiet that long are
	// checked against FreeSWITCH (uuid_exists) and saved if their channel
	// is gone (5m). FreeSWITCH drops events when a socket's queue is full;
	// a lost hang-up would otherwise keep the call open, unsaved, until
	// the bridge reconnects.
	SweepEvery time.Duration
	// Now is the clock (time.Now).
	Now func() time.Time
}

// Defaults for Options.
const (
	DefaultAddr     = "127.0.0.1:8021"
	DefaultPassword = "ClueCon"
)

// Bridge is the FreeSWITCH attachment. Create it with New and run it with Run.
type Bridge struct {
	opts   Options
	log    *slog.Logger
	agents *agentmap.Map
	calls  core.Calls
	popper core.Popper
	track  *tracker

	mu         sync.Mutex
	ctx        context.Context
	stopping   bool
	ran        bool
	stopped    atomic.Bool // stopping, readable without mu
	wg         sync.WaitGroup
	inbound    *conn // current inbound connection, nil when away
	outConns   map[*conn]struct{}
	status     string
	up         bool
	listenUp   bool
	listenAddr string

	dials atomic.Int64
}

// New checks opts and returns a Bridge that is not running yet.
func New(opts Options) (*Bridge, error) {
	if opts.Calls == nil {
		return nil, errors.New("freeswitch: Options.Calls is required")
	}
	if opts.Password == "" {
		opts.Password = DefaultPassword
	}
	if opts.Budget <= 0 {
		opts.Budget = 300 * time.Millisecond
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 5 * time.Second
	}
	if opts.BackoffMin <= 0 {
		opts.BackoffMin = 500 * time.Millisecond
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = 30 * time.Second
	}
	if opts.BackoffMax < opts.BackoffMin {
		opts.BackoffMax = opts.BackoffMin
	}
	if opts.PingInterval <= 0 {
		opts.PingInterval = 25 * time.Second
	}
	if opts.EndGrace <= 0 {
		opts.EndGrace = 2 * time.Second
	}
	if opts.SweepEvery <= 0 {
		opts.SweepEvery = 5 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	for _, a := range []struct{ name, v string }{{"Addr", opts.Addr}, {"ListenAddr", opts.ListenAddr}} {
		if a.v == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.v); err != nil {
			return nil, fmt.Errorf("freeswitch: Options.%s %q is not host:port", a.name, a.v)
		}
	}
	if opts.Addr == "" && opts.ListenAddr == "" {
		return nil, errors.New("freeswitch: neither Addr (inbound mode) nor ListenAddr (outbound mode) is set")
	}
	m, err := agentmap.Compile(opts.Agents)
	if err != nil {
		return nil, fmt.Errorf("freeswitch: %w", err)
	}
	b := &Bridge{
		opts: opts, log: opts.Logger.With("pbx", "freeswitch"), agents: m,
		calls: opts.Calls, popper: opts.Popper, outConns: map[*conn]struct{}{},
		status: "not started", ctx: context.Background(),
	}
	b.track = newTracker(b)
	return b, nil
}

// Status says whether FreeSWITCH is attached, and how it is going.
func (b *Bridge) Status() (connected bool, detail string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.opts.Addr == "" {
		if b.listenUp {
			return true, "outbound mode: listening on " + b.opts.ListenAddr + " for FreeSWITCH's socket application"
		}
		return false, b.status
	}
	return b.up, b.status
}

// Run attaches to FreeSWITCH and keeps re-attaching until ctx ends; then it
// closes its connections, waits for its goroutines and returns nil.
func (b *Bridge) Run(ctx context.Context) error {
	b.mu.Lock()
	if b.ran {
		b.mu.Unlock()
		return errors.New("freeswitch: Run called twice")
	}
	b.ran = true
	b.ctx = ctx
	b.mu.Unlock()
	if b.opts.Addr != "" {
		b.spawn(func() { b.runInbound(ctx) })
	}
	if b.opts.ListenAddr != "" {
		b.spawn(func() { b.runOutbound(ctx) })
	}
	<-ctx.Done()
	b.mu.Lock()
	b.stopping = true
	b.stopped.Store(true)
	if b.inbound != nil {
		b.inbound.close(errors.New("bridge stopping"))
	}
	for c := range b.outConns {
		c.close(errors.New("bridge stopping"))
	}
	b.up = false
	b.status = "stopped"
	b.mu.Unlock()
	b.wg.Wait()
	return nil
}

// spawn runs f on a goroutine Run waits for; false once Run is done.
func (b *Bridge) spawn(f func()) bool {
	if b.stopped.Load() {
		// Run is tearing down; goroutines started now could outlive it.
		// (Every caller runs on a goroutine Run waits for, so the group's
		// count is not zero here and Add cannot race Wait.)
		return false
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		f()
	}()
	return true
}

// runCtx is Run's context; it is set before Run starts any goroutine and
// never changes after.
func (b *Bridge) runCtx() context.Context { return b.ctx }

func (b *Bridge) now() time.Time { return b.opts.Now() }

func (b *Bridge) count(name string) {
	if b.opts.Count != nil {
		b.opts.Count(name)
	}
}

// sleep waits d unless the bridge stops first.
func (b *Bridge) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-b.runCtx().Done():
		return false
	}
}

// afterFunc runs f after d on a goroutine Run waits for, unless Run ends
// first.
func (b *Bridge) afterFunc(d time.Duration, f func()) {
	b.spawn(func() {
		if b.sleep(d) {
			f()
		}
	})
}

func (b *Bridge) setStatus(up bool, detail string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopping {
		return
	}
	b.up, b.status = up, detail
}

// api sends an api command on the connection an event came from, or on the
// inbound connection if that one is gone.
func (b *Bridge) api(ctx context.Context, via *conn, cmd, args string) (string, error) {
	c := via
	if c != nil {
		select {
		case <-c.closed:
			c = nil
		default:
		}
	}
	if c == nil {
		b.mu.Lock()
		c = b.inbound
		b.mu.Unlock()
	}
	if c == nil {
		return "", errors.New("not connected to FreeSWITCH")
	}
	return c.api(ctx, cmd, args)
}

// onEvent turns a frame into a dispatched event.
func (b *Bridge) onEvent(src *conn) func(*eslgo.Event) {
	return func(e *eslgo.Event) {
		le, ok := decodeEvent(e, b.now())
		if !ok {
			b.count("malformed_event")
			b.log.Debug("ignoring a malformed event")
			return
		}
		if !handled[le.name] {
			return // HEARTBEAT, or an event nobody asked for
		}
		le.src = src
		b.track.dispatch(le)
	}
}

var handled = map[string]bool{
	"CHANNEL_CREATE": true, "CHANNEL_PARK": true, "CHANNEL_PROGRESS": true,
	"CHANNEL_PROGRESS_MEDIA": true, "CHANNEL_HANGUP_COMPLETE": true,
}

func (b *Bridge) runInbound(ctx context.Context) {
	backoff := b.opts.BackoffMin
	first := true
	var lastErr string
	for ctx.Err() == nil {
		if !first {
			b.count("reconnect")
		}
		first = false
		b.dials.Add(1)
		c, err := dialInbound(ctx, b.opts.Addr, b.opts.Password, b.opts.DialTimeout, subscribed)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			detail := fmt.Sprintf("cannot attach to FreeSWITCH at %s: %v; retrying", b.opts.Addr, err)
			b.setStatus(false, detail)
			if detail != lastErr {
				b.log.Warn("cannot attach to FreeSWITCH; retrying with backoff", "addr", b.opts.Addr, "err", err)
				lastErr = detail
			}
			if !b.sleep(jitter(backoff)) {
				return
			}
			backoff = min(backoff*2, b.opts.BackoffMax)
			continue
		}
		lastErr = ""
		backoff = b.opts.BackoffMin
		err = b.serveInbound(ctx, c)
		if ctx.Err() != nil {
			return
		}
		b.setStatus(false, fmt.Sprintf("lost FreeSWITCH at %s: %v; reconnecting", b.opts.Addr, err))
		b.log.Warn("lost the FreeSWITCH event socket; reconnecting", "addr", b.opts.Addr, "err", err)
		if !b.sleep(jitter(b.opts.BackoffMin)) {
			return
		}
	}
}

func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

// serveInbound runs one connection until it fails.
func (b *Bridge) serveInbound(ctx context.Context, c *conn) error {
	c.onEvent = b.onEvent(c)
	b.mu.Lock()
	if b.stopping {
		b.mu.Unlock()
		c.close(errors.New("bridge stopping"))
		return errors.New("bridge stopping")
	}
	b.inbound = c
	b.mu.Unlock()
	b.setStatus(true, "attached to FreeSWITCH at "+b.opts.Addr)
	b.log.Info("attached to FreeSWITCH", "addr", b.opts.Addr)
	defer func() {
		b.mu.Lock()
		if b.inbound == c {
			b.inbound = nil
		}
		b.mu.Unlock()
	}()
	done := make(chan error, 1)
	if !b.spawn(func() { done <- c.readLoop() }) {
		c.close(errors.New("bridge stopping"))
		return errors.New("bridge stopping")
	}
	b.spawn(func() { b.checkGone(ctx, c, 0) })
	tick := time.NewTicker(b.opts.PingInterval / 2)
	defer tick.Stop()
	sweep := time.NewTicker(b.opts.SweepEvery)
	defer sweep.Stop()
	var sweeping atomic.Bool
	for {
		select {
		case err := <-done:
			return err
		case <-ctx.Done():
			c.close(errors.New("bridge stopping"))
			return <-done
		case <-sweep.C:
			if sweeping.CompareAndSwap(false, true) {
				b.spawn(func() {
					defer sweeping.Store(false)
					b.checkGone(ctx, c, b.opts.SweepEvery)
				})
			}
		case <-tick.C:
			idle := time.Since(time.Unix(0, c.lastIn.Load()))
			if idle < b.opts.PingInterval {
				continue
			}
			pctx, cancel := context.WithTimeout(ctx, b.opts.DialTimeout)
			_, err := c.api(pctx, "status", "")
			cancel()
			if err != nil {
				c.close(fmt.Errorf("no answer to a liveness check after %v of silence: %w", idle.Round(time.Second), err))
			}
		}
	}
}

// checkGone saves the calls whose channel FreeSWITCH no longer has and
// that have had no event for at least quiet: after a reconnect (quiet 0)
// the calls that hung up while the bridge was away, and every SweepEvery
// the calls whose hang-up event was lost.
func (b *Bridge) checkGone(ctx context.Context, c *conn, quiet time.Duration) {
	now := b.now()
	for _, cl := range b.track.active() {
		if quiet > 0 && now.Sub(cl.lastEvent()) < quiet {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, cmdTimeout)
		out, err := c.api(cctx, "uuid_exists", cl.root)
		cancel()
		if err != nil {
			return
		}
		if len(out) >= 5 && out[:5] == "false" {
			if quiet > 0 {
				b.count("hangup_lost")
				b.log.Warn("a call's channel is gone but its hang-up never came; saving it with what is known", "call_id", cl.id, "quiet", now.Sub(cl.lastEvent()).Round(time.Second))
			}
			cl.enqueue(&legEvent{name: evFinish, at: b.now()})
		}
	}
}
