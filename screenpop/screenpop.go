// Package screenpop delivers screen-pops to agent desktops over NATS and
// brings their wrap-up back: an embedded (or external) NATS server, a
// JetStream stream that keeps pops for desktops that connect late, the
// start/end/wrap-up request-reply services and the embedded agent desktop.
package screenpop

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/sticky-cc/sticky/core"
)

// Defaults of Options.
const (
	DefaultAddr      = "127.0.0.1:4222"
	DefaultWSAddr    = "127.0.0.1:4223"
	DefaultRetention = 15 * time.Minute
)

// Agent is one desktop login of the embedded server.
type Agent struct {
	ID string
	// Password is the agent's password, or better a bcrypt hash of it
	// ("$2a$12$..."; see the hash-password subcommand of the bridges),
	// which the embedded NATS checks the password given against.
	Password string
	Queues   []string
}

// Options configure the service. Zero values take the defaults.
type Options struct {
	// URL of an external NATS (comma-separated for a cluster); empty runs
	// the embedded server.
	URL string
	// Addr is the embedded server's client listener (port 0 picks one).
	Addr string
	// WSAddr is the embedded server's websocket listener for browser
	// desktops (port 0 picks one).
	WSAddr string
	// WSURL is the websocket URL desktops connect to, when it is not the
	// embedded listener as seen from the page's host (a TLS proxy, or an
	// external NATS).
	WSURL string
	// WSAllowedOrigins restricts the Origin of websocket clients (absolute
	// http(s) URLs); empty allows any origin, since agents authenticate.
	WSAllowedOrigins []string
	// StoreDir is the embedded server's JetStream storage directory.
	StoreDir string

	// Credentials and TLS for an external NATS. With the embedded server,
	// User and Password (both set) add a full-access login for integrators
	// that call the start/end services or follow call and queue subjects.
	CredsFile, Token, User, Password string
	TLSCA, TLSCert, TLSKey           string

	// Retention is how long pops stay in the stream (and the window in
	// which a repeated pop is recognised as a duplicate).
	Retention time.Duration
	// Replicas of the stream on an external cluster (default 1).
	Replicas int

	// ServerName, ClusterName, ClusterAddr and Routes make the embedded
	// server one of a NATS cluster formed by several nodes' servers.
	// ClusterAddr empty: a lone server.
	ServerName, ClusterName, ClusterAddr string
	Routes                               []string
	// SyncAlways makes the embedded JetStream fsync every write; a cluster
	// whose memory has one replica needs it to survive power loss.
	SyncAlways bool

	// Agents are the desktop logins of the embedded server.
	Agents []Agent
	// VerifyPrompts are what a withheld pop asks the agent to check
	// before the desktop fetches the context (default
	// core.DefaultVerifyPrompt). The engine decides which pops are
	// withheld (core.Options.DiscloseLevel).
	VerifyPrompts []string
	// Calls is the engine behind the start, end and wrap-up services. If
	// it is also a core.Desk (the engine is), pops are recorded with it and
	// agents may say who a caller is (identify).
	Calls  core.Calls
	Logger *slog.Logger
	// Count, when set, is told about events: pop_published, pop_duplicate,
	// pop_retry, pop_failed, pop_withheld, wrapup_saved, wrapup_failed,
	// identify_saved, identify_failed, context_disclosed, context_refused,
	// nats_disconnected, nats_connected.
	Count func(event string)
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Service is screen-pop delivery: it implements core.Popper.
type Service struct {
	opts Options
	log  *slog.Logger

	desk core.Desk // nil: Calls is not one; no identify

	ns *server.Server // nil with an external NATS
	nc *nats.Conn
	js jetstream.JetStream
	ms micro.Service

	clientAddr, wsAddr string

	stop    context.CancelFunc
	stopCtx context.Context
	wg      sync.WaitGroup
	kick    chan struct{} // asks the stream keeper to (re)create the stream
	work    chan struct{} // bounds concurrent service requests

	mu        sync.Mutex
	connected bool
	streamOK  bool
	ready     chan struct{} // closed while connected with the stream in place
	why       string        // why not ready
	closing   bool
	closeOnce sync.Once
}

var _ core.Popper = (*Service)(nil)

// Conn is the service's NATS connection, which the shared memory of a
// cluster uses too.
func (s *Service) Conn() *nats.Conn { return s.nc }

// Start starts the embedded server (unless opts.URL is set) and connects
// to NATS in the background: it never blocks on an unreachable NATS. Run
// must be called to serve until shutdown.
func Start(ctx context.Context, opts Options) (*Service, error) {
	if opts.Calls == nil {
		return nil, errors.New("screenpop: Options.Calls is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Retention <= 0 {
		opts.Retention = DefaultRetention
	}
	if opts.Replicas <= 0 {
		opts.Replicas = 1
	}
	if opts.Addr == "" {
		opts.Addr = DefaultAddr
	}
	if opts.WSAddr == "" {
		opts.WSAddr = DefaultWSAddr
	}
	if len(opts.VerifyPrompts) == 0 {
		opts.VerifyPrompts = []string{core.DefaultVerifyPrompt}
	}
	s := &Service{
		opts:  opts,
		log:   opts.Logger.With("component", "screenpop"),
		kick:  make(chan struct{}, 1),
		work:  make(chan struct{}, 64),
		ready: make(chan struct{}),
		why:   "connecting to NATS",
	}
	s.desk, _ = opts.Calls.(core.Desk)
	s.stopCtx, s.stop = context.WithCancel(context.Background())

	var copts []nats.Option
	url := opts.URL
	if url == "" {
		bridge, err := s.startEmbedded()
		if err != nil {
			s.stop()
			return nil, err
		}
		copts = append(copts, nats.InProcessServer(s.ns), nats.UserInfo(bridge.Username, bridge.Password))
		url = s.ns.ClientURL()
	} else {
		var err error
		if copts, err = externalOptions(opts); err != nil {
			s.stop()
			return nil, err
		}
	}
	copts = append(copts,
		nats.Name("sticky-screenpop"),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(500*time.Millisecond),
		nats.ReconnectJitter(250*time.Millisecond, time.Second),
		nats.ConnectHandler(func(*nats.Conn) { s.onConnect() }),
		nats.ReconnectHandler(func(*nats.Conn) { s.onConnect() }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { s.onDisconnect(err) }),
		nats.ClosedHandler(func(*nats.Conn) { s.onDisconnect(nats.ErrConnectionClosed) }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			s.log.Warn("NATS error", "subject", subj, "err", err)
		}),
	)
	nc, err := nats.Connect(url, copts...)
	if err != nil {
		s.shutdownServer()
		s.stop()
		return nil, fmt.Errorf("screenpop: NATS %s: %w", redactURL(url), err)
	}
	s.nc = nc
	if nc.IsConnected() {
		s.onConnect()
	}
	s.js, err = jetstream.New(nc)
	if err != nil {
		nc.Close()
		s.shutdownServer()
		s.stop()
		return nil, err
	}
	if err := s.addServices(); err != nil {
		nc.Close()
		s.shutdownServer()
		s.stop()
		return nil, err
	}
	s.wg.Add(1)
	go s.keepStream()
	where := "external " + redactURL(opts.URL)
	if s.ns != nil {
		where = "embedded"
	}
	s.log.Info("screen-pops starting", "nats", where, "client", s.clientAddr, "websocket", s.wsAddr,
		"retention", opts.Retention.String(), "agents", len(opts.Agents))
	return s, nil
}

// Addrs returns the embedded server's bound client and websocket
// addresses ("" with an external NATS).
func (s *Service) Addrs() (client, websocket string) { return s.clientAddr, s.wsAddr }

// Ready reports whether pops can be delivered now: connected to NATS with
// the stream in place. The detail says why not.
func (s *Service) Ready() (bool, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.connected && s.streamOK {
		return true, "connected"
	}
	return false, s.why
}

// Run serves until ctx ends, then stops the services, drains the
// connection and shuts the embedded server down.
func (s *Service) Run(ctx context.Context) error {
	select {
	case <-ctx.Done():
	case <-s.stopCtx.Done():
	}
	s.Close()
	return nil
}

// Close stops everything Start started. It is safe to call more than once.
func (s *Service) Close() {
	s.closeOnce.Do(func() {
		if s.ms != nil {
			_ = s.ms.Stop()
		}
		s.mu.Lock()
		s.closing = true
		s.mu.Unlock()
		s.stop()
		s.wg.Wait()
		if s.nc != nil {
			drained := make(chan struct{})
			s.nc.SetClosedHandler(func(*nats.Conn) { close(drained) })
			if err := s.nc.Drain(); err != nil {
				s.nc.Close()
			}
			select {
			case <-drained:
			case <-time.After(10 * time.Second):
				s.nc.Close()
			}
		}
		s.shutdownServer()
		s.log.Info("screen-pops stopped")
	})
}

func (s *Service) shutdownServer() {
	if s.ns != nil {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
	}
}

func (s *Service) count(event string) {
	if s.opts.Count != nil {
		s.opts.Count(event)
	}
}

func (s *Service) onConnect() {
	s.mu.Lock()
	was := s.connected
	s.connected = true
	s.mu.Unlock()
	if !was {
		s.count("nats_connected")
		s.log.Info("connected to NATS")
	}
	s.ensureStream()
}

func (s *Service) onDisconnect(err error) {
	s.mu.Lock()
	was := s.connected
	s.connected = false
	s.setReadyLocked(false, "disconnected from NATS; reconnecting")
	closing := s.closing
	s.mu.Unlock()
	if was && !closing { // closing: our own drain, not an outage
		s.count("nats_disconnected")
		s.log.Warn("disconnected from NATS; reconnecting", "err", err)
	}
}

// setReadyLocked moves the ready gate; pops wait on it while NATS is away.
func (s *Service) setReadyLocked(ok bool, why string) {
	if !ok {
		s.streamOK = false
		s.why = why
		select {
		case <-s.ready:
			s.ready = make(chan struct{})
		default:
		}
		return
	}
	s.streamOK = true
	s.why = ""
	select {
	case <-s.ready:
	default:
		close(s.ready)
	}
}

func (s *Service) waitReady(ctx context.Context) error {
	s.mu.Lock()
	ch := s.ready
	s.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ensureStream asks the stream keeper to check the stream.
func (s *Service) ensureStream() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// keepStream creates or updates the stream whenever asked (at every
// connect, and when a publish finds no stream), retrying until it works.
func (s *Service) keepStream() {
	defer s.wg.Done()
	cfg := jetstream.StreamConfig{
		Name:        StreamName,
		Description: "Sticky screen-pops, kept briefly for desktops that connect late",
		Subjects:    []string{SubjectPrefix + ".>"},
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      s.opts.Retention,
		Duplicates:  s.opts.Retention,
		Storage:     jetstream.FileStorage,
		Replicas:    s.opts.Replicas,
		Discard:     jetstream.DiscardOld,
	}
	for {
		select {
		case <-s.stopCtx.Done():
			return
		case <-s.kick:
		}
		backoff := 100 * time.Millisecond
		for {
			if !s.nc.IsConnected() {
				break // the next connect kicks again
			}
			ctx, cancel := context.WithTimeout(s.stopCtx, 5*time.Second)
			_, err := s.js.CreateOrUpdateStream(ctx, cfg)
			cancel()
			if err == nil {
				s.mu.Lock()
				if s.connected {
					s.setReadyLocked(true, "")
				}
				s.mu.Unlock()
				break
			}
			s.mu.Lock()
			s.setReadyLocked(false, "JetStream stream "+StreamName+": "+err.Error())
			s.mu.Unlock()
			s.log.Warn("cannot create the screen-pop stream; retrying", "stream", StreamName, "err", err)
			select {
			case <-s.stopCtx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 5*time.Second)
		}
	}
}

// streamMissing marks the stream as gone (a publish found no stream) so
// pops wait until it is back.
func (s *Service) streamMissing(err error) {
	s.mu.Lock()
	s.setReadyLocked(false, "JetStream stream "+StreamName+" unavailable: "+err.Error())
	s.mu.Unlock()
	s.ensureStream()
}

func externalOptions(o Options) ([]nats.Option, error) {
	var out []nats.Option
	if o.CredsFile != "" {
		out = append(out, nats.UserCredentials(o.CredsFile))
	}
	if o.Token != "" {
		out = append(out, nats.Token(o.Token))
	}
	if o.User != "" || o.Password != "" {
		out = append(out, nats.UserInfo(o.User, o.Password))
	}
	if o.TLSCA != "" {
		out = append(out, nats.RootCAs(o.TLSCA))
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return nil, errors.New("screenpop: a TLS client certificate needs both TLSCert and TLSKey")
	}
	if o.TLSCert != "" {
		out = append(out, nats.ClientCert(o.TLSCert, o.TLSKey))
	}
	return out, nil
}

// redactURL drops credentials embedded in NATS URLs before logging.
func redactURL(u string) string {
	parts := strings.Split(u, ",")
	for i, p := range parts {
		if at := strings.LastIndex(p, "@"); at >= 0 {
			scheme := ""
			if j := strings.Index(p, "://"); j >= 0 && j < at {
				scheme = p[:j+3]
			}
			parts[i] = scheme + "***@" + p[at+1:]
		}
	}
	return strings.Join(parts, ",")
}

// listenParts splits host:port for the embedded server; port 0 becomes
// -1, which the server takes as "pick a free port".
func listenParts(addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	p, err := net.LookupPort("tcp", port)
	if err != nil {
		return "", 0, err
	}
	if p == 0 {
		p = -1
	}
	return host, p, nil
}
