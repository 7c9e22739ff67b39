// Package asterisk attaches Sticky to Asterisk through ARI: calls handed to
// Stasis(<app>) are resolved, tagged with STICKY_* variables and continued;
// ringing agents are popped; hang-ups save the phone interaction.
package asterisk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/CyCoreSystems/ari/v5/client/native"

	"github.com/sticky-cc/sticky/adapters/agentmap"
	"github.com/sticky-cc/sticky/core"
)

// Modes of attachment.
const (
	ModeStasis  = "stasis"  // calls are handed to Stasis(<app>) by the dialplan
	ModeObserve = "observe" // watch every channel (subscribeAll), take none
	ModeBoth    = "both"
)

// Options configures a Bridge. Zero values take the defaults.
type Options struct {
	URL      string // ARI base URL (http://127.0.0.1:8088/ari)
	WSURL    string // events websocket; default derived from URL (ws://…/ari/events)
	User     string // ari.conf user; required
	Password string // required
	App      string // Stasis application name (sticky)
	Mode     string // stasis, observe or both (stasis)

	// Budget is the longest a call in Stasis waits for its variables
	// before it is continued without them (300ms).
	Budget time.Duration
	// ResolveTimeout bounds a start made for a call seen only by
	// observation, which no caller is waiting on (2s).
	ResolveTimeout time.Duration
	// RESTTimeout bounds every ARI REST request (2s).
	RESTTimeout time.Duration
	// DialTimeout bounds connecting the events websocket, handshake
	// included (5s).
	DialTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between connection
	// attempts, which doubles from min to max (500ms, 30s).
	MinBackoff, MaxBackoff time.Duration
	// MaxCallAge drops calls whose hang-up was never seen (12h).
	MaxCallAge time.Duration
	// QueueSize is how many decoded events may wait for the dispatcher
	// before the websocket reader waits (and says so) (8192).
	QueueSize int

	Agents []agentmap.Rule // endpoint → agent; nil: agentmap defaults
	Calls  core.Calls      // required
	Popper core.Popper     // required
	Logger *slog.Logger
	// Count, if set, is told about notable events, by short name:
	// connect_error (an attempt failed), reconnect (up again after being
	// up), malformed_event, backpressure (the dispatcher queue was full
	// and the reader waited), resolve_timeout (a Stasis call continued
	// without variables), resolve_error, setvar_error, continue_error,
	// pop_error, end_error, unmapped_agent (a ringing endpoint no rule
	// maps), ended_while_disconnected (a call found gone after a
	// reconnect), reconcile_error, call_expired (no hang-up within
	// MaxCallAge), internal_call (the caller number is an extension). It
	// must be fast and must not block.
	Count func(event string)
}

// Bridge is one attachment to one Asterisk.
type Bridge struct {
	opts    Options
	log     *slog.Logger
	agents  *agentmap.Map
	ari     *native.Client
	stasis  bool // Stasis calls are expected
	observe bool // subscribeAll
	wsURL   string

	mu     sync.Mutex
	up     bool
	detail string
	node   string

	running atomic.Bool
	everUp  atomic.Bool
	workers sync.WaitGroup // per-call work
	rest    sync.WaitGroup // REST requests inside ari/v5
	// work is the context of per-call work: it outlives Run's ctx so
	// that calls in flight at shutdown still finish (each bounded).
	work context.Context
}

// New checks opts and returns a Bridge; it does no I/O.
func New(opts Options) (*Bridge, error) {
	if opts.URL == "" {
		opts.URL = "http://127.0.0.1:8088/ari"
	}
	u, err := url.Parse(opts.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("asterisk: URL %q must be an http(s) URL such as http://127.0.0.1:8088/ari", opts.URL)
	}
	opts.URL = strings.TrimRight(opts.URL, "/")
	if opts.WSURL == "" {
		ws := *u
		ws.Scheme = "ws"
		if u.Scheme == "https" {
			ws.Scheme = "wss"
		}
		ws.Path = strings.TrimRight(u.Path, "/") + "/events"
		ws.RawQuery = ""
		opts.WSURL = ws.String()
	} else if w, err := url.Parse(opts.WSURL); err != nil || (w.Scheme != "ws" && w.Scheme != "wss") || w.Host == "" {
		return nil, fmt.Errorf("asterisk: WSURL %q must be a ws(s) URL such as ws://127.0.0.1:8088/ari/events", opts.WSURL)
	}
	if opts.User == "" || opts.Password == "" {
		return nil, errors.New("asterisk: User and Password are required (a user of ari.conf)")
	}
	if opts.App == "" {
		opts.App = "sticky"
	}
	if strings.ContainsAny(opts.App, " ,/?&#") {
		return nil, fmt.Errorf("asterisk: App %q must be a plain name", opts.App)
	}
	if opts.Mode == "" {
		opts.Mode = ModeStasis
	}
	b := &Bridge{}
	switch opts.Mode {
	case ModeStasis:
		b.stasis = true
	case ModeObserve:
		b.observe = true
	case ModeBoth:
		b.stasis, b.observe = true, true
	default:
		return nil, fmt.Errorf("asterisk: Mode %q must be stasis, observe or both", opts.Mode)
	}
	if opts.Calls == nil || opts.Popper == nil {
		return nil, errors.New("asterisk: Calls and Popper are required")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opts.Budget, 300*time.Millisecond)
	def(&opts.ResolveTimeout, 2*time.Second)
	def(&opts.RESTTimeout, 2*time.Second)
	def(&opts.DialTimeout, 5*time.Second)
	def(&opts.MinBackoff, 500*time.Millisecond)
	def(&opts.MaxBackoff, 30*time.Second)
	def(&opts.MaxCallAge, 12*time.Hour)
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = opts.MinBackoff
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 8192
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	agents, err := agentmap.Compile(opts.Agents)
	if err != nil {
		return nil, fmt.Errorf("asterisk: %w", err)
	}
	b.opts, b.agents, b.wsURL = opts, agents, opts.WSURL
	b.log = opts.Logger.With("pbx", "asterisk")
	b.ari = newARI(opts)
	b.detail = "not started"
	return b, nil
}

func (b *Bridge) count(event string) {
	if b.opts.Count != nil {
		b.opts.Count(event)
	}
}

// Status says whether the events websocket is up, and why not.
func (b *Bridge) Status() (connected bool, detail string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.up, b.detail
}

func (b *Bridge) setStatus(up bool, detail string) {
	b.mu.Lock()
	b.up, b.detail = up, detail
	b.mu.Unlock()
}

// Run attaches to Asterisk and keeps re-attaching, with backoff, until ctx
// ends; it returns nil then, once every goroutine it started has ended.
// It never waits for Asterisk before returning control: run it in its own
// goroutine.
func (b *Bridge) Run(ctx context.Context) error {
	if !b.running.CompareAndSwap(false, true) {
		return errors.New("asterisk: Run called twice")
	}
	b.work = context.WithoutCancel(ctx)
	d := newDispatcher(b)
	queue := make(chan item, b.opts.QueueSize)
	dispatched := make(chan struct{})
	go func() {
		defer close(dispatched)
		d.run(queue)
	}()

	backoff := b.opts.MinBackoff
	attempts := 0
	for ctx.Err() == nil {
		attempts++
		b.setStatus(false, fmt.Sprintf("connecting to %s (attempt %d)", b.wsURL, attempts))
		up, err := b.attach(ctx, queue)
		if up && !errors.Is(err, errReplaced) {
			// Two bridges sharing an app name would take it from each
			// other in a tight loop; back off instead.
			backoff, attempts = b.opts.MinBackoff, 0
		}
		if ctx.Err() != nil {
			break
		}
		wait := jitter(backoff)
		msg := fmt.Sprintf("disconnected: %v; retrying in %s", err, wait.Round(time.Millisecond))
		// The status first, then the counter: whoever sees the failure
		// counted also sees why in Status.
		b.setStatus(false, msg)
		if !up {
			b.count("connect_error")
		}
		b.log.Warn("ARI connection lost or refused", "url", b.wsURL, "err", err, "retry_in", wait.Round(time.Millisecond))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		backoff = min(backoff*2, b.opts.MaxBackoff)
	}
	b.setStatus(false, "stopped")
	close(queue)
	<-dispatched
	b.workers.Wait()
	b.rest.Wait()
	closeIdle(b.ari)
	return nil
}

// jitter spreads reconnects of many bridges over ±20% of d.
func jitter(d time.Duration) time.Duration {
	return d - d/5 + time.Duration(rand.Int64N(int64(d/5)*2+1))
}
