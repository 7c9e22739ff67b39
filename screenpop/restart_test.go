package screenpop_test

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sticky-cc/sticky/screenpop"
)

// runNATS starts a NATS server with JetStream on addr and dir, as an
// operator's external NATS would be.
func runNATS(t testing.TB, addr, dir string) *server.Server {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	ns, err := server.NewServer(&server.Options{
		ServerName: "external", Host: host, Port: p, JetStream: true, StoreDir: dir, NoSigs: true, NoLog: true,
		Users: []*server.User{{Username: "sticky", Password: "s3cret"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS did not start")
	}
	return ns
}

// NATS goes away and comes back on the same port and store: every pop
// made while it was away is delivered once it is back, none twice.
func TestNATSRestartLosesNoPop(t *testing.T) {
	e, clk := newEngine(t, time.Date(2026, 1, 26, 14, 0, 0, 0, time.UTC))
	seedJane(t, e, clk)
	addr, dir := closedPort(t), t.TempDir()
	ns := runNATS(t, addr, dir)
	cnt := &counter{n: map[string]int{}}
	svc := startService(t, screenpop.Options{Calls: e, URL: "nats://" + addr, User: "sticky", Password: "s3cret", Count: cnt.Count})
	waitReady(t, svc)
	ctx := context.Background()
	if err := svc.Pop(ctx, ring(t, e, "before", "alice")); err != nil {
		t.Fatal(err)
	}
	goroutines := runtime.NumGoroutine()

	ns.Shutdown()
	ns.WaitForShutdown()
	waitFor(t, "service not ready", 10*time.Second, func() bool { ok, _ := svc.Ready(); return !ok })

	const n = 20
	results := make(chan error, n)
	for i := range n {
		pop := ring(t, e, fmt.Sprintf("outage%02d", i), "alice")
		go func() {
			pctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			results <- svc.Pop(pctx, pop)
		}()
	}
	// Nothing can be acknowledged while NATS is down.
	select {
	case err := <-results:
		t.Fatalf("a pop returned while NATS was down: %v", err)
	default:
	}

	ns = runNATS(t, addr, dir)
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	for range n {
		if err := <-results; err != nil {
			t.Errorf("pop lost: %v", err)
		}
	}
	waitReady(t, svc)

	nc, err := nats.Connect("nats://"+addr, nats.UserInfo("sticky", "s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	st, err := js.Stream(ctx, screenpop.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(screenpop.SubjectPrefix+".>"))
	if err != nil {
		t.Fatal(err)
	}
	if got := info.State.Subjects[screenpop.AgentSubject("alice")]; got != n+1 {
		t.Errorf("alice's subject holds %d pops, want %d", got, n+1)
	}
	for i := range n {
		if got := info.State.Subjects[screenpop.CallSubject(fmt.Sprintf("outage%02d", i))]; got != 1 {
			t.Errorf("call outage%02d has %d pops, want 1", i, got)
		}
	}
	if cnt.Get("nats_disconnected") < 1 || cnt.Get("pop_published") != n+1 {
		t.Errorf("counts: %v", cnt.n)
	}
	// The retries ended: no goroutine was left behind by the outage.
	nc.Close()
	waitFor(t, fmt.Sprintf("goroutines to settle (had %d)", goroutines), 10*time.Second, func() bool { return runtime.NumGoroutine() <= goroutines+2 })
}

// The embedded server keeps pops on disk: a bridge restarted on the same
// store directory still hands a late desktop the pop made before.
func TestEmbeddedStoreSurvivesBridgeRestart(t *testing.T) {
	e, clk := newEngine(t, time.Date(2026, 1, 26, 14, 0, 0, 0, time.UTC))
	seedJane(t, e, clk)
	dir, addr := t.TempDir(), closedPort(t)
	goroutines := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	first, err := screenpop.Start(ctx, screenpop.Options{Calls: e, StoreDir: dir, Addr: addr, WSAddr: "127.0.0.1:0", Agents: agents})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- first.Run(ctx) }()
	waitReady(t, first)
	if err := first.Pop(context.Background(), ring(t, e, "call1", "alice")); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Run's end stopped everything Start started.
	waitFor(t, fmt.Sprintf("goroutines back to %d", goroutines), 10*time.Second, func() bool { return runtime.NumGoroutine() <= goroutines })

	second := startService(t, screenpop.Options{Calls: e, StoreDir: dir, Addr: addr})
	waitReady(t, second)
	if c, _ := second.Addrs(); c != addr {
		t.Errorf("bound %s, want %s", c, addr)
	}
	nc, _ := connectAgent(t, second, "alice", "alice-secret")
	if got := readPops(t, nc, screenpop.AgentSubject("alice"), 1)[0]; got.Call.CallID != "call1" {
		t.Errorf("pop after restart = %+v", got.Call)
	}
}
