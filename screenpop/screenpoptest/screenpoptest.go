// Package screenpoptest starts the real screen-pop service for other
// packages' tests and benchmarks: an embedded NATS server with JetStream on
// loopback, and a connection that may read every pop.
package screenpoptest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/screenpop"
)

// Start runs a screen-pop service until the test ends and returns it
// (a core.Popper) with a full-access connection for reading pops.
func Start(tb testing.TB, calls core.Calls, agents ...screenpop.Agent) (*screenpop.Service, *nats.Conn) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	svc, err := screenpop.Start(ctx, screenpop.Options{Addr: "127.0.0.1:0", WSAddr: "127.0.0.1:0",
		StoreDir: tb.TempDir(), Calls: calls, Agents: agents, User: "test", Password: "test-pw"})
	if err != nil {
		cancel()
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() { svc.Run(ctx); close(done) }()
	tb.Cleanup(func() { cancel(); <-done })
	for deadline := time.Now().Add(10 * time.Second); ; {
		if ok, _ := svc.Ready(); ok {
			break
		}
		if time.Now().After(deadline) {
			_, why := svc.Ready()
			tb.Fatalf("screen-pops not ready: %s", why)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition
	}
	client, _ := svc.Addrs()
	nc, err := nats.Connect("nats://"+client, nats.UserInfo("test", "test-pw"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	return svc, nc
}

// Pop is the part of a screen-pop payload tests usually read.
type Pop struct {
	Call struct {
		CallID string    `json:"call_id"`
		Agent  string    `json:"agent"`
		RangAt time.Time `json:"rang_at"`
	} `json:"call"`
	Context *core.StartResult `json:"context"`
}
