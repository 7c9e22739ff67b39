package screenpop_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/crypto/bcrypt"

	"github.com/sticky-cc/sticky/screenpop"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// With bcrypt hashes in the agents file (and the integrator login), agents
// sign in with their passwords, a wrong one is refused, and the embedded
// NATS holds no plaintext password to warn about: the bridge's own login
// is hashed too.
func TestAgentsSignInAgainstBcryptHashes(t *testing.T) {
	hash := func(p string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(p), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	var logs syncBuffer
	e, _ := newEngine(t, time.Date(2026, 1, 26, 14, 0, 0, 0, time.UTC))
	svc := startService(t, screenpop.Options{Calls: e,
		Agents: []screenpop.Agent{{ID: "alice", Password: hash("alice-secret")}},
		User:   "integrator", Password: hash("integrator-secret"),
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	waitReady(t, svc)

	connectAgent(t, svc, "alice", "alice-secret")
	client, _ := svc.Addrs()
	if nc, err := nats.Connect("nats://"+client, nats.UserInfo("alice", "not-alice-secret")); err == nil {
		nc.Close()
		t.Fatal("a wrong password was accepted")
	}
	if nc, err := nats.Connect("nats://"+client, nats.UserInfo("alice", hash("alice-secret"))); err == nil {
		nc.Close()
		t.Fatal("the hash itself was accepted as a password")
	}
	nc, err := nats.Connect("nats://"+client, nats.UserInfo("integrator", "integrator-secret"))
	if err != nil {
		t.Fatalf("integrator login: %v", err)
	}
	nc.Close()
	if strings.Contains(logs.String(), "Plaintext passwords") {
		t.Errorf("NATS warned about plaintext passwords although every one is hashed:\n%s", logs.String())
	}
}

// A hash that lost characters on its way into the agents file is refused at
// start, naming the agent, instead of locking the agent out without a word.
func TestBrokenBcryptHashIsRefused(t *testing.T) {
	h, err := bcrypt.GenerateFromPassword([]byte("alice-secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e, _ := newEngine(t, time.Date(2026, 1, 26, 14, 0, 0, 0, time.UTC))
	_, err = screenpop.Start(ctx, screenpop.Options{Calls: e, Addr: "127.0.0.1:0", WSAddr: "127.0.0.1:0", StoreDir: t.TempDir(),
		Agents: []screenpop.Agent{{ID: "alice", Password: string(h[:50])}}})
	if err == nil || !strings.Contains(err.Error(), `agent "alice"`) || !strings.Contains(err.Error(), "bcrypt") {
		t.Fatalf("Start with a cut-short hash: %v", err)
	}
}
