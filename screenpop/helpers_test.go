package screenpop_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/core/store"
	"github.com/sticky-cc/sticky/screenpop"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newEngine(t testing.TB, now time.Time) (*core.Engine, *clock) {
	t.Helper()
	db, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	clk := &clock{t: now}
	return core.New(core.Options{Store: db, Now: clk.Now}), clk
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("STICKY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// counter records Count events.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) Count(ev string) { c.mu.Lock(); c.n[ev]++; c.mu.Unlock() }
func (c *counter) Get(ev string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[ev]
}

var agents = []screenpop.Agent{
	{ID: "alice", Password: "alice-secret", Queues: []string{"billing"}},
	{ID: "bob", Password: "bob-secret", Queues: []string{"sales"}},
}

// startService runs a service on random ports until the test ends.
func startService(t testing.TB, opts screenpop.Options) *screenpop.Service {
	t.Helper()
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.WSAddr == "" {
		opts.WSAddr = "127.0.0.1:0"
	}
	if opts.StoreDir == "" && opts.URL == "" {
		opts.StoreDir = t.TempDir()
	}
	if opts.URL == "" && opts.User == "" {
		opts.User, opts.Password = "integrator", "integrator-secret"
	}
	if opts.Agents == nil {
		opts.Agents = agents
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	ctx, cancel := context.WithCancel(context.Background())
	svc, err := screenpop.Start(ctx, opts)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return svc
}

// closedPort is a loopback address nothing listens on.
func closedPort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitReady(t testing.TB, svc *screenpop.Service) {
	t.Helper()
	waitFor(t, "service ready", 15*time.Second, func() bool { ok, _ := svc.Ready(); return ok })
}

// connectAgent logs in as an agent over the client listener, the way a
// desktop does over websocket (own inbox prefix). Async errors (permission
// violations) arrive on errs.
func connectAgent(t testing.TB, svc *screenpop.Service, id, pass string) (*nats.Conn, chan error) {
	t.Helper()
	client, _ := svc.Addrs()
	errs := make(chan error, 16)
	nc, err := nats.Connect("nats://"+client, nats.UserInfo(id, pass), nats.CustomInboxPrefix(screenpop.InboxPrefix(id)),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case errs <- err:
			default:
			}
		}))
	if err != nil {
		t.Fatalf("agent %s connect: %v", id, err)
	}
	t.Cleanup(nc.Close)
	return nc, errs
}

// readPops reads every pop on subject still in the stream through an
// ordered consumer, as the desktop does.
func readPops(t testing.TB, nc *nats.Conn, subject string, want int) []screenpop.Payload {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, screenpop.StreamName, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subject}, DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		t.Fatalf("ordered consumer on %s: %v", subject, err)
	}
	var out []screenpop.Payload
	for len(out) < want {
		m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("reading pop %d of %d on %s: %v", len(out)+1, want, subject, err)
		}
		var p screenpop.Payload
		if err := json.Unmarshal(m.Data(), &p); err != nil {
			t.Fatalf("pop JSON: %v", err)
		}
		out = append(out, p)
	}
	return out
}

// seedJane gives the engine a customer with a chat and an email behind her.
func seedJane(t testing.TB, e *core.Engine, clk *clock) {
	t.Helper()
	ctx := context.Background()
	if _, err := e.End(ctx, core.EndRequest{
		CallID: "chat_1", Channel: "chat",
		Hints:  &core.Hints{ExternalIDs: map[string]string{"email": "jane@example.test"}},
		Intent: "refund_status", IntentStatus: "open",
		Variables: map[string]string{"name": "Jane Doe", "phone": "+14155551234", "summary": "Reported a duplicate charge on her card"},
	}); err != nil {
		t.Fatal(err)
	}
	clk.Add(20 * time.Hour)
	if _, err := e.End(ctx, core.EndRequest{
		CallID: "email_1", Channel: "email",
		Hints:  &core.Hints{ExternalIDs: map[string]string{"email": "jane@example.test"}},
		Intent: "refund_status", IntentStatus: "open",
		Variables: map[string]string{"summary": "Asked for the refund of the duplicate charge"},
	}); err != nil {
		t.Fatal(err)
	}
	clk.Add(29 * time.Hour)
}

// ring starts a call from Jane and makes the pop the bridge would make.
func ring(t testing.TB, e *core.Engine, callID, agent string) core.Pop {
	t.Helper()
	res, err := e.Start(context.Background(), core.StartRequest{
		CallID: callID,
		Hints:  core.Hints{ANI: "+1 415-555-1234", DNIS: "8005550100", ExternalIDs: map[string]string{"email": "jane@example.test"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return core.Pop{CallID: callID, PBX: "asterisk", PBXCallID: "1714566897." + callID, ANI: "+14155551234",
		DNIS: "8005550100", Agent: agent, Queue: "billing", RangAt: res.CallStart.Time, Context: res}
}

// askJSON sends a NATS request and decodes its JSON answer.
func askJSON(t *testing.T, nc *nats.Conn, subject, body string) (*nats.Msg, map[string]any) {
	t.Helper()
	m, err := nc.Request(subject, []byte(body), 5*time.Second)
	if err != nil {
		t.Fatalf("%s: %v", subject, err)
	}
	var v map[string]any
	if err := json.Unmarshal(m.Data, &v); err != nil {
		t.Fatalf("reply %q", m.Data)
	}
	return m, v
}

// popIt publishes pop through svc.
func popIt(t *testing.T, svc *screenpop.Service, pop core.Pop) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := svc.Pop(ctx, pop); err != nil {
		t.Fatal(err)
	}
}

// hasAccess says whether ref's access log has a record of kind by actor for call.
func hasAccess(t *testing.T, e *core.Engine, ref, kind, actor, call string) bool {
	t.Helper()
	if err := e.FlushAccess(context.Background()); err != nil {
		t.Fatal(err)
	}
	page, err := e.AccessLog(context.Background(), ref, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(page.Access, func(a core.Access) bool { return a.Kind == kind && a.Actor == actor && a.CallID == call })
}
