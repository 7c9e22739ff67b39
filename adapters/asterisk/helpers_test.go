package asterisk

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"golang.org/x/net/websocket"

	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/core/store"
)

// newEngine is a real engine on Badger in a temporary directory.
func newEngine(t testing.TB) *core.Engine {
	t.Helper()
	db, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return core.New(core.Options{Store: db})
}

// spyCalls is the real engine, with every End reported on ends.
type spyCalls struct {
	core.Calls
	ends chan core.EndRequest
	gate chan struct{} // when set, Start waits for it (a slow core)
}

func (s *spyCalls) Start(ctx context.Context, req core.StartRequest) (*core.StartResult, error) {
	if s.gate != nil {
		<-s.gate
	}
	return s.Calls.Start(ctx, req)
}

func (s *spyCalls) End(ctx context.Context, req core.EndRequest) (*core.EndResult, error) {
	res, err := s.Calls.End(ctx, req)
	if err == nil {
		s.ends <- req
	}
	return res, err
}

// natsPopper is a test-only Popper: it publishes the pop as JSON to
// sticky.screenpop.agent.<agent> (or .call.<call> without an agent) on a
// real NATS server.
type natsPopper struct{ nc *nats.Conn }

func token(s string) string {
	return strings.NewReplacer(".", "_", "*", "_", ">", "_", " ", "_").Replace(s)
}

func (p natsPopper) Pop(ctx context.Context, pop core.Pop) error {
	b, err := json.Marshal(pop)
	if err != nil {
		return err
	}
	subj := "sticky.screenpop.call." + token(pop.CallID)
	if pop.Agent != "" {
		subj = "sticky.screenpop.agent." + token(pop.Agent)
	}
	return p.nc.Publish(subj, b)
}

// startNATS runs an in-process NATS server on a random loopback port and
// returns a publishing connection and a subscription to every pop.
func startNATS(t testing.TB) (natsPopper, *nats.Conn) {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	pub, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	sub, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pub.Close()
		sub.Close()
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return natsPopper{pub}, sub
}

// pops subscribes to every pop and decodes them.
func pops(t testing.TB, nc *nats.Conn) <-chan core.Pop {
	t.Helper()
	ch := make(chan core.Pop, 4096)
	_, err := nc.Subscribe("sticky.screenpop.>", func(m *nats.Msg) {
		var p core.Pop
		if err := json.Unmarshal(m.Data, &p); err != nil {
			t.Errorf("pop is not JSON: %v", err)
			return
		}
		ch <- p
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return ch
}

// counter records the bridge's Count calls.
type counter struct {
	mu sync.Mutex
	n  map[string]int
	ch chan string
}

func newCounter() *counter { return &counter{n: map[string]int{}, ch: make(chan string, 1024)} }

func (c *counter) Count(ev string) {
	c.mu.Lock()
	c.n[ev]++
	c.mu.Unlock()
	select {
	case c.ch <- ev:
	default:
	}
}

func (c *counter) get(ev string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[ev]
}

// running is a bridge under Run.
type running struct {
	b      *Bridge
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned, with err set
	err    error
}

func (r *running) stop(t testing.TB) {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
		if r.err != nil {
			t.Errorf("Run returned %v", r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

func run(t testing.TB, opts Options) *running {
	t.Helper()
	if opts.User == "" {
		opts.User, opts.Password = "sticky", "secret"
	}
	if opts.MinBackoff == 0 {
		opts.MinBackoff, opts.MaxBackoff = 10*time.Millisecond, 50*time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	b, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{b: b, cancel: cancel, done: make(chan struct{})}
	go func() {
		r.err = b.Run(ctx)
		close(r.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func recvPop(t testing.TB, ch <-chan core.Pop) core.Pop {
	t.Helper()
	select {
	case p := <-ch:
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("no screen-pop arrived")
		return core.Pop{}
	}
}

func recvEnd(t testing.TB, ch <-chan core.EndRequest) core.EndRequest {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("the interaction was never saved")
		return core.EndRequest{}
	}
}

// rig is a bridge under test on a fake Asterisk: a real engine behind a spy
// on its ends, real NATS pops, counted events, and the event websocket.
type rig struct {
	eng    *core.Engine
	fake   *fakeAsterisk
	sub    *nats.Conn
	popped <-chan core.Pop
	spy    *spyCalls
	cnt    *counter
	r      *running
	ws     *websocket.Conn
}

func startRig(t *testing.T, mode string) *rig {
	t.Helper()
	h := &rig{eng: newEngine(t), fake: newFake(t), cnt: newCounter()}
	var popper natsPopper
	popper, h.sub = startNATS(t)
	h.popped = pops(t, h.sub)
	h.spy = &spyCalls{Calls: h.eng, ends: make(chan core.EndRequest, 8)}
	h.r = run(t, Options{URL: h.fake.url(), Mode: mode, Calls: h.spy, Popper: popper, Count: h.cnt.Count})
	h.ws = h.fake.accept()
	return h
}
