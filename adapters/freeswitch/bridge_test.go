package freeswitch

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sticky-cc/sticky/adapters/agentmap"
	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/core/store"
)

// loopbackAgents maps the captured calls' ringing leg (loopback/1003-a) to
// agent 1003, the way a site maps sofia/internal/1003@pbx.
var loopbackAgents = []agentmap.Rule{{Pattern: `loopback/(\d+)-a`, Agent: "$1"}}

const jane = "+14155551234"

func newEngine(t testing.TB) *core.Engine {
	t.Helper()
	db, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return core.New(core.Options{Store: db})
}

// seedJane gives the engine a customer known by Jane's number with an open
// intent, as an earlier chat would have left her.
func seedJane(t testing.TB, e *core.Engine) {
	t.Helper()
	_, err := e.End(context.Background(), core.EndRequest{
		CallID: "chat-1", CustomerRef: "cust_jane", Channel: "chat",
		Hints:  &core.Hints{ANI: jane, ExternalIDs: map[string]string{"email": "jane@example.test"}},
		Intent: "refund_status", IntentStatus: "open",
	})
	if err != nil {
		t.Fatal(err)
	}
}

type pops struct {
	mu   sync.Mutex
	cond *sync.Cond
	got  []core.Pop
	fail error
}

func newPops() *pops { p := &pops{}; p.cond = sync.NewCond(&p.mu); return p }

func (p *pops) Pop(ctx context.Context, pop core.Pop) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.got = append(p.got, pop)
	p.cond.Broadcast()
	return p.fail
}

func (p *pops) wait(t testing.TB, n int) []core.Pop {
	t.Helper()
	waitCond(t, &p.mu, p.cond, func() bool { return len(p.got) >= n }, "pops")
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]core.Pop(nil), p.got...)
}

type counts struct {
	mu   sync.Mutex
	cond *sync.Cond
	m    map[string]int
}

func newCounts() *counts { c := &counts{m: map[string]int{}}; c.cond = sync.NewCond(&c.mu); return c }

func (c *counts) add(name string) {
	c.mu.Lock()
	c.m[name]++
	c.cond.Broadcast()
	c.mu.Unlock()
}

func (c *counts) get(name string) int { c.mu.Lock(); defer c.mu.Unlock(); return c.m[name] }

func (c *counts) wait(t testing.TB, name string, n int) {
	t.Helper()
	waitCond(t, &c.mu, c.cond, func() bool { return c.m[name] >= n }, "count "+name)
}

// waitCond waits under mu for cond, at most 10s.
func waitCond(t testing.TB, mu *sync.Mutex, cv *sync.Cond, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	stop := time.AfterFunc(10*time.Second, func() { mu.Lock(); cv.Broadcast(); mu.Unlock() })
	defer stop.Stop()
	mu.Lock()
	defer mu.Unlock()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		cv.Wait()
	}
}

// eventually polls f until it is true, at most 10s.
func eventually(t testing.TB, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond) // polling interval, not synchronisation
	}
}

type harness struct {
	fs     *fakeFS
	engine *core.Engine
	pops   *pops
	counts *counts
	bridge *Bridge
}

func start(t *testing.T, fx string, tweak func(*Options)) *harness {
	t.Helper()
	h := &harness{fs: newFakeFS(t, loadFixture(t, fx)), engine: newEngine(t), pops: newPops(), counts: newCounts()}
	opts := Options{
		Addr: h.fs.addr(), Calls: h.engine, Popper: h.pops, Agents: loopbackAgents,
		Count: h.counts.add, BackoffMin: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond,
		DialTimeout: 500 * time.Millisecond, EndGrace: 200 * time.Millisecond, Budget: 2 * time.Second,
	}
	if tweak != nil {
		tweak(&opts)
	}
	b, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	h.bridge = b
	run(t, b)
	return h
}

// run runs b until the test ends and checks Run returns nil, promptly,
// leaving no goroutine behind.
func run(t *testing.T, b *Bridge) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("Run did not return after its context ended")
		}
		if ok, detail := b.Status(); ok {
			t.Errorf("Status after Run: connected (%s)", detail)
		}
		b.wg.Wait() // every goroutine the bridge started has ended
	})
}

// until returns the frames up to and including the first event named name
// on uuid (any leg if uuid is empty), and the rest.
func until(frames []frame, name, uuid string) ([]frame, []frame) {
	for i, f := range frames {
		if f.name == name && (uuid == "" || f.uuid == uuid) {
			return frames[:i+1], frames[i+1:]
		}
	}
	return frames, nil
}

func setvarFor(cmds []string, uuid string) []string {
	var out []string
	for _, c := range cmds {
		if strings.HasPrefix(c, "api uuid_setvar_multi "+uuid+" ") {
			out = append(out, c)
		}
	}
	return out
}

// The client speaks like the client in the capture: the same auth line, an
// event subscription in plain format (but only the events it needs, not
// ALL), then api commands.
func TestWireMatchesCapturedClient(t *testing.T) {
	h := start(t, "park", nil)
	h.fs.waitAccepted(t, 1)
	sent, err := os.ReadFile(filepath.Join(fixtureDir, "park.sent.txt"))
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(bytes.NewReader(sent))
	capAuth, _ := readCommand(r)
	capEvent, _ := readCommand(r)
	capAPI, _ := readCommand(r)
	got := h.fs.commands("")
	if len(got) < 2 || got[0] != capAuth {
		t.Fatalf("first command %q, the captured client sent %q", got, capAuth)
	}
	if !strings.HasPrefix(capEvent, "event plain ") || !strings.HasPrefix(got[1], "event plain ") {
		t.Fatalf("subscription %q, captured %q", got[1], capEvent)
	}
	for _, n := range strings.Fields(got[1])[2:] {
		if n == "ALL" {
			t.Fatal("subscribes to ALL")
		}
	}
	for _, want := range []string{"CHANNEL_CREATE", "CHANNEL_PARK", "CHANNEL_PROGRESS", "CHANNEL_HANGUP_COMPLETE"} {
		if !strings.Contains(got[1], want) {
			t.Errorf("subscription %q lacks %s", got[1], want)
		}
	}
	// An api command the bridge sends has the captured shape.
	fx := loadFixture(t, "park")
	frames := fx.render(1, "", nil)
	first, _ := until(frames, "CHANNEL_PARK", callUUID(1, 1))
	h.fs.play(t, h.fs.current(t), first)
	h.fs.waitFor(t, func() bool { return len(setvarFor(h.fs.cmds, callUUID(1, 1))) > 0 }, "uuid_setvar_multi")
	cmd := setvarFor(h.fs.commands("api "), callUUID(1, 1))[0]
	if strings.Fields(capAPI)[0] != "api" || strings.Contains(cmd, "\n") {
		t.Fatalf("api command %q, captured %q", cmd, capAPI)
	}
}

// The parked inbound leg gets its sticky_* variables; the outbound leg of
// the pair does not.
func TestParkedInboundCallGetsVariables(t *testing.T) {
	h := start(t, "park", nil)
	seedJane(t, h.engine)
	fx := loadFixture(t, "park")
	frames := fx.render(7, "", nil)
	a, b := callUUID(7, 0), callUUID(7, 1) // a: originate's outbound leg; b: inbound, runs the dialplan
	first, rest := until(frames, "CHANNEL_PARK", b)
	c := h.fs.current(t)
	h.fs.play(t, c, first)
	h.fs.waitFor(t, func() bool { return len(setvarFor(h.fs.cmds, b)) > 0 }, "variables on the inbound leg")
	got := setvarFor(h.fs.commands("api "), b)
	if len(got) != 1 {
		t.Fatalf("setvar commands for the inbound leg: %q (want exactly one)", got)
	}
	for _, want := range []string{
		"sticky_customer_ref=cust_jane", "sticky_level=", "sticky_recommendation=", "sticky_confidence=0.",
		"sticky_open_intent=refund_status", "sticky_attempts=1",
	} {
		if !strings.Contains(got[0], want) {
			t.Errorf("%q lacks %q", got[0], want)
		}
	}
	h.fs.play(t, c, rest)
	eventually(t, "the call to be saved", func() bool { _, ok := history(t, h.engine, "cust_jane", "fs-"+a); return ok })
	if n := len(setvarFor(h.fs.commands("api "), a)); n != 0 {
		t.Errorf("outbound leg got %d setvar commands", n)
	}
}

func history(t testing.TB, e *core.Engine, ref, callID string) (core.HistoryItem, bool) {
	t.Helper()
	p, err := e.Customer(context.Background(), ref, 50)
	if err != nil {
		return core.HistoryItem{}, false
	}
	for _, h := range p.History {
		if h.CallID == callID {
			return h, true
		}
	}
	return core.HistoryItem{}, false
}

// Hints the IVR put into sticky_* variables take part in the resolution.
func TestIVRHintsResolve(t *testing.T) {
	h := start(t, "park", nil)
	_, err := h.engine.End(context.Background(), core.EndRequest{
		CallID: "mail-1", CustomerRef: "cust_acct", Channel: "email",
		Hints: &core.Hints{ExternalIDs: map[string]string{"account_number": "AC-991"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	fx := loadFixture(t, "park")
	b := callUUID(3, 1)
	frames := fx.render(3, "", func(name, uuid string) map[string]string {
		if uuid == b {
			return map[string]string{"sticky_account_number": "AC-991"}
		}
		return nil
	})
	first, _ := until(frames, "CHANNEL_PARK", b)
	h.fs.play(t, h.fs.current(t), first)
	h.fs.waitFor(t, func() bool { return len(setvarFor(h.fs.cmds, b)) > 0 }, "variables")
	if got := setvarFor(h.fs.commands("api "), b)[0]; !strings.Contains(got, "sticky_customer_ref=cust_acct") {
		t.Fatalf("IVR account number not used: %q", got)
	}
}

// A caller id that failed STIR/SHAKEN verification (the verstat the
// dialplan copied into sticky_verstat) does not tag the call with the
// customer whose number it shows.
func TestFailedVerstatDoesNotReuse(t *testing.T) {
	for _, tc := range []struct{ verstat, want string }{
		{"TN-Validation-Passed-A", "sticky_recommendation=reuse"},
		{"TN-Validation-Failed", "sticky_recommendation=ignore"},
	} {
		t.Run(tc.verstat, func(t *testing.T) {
			h := start(t, "park", nil)
			fx := loadFixture(t, "park")
			b := callUUID(3, 1)
			frames := fx.render(3, "", func(name, uuid string) map[string]string {
				if uuid == b {
					return map[string]string{"sticky_verstat": tc.verstat}
				}
				return nil
			})
			first, _ := until(frames, "CHANNEL_PARK", b)
			if _, err := h.engine.End(context.Background(), core.EndRequest{CallID: "earlier", CustomerRef: "cust_owner", Hints: &core.Hints{ANI: jane}}); err != nil { // the fixture's caller
				t.Fatal(err)
			}
			h.fs.play(t, h.fs.current(t), first)
			h.fs.waitFor(t, func() bool { return len(setvarFor(h.fs.cmds, b)) > 0 }, "variables")
			if got := setvarFor(h.fs.commands("api "), b)[0]; !strings.Contains(got, tc.want) {
				t.Fatalf("verstat %s: %q, want %s", tc.verstat, got, tc.want)
			}
		})
	}
}

// The ringing agent leg pops that agent with the call's context, once.
func TestRingingCallPops(t *testing.T) {
	h := start(t, "ring", nil)
	seedJane(t, h.engine)
	fx := loadFixture(t, "ring")
	frames := fx.render(9, "", nil)
	a := callUUID(9, 0)
	first, rest := until(frames, "CHANNEL_PARK", "")
	c := h.fs.current(t)
	h.fs.play(t, c, first)
	got := h.pops.wait(t, 1)
	p := got[0]
	if p.CallID != "fs-"+a || p.PBX != "freeswitch" || p.PBXCallID != a || p.Agent != "1003" ||
		p.ANI != jane || p.DNIS != "1003" || p.RangAt.IsZero() {
		t.Fatalf("pop %+v", p)
	}
	if p.Context == nil || p.Context.CustomerRef != "cust_jane" || len(p.Context.OpenIntents) != 1 {
		t.Fatalf("pop context %+v", p.Context)
	}
	h.fs.play(t, c, rest)
	eventually(t, "hang-up saved", func() bool { _, ok := history(t, h.engine, "cust_jane", "fs-"+a); return ok })
	if n := len(h.pops.wait(t, 1)); n != 1 {
		t.Fatalf("%d pops, want 1", n)
	}
}

// Hang-up saves the phone interaction through End: the wrap-up variables,
// the duration, the DNIS — and the caller is who called, although
// FreeSWITCH rewrote the A-leg's caller id to "default" before it hung up.
func TestHangupSaves(t *testing.T) {
	for _, fx := range []string{"selfhangup", "ring"} {
		t.Run(fx, func(t *testing.T) {
			h := start(t, fx, nil)
			f := loadFixture(t, fx)
			a, b := callUUID(4, 0), callUUID(4, 1)
			frames := f.render(4, "", func(name, uuid string) map[string]string {
				if name == "CHANNEL_HANGUP_COMPLETE" && uuid == b {
					return map[string]string{"sticky_intent": "billing_inquiry", "sticky_intent_status": "resolved",
						"sticky_summary": "Explained the January invoice"}
				}
				return nil
			})
			// The A-leg (root) really is rewritten in the capture.
			var rewritten bool
			for _, fr := range frames {
				if fr.uuid == a && fr.name == "CHANNEL_HANGUP_COMPLETE" {
					rewritten = bytes.Contains(fr.body, []byte("Caller-Caller-ID-Number: default"))
				}
			}
			if !rewritten {
				t.Fatal("fixture no longer shows the caller-id rewrite")
			}
			first, rest := until(frames, "CHANNEL_PARK", "")
			c := h.fs.current(t)
			h.fs.play(t, c, first)
			h.fs.waitFor(t, func() bool { return len(setvarFor(h.fs.cmds, b)) > 0 }, "variables")
			h.fs.play(t, c, rest)
			var ref string
			eventually(t, "the interaction saved", func() bool {
				res, err := h.engine.Start(context.Background(), core.StartRequest{CallID: "probe-" + fx, Hints: core.Hints{ANI: jane}})
				if err != nil || res.CustomerRef == "" {
					return false
				}
				ref = res.CustomerRef
				_, ok := history(t, h.engine, ref, "fs-"+a)
				return ok
			})
			hi, _ := history(t, h.engine, ref, "fs-"+a)
			if hi.Intent != "billing_inquiry" || hi.IntentStatus != "resolved" || hi.Summary != "Explained the January invoice" || hi.DNIS != "1003" && hi.DNIS != "1002" {
				t.Fatalf("interaction %+v", hi)
			}
			if d := hi.EndedAt.Sub(hi.StartedAt.Time); d < time.Second || d > 4*time.Second {
				t.Fatalf("duration %v, FreeSWITCH reported ~3s", d)
			}
			p, _ := h.engine.Customer(context.Background(), ref, 10)
			for _, id := range p.Identifiers {
				if strings.Contains(id.Value, "default") {
					t.Fatalf("the rewritten caller id was linked: %+v", p.Identifiers)
				}
			}
			if n := h.counts.get("end_error"); n != 0 {
				t.Fatalf("end_error %d", n)
			}
		})
	}
}
