package freeswitch

import (
	"context"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FreeSWITCH goes away mid-call. If it comes back with the same core (the
// socket dropped), the rest of the call arrives on the new connection and is
// handled; if it restarted (new core), the calls it lost are saved with what
// was known, and new calls work.
func TestFreeSWITCHRestartMidCall(t *testing.T) {
	h := start(t, "ring", nil)
	seedJane(t, h.engine)
	fx := loadFixture(t, "ring")

	// Call 1: ringing, then the socket drops.
	c1 := fx.render(1, "", nil)
	first, rest := until(c1, "CHANNEL_PARK", "")
	h.fs.play(t, h.fs.current(t), first)
	h.pops.wait(t, 1)
	h.fs.dropAll()
	h.counts.wait(t, "reconnect", 1)
	h.fs.waitAccepted(t, 2)
	if ok, detail := h.bridge.Status(); !ok {
		eventually(t, "status connected again", func() bool { ok, _ := h.bridge.Status(); return ok })
		_ = detail
	}
	h.fs.play(t, h.fs.current(t), rest)
	eventually(t, "call 1 saved after the reconnect", func() bool { _, ok := history(t, h.engine, "cust_jane", "fs-"+callUUID(1, 0)); return ok })

	// Call 2: ringing, then FreeSWITCH restarts: its channels are gone.
	c2 := fx.render(2, "", nil)
	first, _ = until(c2, "CHANNEL_PARK", "")
	h.fs.play(t, h.fs.current(t), first)
	h.pops.wait(t, 2)
	h.fs.mu.Lock()
	h.fs.alive = map[string]bool{}
	h.fs.mu.Unlock()
	h.fs.dropAll()
	h.fs.waitAccepted(t, 3)
	eventually(t, "call 2 saved although its hang-up never came", func() bool { _, ok := history(t, h.engine, "cust_jane", "fs-"+callUUID(2, 0)); return ok })

	// Call 3 on the restarted FreeSWITCH (new Core-UUID, sequence reset).
	c3 := fx.render(3, "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee", nil)
	h.fs.play(t, h.fs.current(t), c3)
	pops := h.pops.wait(t, 3)
	if pops[2].CallID != "fs-"+callUUID(3, 0) || pops[2].Agent != "1003" {
		t.Fatalf("pop after restart %+v", pops[2])
	}
	eventually(t, "call 3 saved", func() bool { _, ok := history(t, h.engine, "cust_jane", "fs-"+callUUID(3, 0)); return ok })
	if n := len(h.pops.wait(t, 3)); n != 3 {
		t.Fatalf("%d pops, want 3 (one per call)", n)
	}
}

// FreeSWITCH drops events when a socket's queue is full. A call whose
// hang-up was lost that way, with the connection up all along, is found by
// the periodic sweep and saved; while its channel lives, sweeps leave it be.
func TestLostHangUpIsSweptWhileConnected(t *testing.T) {
	h := start(t, "ring", func(o *Options) { o.SweepEvery = 20 * time.Millisecond })
	seedJane(t, h.engine)
	fx := loadFixture(t, "ring")
	first, _ := until(fx.render(1, "", nil), "CHANNEL_PARK", "")
	h.fs.play(t, h.fs.current(t), first)
	h.pops.wait(t, 1)
	callID := "fs-" + callUUID(1, 0)

	eventually(t, "two sweeps asking FreeSWITCH about the live call", func() bool {
		h.fs.mu.Lock()
		defer h.fs.mu.Unlock()
		return h.fs.exists >= 2
	})
	if _, ok := history(t, h.engine, "cust_jane", callID); ok || h.counts.get("hangup_lost") != 0 {
		t.Fatal("a sweep saved a call whose channel is alive")
	}

	// The channel hangs up; its events never reach the bridge.
	h.fs.mu.Lock()
	h.fs.alive = map[string]bool{}
	h.fs.mu.Unlock()
	h.counts.wait(t, "hangup_lost", 1)
	eventually(t, "the call saved although its hang-up never came", func() bool { _, ok := history(t, h.engine, "cust_jane", callID); return ok })
	if ok, _ := h.bridge.Status(); !ok || h.counts.get("reconnect") != 0 {
		t.Fatalf("the connection should have stayed up (reconnects %d)", h.counts.get("reconnect"))
	}
}

func TestAttachFailuresAreClean(t *testing.T) {
	cases := []struct {
		name  string
		setup func(f *fakeFS)
		want  string
	}{
		{"wrong password", func(f *fakeFS) { f.password = "not-ClueCon" }, "password"},
		{"ACL rejection", func(f *fakeFS) { f.rude = true }, "ACL"},
		{"silent port", func(f *fakeFS) { f.silent = true }, "not a FreeSWITCH event socket"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFakeFS(t, loadFixture(t, "park"), tc.setup)
			counts := newCounts()
			b, err := New(Options{Addr: fs.addr(), Calls: newEngine(t), Count: counts.add,
				DialTimeout: 100 * time.Millisecond, BackoffMin: time.Millisecond, BackoffMax: 5 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			run(t, b)
			// It keeps trying, each attempt ending on its own.
			counts.wait(t, "reconnect", 3)
			ok, detail := b.Status()
			if ok || !strings.Contains(detail, tc.want) {
				t.Fatalf("Status = %v, %q; want not connected, mentioning %q", ok, detail, tc.want)
			}
			if strings.Contains(detail, "ClueCon") {
				t.Fatalf("Status leaks the password: %q", detail)
			}
		})
	}
}

// A command that timed out never hands its late reply to the next command.
func TestTimedOutCommandGetsNoStaleReply(t *testing.T) {
	release := make(chan struct{})
	fs := newFakeFS(t, loadFixture(t, "park"), func(f *fakeFS) {
		f.hold = func(cmd string) {
			if strings.Contains(cmd, "slow-one") {
				<-release
			}
		}
	})
	ctx := context.Background()
	c, err := dialInbound(ctx, fs.addr(), "ClueCon", time.Second, subscribed)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.readLoop() }()
	defer func() { c.close(nil); <-done }()
	fs.mu.Lock()
	fs.alive["slow-one"] = true
	fs.mu.Unlock()

	tctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	_, err = c.api(tctx, "uuid_setvar_multi", "slow-one sticky_level=high")
	cancel()
	if err == nil {
		t.Fatal("the held command did not time out")
	}
	close(release) // its reply ("+OK") now arrives, late
	out, err := c.api(ctx, "uuid_exists", "nobody")
	if err != nil || strings.TrimSpace(out) != "false" {
		t.Fatalf("second command got %q, %v; want its own reply \"false\"", out, err)
	}
}

// Garbage on the socket is counted and skipped; the next call still works.
func TestMalformedEventsAreSurvived(t *testing.T) {
	h := start(t, "ring", nil)
	c := h.fs.current(t)
	bad := []string{
		"Event-Name: CHANNEL_CREATE\nUnique-ID: not%20a%20uuid%0A%0Aapi%20hupall\n\n",
		"Core-UUID: x\n\n",
		"Event-Name: CHANNEL_PARK\nUnique-ID: %ZZbad\n\n",
	}
	for _, b := range bad {
		_ = c.write([]byte("Content-Length: " + strconv.Itoa(len(b)) + "\nContent-Type: text/event-plain\n\n" + b))
	}
	h.counts.wait(t, "malformed_event", len(bad))
	h.fs.play(t, c, loadFixture(t, "ring").render(5, "", nil))
	p := h.pops.wait(t, 1)[0]
	if p.CallID != "fs-"+callUUID(5, 0) {
		t.Fatalf("pop %+v", p)
	}
	for _, cmd := range h.fs.commands("") {
		if strings.Contains(cmd, "hupall") {
			t.Fatalf("a header smuggled a command: %q", cmd)
		}
	}
}

// Events from a new Core-UUID mean FreeSWITCH restarted between two events
// (faster than the socket noticed): the old core's calls are saved with
// what was known.
func TestNewCoreEndsTheOldCoresCalls(t *testing.T) {
	h := start(t, "ring", nil)
	seedJane(t, h.engine)
	fx := loadFixture(t, "ring")
	c := h.fs.current(t)
	first, _ := until(fx.render(21, "", nil), "CHANNEL_PARK", "")
	h.fs.play(t, c, first)
	h.pops.wait(t, 1)
	if _, ok := history(t, h.engine, "cust_jane", "fs-"+callUUID(21, 0)); ok {
		t.Fatal("saved before anything ended it")
	}
	h.fs.play(t, c, fx.render(22, "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee", nil))
	eventually(t, "the old core's call saved", func() bool { _, ok := history(t, h.engine, "cust_jane", "fs-"+callUUID(21, 0)); return ok })
	eventually(t, "the new core's call saved", func() bool { _, ok := history(t, h.engine, "cust_jane", "fs-"+callUUID(22, 0)); return ok })
}

// Twenty connection drops leave no goroutine behind: every connection's
// reader, pinger and per-call workers end with it.
func TestReconnectsDoNotLeakGoroutines(t *testing.T) {
	h := start(t, "ring", nil)
	h.fs.waitAccepted(t, 1)
	fx := loadFixture(t, "ring")
	// One full call first, so per-call workers have existed too.
	h.fs.play(t, h.fs.current(t), fx.render(1, "", nil))
	h.pops.wait(t, 1)
	eventually(t, "status connected", func() bool { ok, _ := h.bridge.Status(); return ok })
	// settle reads the count once it stops falling (goroutines of a
	// dropped connection take a moment to return).
	settle := func() int {
		n := runtime.NumGoroutine()
		for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond) // polling a count, not synchronising
			m := runtime.NumGoroutine()
			if m >= n {
				return m
			}
			n = m
		}
		return n
	}
	before := settle()
	for i := range 20 {
		h.fs.dropAll()
		h.fs.waitAccepted(t, i+2)
	}
	eventually(t, "status connected", func() bool { ok, _ := h.bridge.Status(); return ok })
	var after int
	for deadline := time.Now().Add(10 * time.Second); ; {
		if after = settle(); after <= before+2 || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("goroutines: %d before 20 reconnects, %d after", before, after)
	if after > before+2 {
		t.Fatalf("goroutines grew from %d to %d over 20 reconnects", before, after)
	}
}

// An agent calling an agent rings with an extension as the caller number.
// That identifies no customer: it is counted as an internal call, neither
// resolved nor saved (the agent's pop shows the extension, without
// context), and it costs no warning (the engine would refuse
// "1002" as not a phone number: a resolve_error and an end_error per call).
// The external call after it is handled as usual.
func TestInternalCallIsNotResolved(t *testing.T) {
	h := start(t, "ring", nil)
	seedJane(t, h.engine)
	fx := loadFixture(t, "ring")
	h.fs.play(t, h.fs.current(t), fx.render(1, "", nil, "%2B14155551234", "1002"))
	h.counts.wait(t, "internal_call", 1)
	h.fs.play(t, h.fs.current(t), fx.render(2, "", nil))
	// Both agents' phones ring and pop; the internal call's pop says who
	// rings (1002) with no customer context.
	for _, p := range h.pops.wait(t, 2) {
		internal := p.CallID == "fs-"+callUUID(1, 0)
		if internal != (p.Context == nil) || internal && p.ANI != "1002" {
			t.Errorf("pop %+v", p)
		}
	}
	eventually(t, "the external call saved", func() bool { _, ok := history(t, h.engine, "cust_jane", "fs-"+callUUID(2, 0)); return ok })
	for _, ev := range []string{"resolve_error", "end_error"} {
		if n := h.counts.get(ev); n != 0 {
			t.Errorf("%s counted %d times", ev, n)
		}
	}
	if n := h.counts.get("internal_call"); n != 1 {
		t.Errorf("internal_call counted %d times, want 1", n)
	}
	if _, ok := history(t, h.engine, "cust_jane", "fs-"+callUUID(1, 0)); ok {
		t.Error("the internal call was saved to a customer")
	}
}
