package asterisk

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/CyCoreSystems/ari/v5"

	"github.com/sticky-cc/sticky/adapters/agentmap"

	"github.com/sticky-cc/sticky/core"
)

var varsetRE = regexp.MustCompile(`"variable": "[^"]*", "value": "[^"]*"`)

// setVar rewrites a captured ChannelVarset line to set name=value.
func setVar(t *testing.T, line, name, value string) string {
	t.Helper()
	if eventType(line) != "ChannelVarset" || !varsetRE.MatchString(line) {
		t.Fatalf("not a ChannelVarset line: %.80s", line)
	}
	return varsetRE.ReplaceAllLiteralString(line, `"variable": "`+name+`", "value": "`+value+`"`)
}

func isType(typ string) func(string) bool {
	return func(l string) bool { return eventType(l) == typ }
}

func TestStasisSetsVariablesAndContinues(t *testing.T) {
	ctx := context.Background()
	h := startRig(t, ModeStasis)
	// Jane chatted earlier about a refund, leaving her phone number.
	if _, err := h.eng.End(ctx, core.EndRequest{CallID: "chat_1", CustomerRef: "cust_jane",
		Intent: "refund_status", IntentStatus: core.StatusOpen,
		Variables: map[string]string{"channel": "chat", "phone": "+14155551234", "summary": "Asked about a refund"}}); err != nil {
		t.Fatal(err)
	}
	release := h.fake.holdSubscriptions(t)

	lines := fixture(t, "sip_stasis.jsonl")
	head, tail := until(lines, isType("StasisStart"))
	// The dialplan records the outcome in the captured ChannelVarset slots.
	n := 0
	for i, l := range tail {
		if eventType(l) == "ChannelVarset" && n < 3 {
			kv := [][2]string{{varIntent, "refund_status"}, {varIntentStatus, "Resolved"}, {varSummary, "Refund confirmed by IVR"}}[n]
			tail[i] = setVar(t, l, kv[0], kv[1])
			n++
		}
	}
	h.fake.play(h.ws, head...)
	const id = "1795549228.0"
	// The call leaves Stasis only once its channel is subscribed to, so
	// that a hang-up right after the continue is still heard: with the
	// subscription's answer held, the variables get set but the call stays.
	waitFor(t, "the variables set and the subscription asked for", func() bool {
		h.fake.mu.Lock()
		defer h.fake.mu.Unlock()
		return len(h.fake.vars[id]) >= 6 && h.fake.subsWaiting == 1
	})
	h.fake.mu.Lock()
	early := h.fake.continued[id]
	h.fake.mu.Unlock()
	if early {
		t.Error("continued before the channel subscription was in place")
	}
	release()
	h.fake.waitContinued(id)
	got := h.fake.varsOf(id)
	want := map[string]string{"STICKY_CUSTOMER_REF": "cust_jane", "STICKY_OPEN_INTENT": "refund_status",
		"STICKY_ATTEMPTS": "1", "STICKY_RECOMMENDATION": "ignore", "STICKY_LEVEL": "low", "STICKY_CONFIDENCE": "0.40"}
	for k, v := range want {
		if k == "STICKY_CONFIDENCE" || k == "STICKY_LEVEL" || k == "STICKY_RECOMMENDATION" {
			if got[k] == "" {
				t.Errorf("%s not set", k)
			}
			continue
		}
		if got[k] != v {
			t.Errorf("%s = %q, want %q (all: %v)", k, got[k], v, got)
		}
	}

	p := recvPop(t, h.popped)
	if p.CallID != "ast-"+id || p.PBX != "asterisk" || p.PBXCallID != id || p.ANI != "+14155551234" ||
		p.DNIS != "5551000" || p.Context == nil || p.Context.CustomerRef != "cust_jane" {
		t.Errorf("pop = %+v", p)
	}

	h.fake.play(h.ws, tail...)
	end := recvEnd(t, h.spy.ends)
	if end.CallID != "ast-"+id || !end.Merge || end.Intent != "refund_status" || end.IntentStatus != "resolved" ||
		end.Variables["summary"] != "Refund confirmed by IVR" {
		t.Errorf("end = %+v", end)
	}
	// The hang-up is ChannelDestroyed, not the StasisEnd of the continue.
	if want := time.Date(2026, 11, 24, 19, 40, 32, 79e6, time.UTC); !end.EndedAt.Equal(want) {
		t.Errorf("ended at %v, want %v", end.EndedAt, want)
	}
	prof, err := h.eng.Customer(ctx, "cust_jane", 10)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, h := range prof.History {
		if h.CallID == "ast-"+id {
			found = true
			if h.Channel != "phone" || h.DNIS != "5551000" || h.Summary != "Refund confirmed by IVR" || h.IntentStatus != "resolved" {
				t.Errorf("history item = %+v", h)
			}
			if d := h.EndedAt.Sub(h.StartedAt.Time); d < 4*time.Second || d > 5*time.Second {
				t.Errorf("duration %v, want the captured ~4s", d)
			}
		}
	}
	if !found {
		t.Errorf("call missing from history: %+v", prof.History)
	}
	if len(prof.OpenIntents) != 0 {
		t.Errorf("refund_status was resolved on the phone; open intents: %+v", prof.OpenIntents)
	}
	h.fake.mu.Lock()
	q, subs, atContinue := h.fake.queries[0], h.fake.subs, h.fake.subsAtContinue[id]
	h.fake.mu.Unlock()
	if !slices.Contains(atContinue, "channel:"+id) {
		t.Errorf("subscriptions when the call was continued = %v, want the call's channel", atContinue)
	}
	if strings.Contains(q, "subscribeAll") || !strings.Contains(q, "app=sticky") {
		t.Errorf("stasis mode websocket query = %q", q)
	}
	if len(subs) != 1 || subs[0] != "channel:"+id {
		t.Errorf("subscriptions = %v, want the call's channel (to see its hang-up)", subs)
	}
	h.r.stop(t)
	for _, ev := range []string{"resolve_error", "resolve_timeout", "continue_error", "pop_error", "end_error"} {
		if n := h.cnt.get(ev); n != 0 {
			t.Errorf("%s counted %d times", ev, n)
		}
	}
}

func TestStasisBudgetContinuesWithoutVariables(t *testing.T) {
	eng := newEngine(t)
	fake := newFake(t)
	popper, sub := startNATS(t)
	popped := pops(t, sub)
	spy := &spyCalls{Calls: eng, ends: make(chan core.EndRequest, 8), gate: make(chan struct{})}
	cnt := newCounter()
	run(t, Options{URL: fake.url(), Mode: ModeStasis, Budget: 30 * time.Millisecond, Calls: spy, Popper: popper, Count: cnt.Count})
	ws := fake.accept()

	head, tail := until(fixture(t, "stasis.jsonl"), isType("StasisStart"))
	fake.play(ws, head...)
	const id = "1795549295.1" // the ;2 half of the Local channel entered Stasis
	fake.waitContinued(id)
	if v := fake.varsOf(id); len(v) != 0 {
		t.Errorf("variables set although resolving was over budget: %v", v)
	}
	if cnt.get("resolve_timeout") != 1 {
		t.Errorf("resolve_timeout counted %d times", cnt.get("resolve_timeout"))
	}
	// The slow core answers at last: the pop and the end still happen.
	close(spy.gate)
	p := recvPop(t, popped)
	if p.CallID != "ast-"+id || p.ANI != "+14155551234" {
		t.Errorf("pop = %+v", p)
	}
	fake.play(ws, tail...)
	if end := recvEnd(t, spy.ends); end.CallID != "ast-"+id {
		t.Errorf("end = %+v", end)
	}
}

func TestObserveRingingPopsAgent(t *testing.T) {
	cases := []struct {
		file, call, peer, ani, dnis, queue string
	}{
		{"ringing.jsonl", "1795549300.3", "1795549300.4", "+14155559876", "200", ""},
		{"sip_ringing.jsonl", "1795549246.1", "1795549246.2", "+14155559876", "200", ""},
		{"sip_queue.jsonl", "1795549262.4", "1795549262.5", "+14155550300", "300", "sticky-q"},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			h := startRig(t, ModeObserve)
			h.fake.play(h.ws, fixture(t, tc.file)...)

			p := recvPop(t, h.popped)
			if p.Agent != "agent" || p.CallID != "ast-"+tc.call || p.PBXCallID != tc.peer || p.ANI != tc.ani ||
				p.DNIS != tc.dnis || p.Queue != tc.queue || p.Context == nil || p.Context.CustomerRef == "" {
				t.Errorf("pop = %+v", p)
			}
			if p.RangAt.IsZero() || p.RangAt.Year() != 2026 {
				t.Errorf("rang_at = %v, want the Dial event's time", p.RangAt)
			}
			end := recvEnd(t, h.spy.ends)
			if end.CallID != "ast-"+tc.call || !end.Merge || end.EndedAt.IsZero() {
				t.Errorf("end = %+v", end)
			}
			h.r.stop(t)
			if err := h.sub.Flush(); err != nil {
				t.Fatal(err)
			}
			if len(h.popped) != 0 {
				t.Errorf("%d extra pops: one ringing agent pops once", len(h.popped))
			}
			h.fake.mu.Lock()
			q, subs := h.fake.queries[0], h.fake.subs
			cont := len(h.fake.continued)
			h.fake.mu.Unlock()
			if !strings.Contains(q, "subscribeAll=true") {
				t.Errorf("observe mode websocket query = %q", q)
			}
			if len(subs) == 0 || subs[0] != "channel:" {
				t.Errorf("subscriptions = %v, want channel: (all channels)", subs)
			}
			if cont != 0 {
				t.Errorf("observe mode touched %d channels it does not own", cont)
			}
		})
	}
}

func TestBothModesAtOnce(t *testing.T) {
	eng := newEngine(t)
	fake := newFake(t)
	popper, sub := startNATS(t)
	popped := pops(t, sub)
	spy := &spyCalls{Calls: eng, ends: make(chan core.EndRequest, 8)}
	run(t, Options{URL: fake.url(), Mode: ModeBoth, Calls: spy, Popper: popper})
	ws := fake.accept()

	head, tail := until(fixture(t, "sip_stasis.jsonl"), isType("StasisStart"))
	fake.play(ws, head...)
	fake.waitContinued("1795549228.0")
	fake.play(ws, tail...)
	fake.play(ws, fixture(t, "sip_ringing.jsonl")...)
	got := map[string]string{}
	for range 2 {
		p := recvPop(t, popped)
		got[p.CallID] = p.Agent
	}
	if a, ok := got["ast-1795549228.0"]; !ok || a != "" {
		t.Errorf("stasis pop missing or with agent: %v", got)
	}
	if got["ast-1795549246.1"] != "agent" {
		t.Errorf("ringing pop missing: %v", got)
	}
	ended := map[string]bool{}
	for range 2 {
		ended[recvEnd(t, spy.ends).CallID] = true
	}
	if !ended["ast-1795549228.0"] || !ended["ast-1795549246.1"] {
		t.Errorf("ends = %v", ended)
	}
}

func TestAsteriskRestartMidCall(t *testing.T) {
	h := startRig(t, ModeObserve)

	lines := fixture(t, "sip_ringing.jsonl")
	head, _ := until(lines, func(l string) bool { return eventType(l) == "Dial" && strings.Contains(l, `"dialstatus": "RINGING"`) })
	h.fake.play(h.ws, head...)
	if p := recvPop(t, h.popped); p.CallID != "ast-1795549246.1" {
		t.Fatalf("pop = %+v", p)
	}

	// Asterisk restarts while the agent's phone rings: the call is gone.
	h.fake.restart("02:fc:00:00:00:02")
	h.ws = h.fake.accept()
	end := recvEnd(t, h.spy.ends)
	if end.CallID != "ast-1795549246.1" {
		t.Errorf("end = %+v", end)
	}
	waitFor(t, "reconnected status", func() bool { up, _ := h.r.b.Status(); return up })
	if h.cnt.get("reconnect") != 1 || h.cnt.get("ended_while_disconnected") != 1 {
		t.Errorf("reconnect=%d ended_while_disconnected=%d", h.cnt.get("reconnect"), h.cnt.get("ended_while_disconnected"))
	}

	// The next call after the restart works end to end.
	next := variant(lines, 1, "+14155550001")
	h.fake.play(h.ws, next...)
	p := recvPop(t, h.popped)
	if p.Agent != "agent" || p.ANI != "+14155550001" || p.CallID != "ast-3000000001.1" {
		t.Errorf("pop after restart = %+v", p)
	}
	if end := recvEnd(t, h.spy.ends); end.CallID != "ast-3000000001.1" {
		t.Errorf("end after restart = %+v", end)
	}
	h.fake.mu.Lock()
	subs := len(h.fake.subs)
	h.fake.mu.Unlock()
	if subs != 2 {
		t.Errorf("%d subscriptions, want one per connection", subs)
	}
}

func TestBlipKeepsLiveCalls(t *testing.T) {
	eng := newEngine(t)
	fake := newFake(t)
	popper, sub := startNATS(t)
	popped := pops(t, sub)
	spy := &spyCalls{Calls: eng, ends: make(chan core.EndRequest, 8)}
	run(t, Options{URL: fake.url(), Mode: ModeObserve, Calls: spy, Popper: popper})
	ws := fake.accept()
	lines := fixture(t, "sip_ringing.jsonl")
	head, tail := until(lines, func(l string) bool { return eventType(l) == "Dial" && strings.Contains(l, `"dialstatus": "RINGING"`) })
	fake.play(ws, head...)
	recvPop(t, popped)

	// The websocket drops but Asterisk keeps its channels: the call goes on.
	// The caller hangs up only after the bridge has looked at the channels
	// again (before, the bridge would rightly find the call gone).
	listed := fake.listCount()
	fake.mu.Lock()
	conns := fake.conns
	fake.conns = nil
	fake.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	ws = fake.accept()
	fake.waitLists(listed)
	fake.play(ws, tail...)
	end := recvEnd(t, spy.ends)
	if want := time.Date(2026, 11, 24, 19, 40, 51, 346e6, time.UTC); end.CallID != "ast-1795549246.1" || !end.EndedAt.Equal(want) {
		t.Errorf("end = %+v; want the captured hang-up", end)
	}
}

func TestReconnectsDoNotLeakGoroutines(t *testing.T) {
	eng := newEngine(t)
	fake := newFake(t)
	popper, _ := startNATS(t)
	r := run(t, Options{URL: fake.url(), Mode: ModeObserve, Calls: eng, Popper: popper})
	fake.accept()
	waitFor(t, "connected", func() bool { up, _ := r.b.Status(); return up })
	base := runtime.NumGoroutine()
	for i := range 20 {
		fake.restart("02:fc:00:00:00:" + string(rune('a'+i)))
		fake.accept()
		waitFor(t, "connected", func() bool { up, _ := r.b.Status(); return up })
	}
	waitFor(t, "goroutines back to the level of one connection", func() bool {
		return runtime.NumGoroutine() <= base+2
	})
	before := runtime.NumGoroutine()
	r.stop(t)
	if after := runtime.NumGoroutine(); after >= before {
		t.Errorf("goroutines %d after Run returned, %d before", after, before)
	}
}

func TestSilentAsteriskDoesNotHangStartup(t *testing.T) {
	// A port that accepts connections and never answers a byte.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	})
	// And an Asterisk whose REST answers but whose websocket never does.
	hang := make(chan struct{})
	silentWS := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/asterisk/info") {
			w.Write([]byte(`{"system":{"entity_id":"x","version":"22"},"status":{"startup_time":"2026-11-24T19:00:00.000+0000","last_reload_time":"2026-11-24T19:00:00.000+0000"}}`))
			return
		}
		<-hang
	}))
	t.Cleanup(func() { close(hang); silentWS.Close() })

	for name, url := range map[string]string{"silent port": "http://" + ln.Addr().String() + "/ari", "silent websocket": silentWS.URL + "/ari"} {
		t.Run(name, func(t *testing.T) {
			cnt := newCounter()
			r := run(t, Options{URL: url, Calls: newEngine(t), Popper: natsPopper{},
				RESTTimeout: 50 * time.Millisecond, DialTimeout: 50 * time.Millisecond, Count: cnt.Count})
			if up, detail := r.b.Status(); up || detail == "" {
				t.Errorf("Status() = %v, %q", up, detail)
			}
			waitFor(t, "three failed attempts", func() bool { return cnt.get("connect_error") >= 3 })
			if up, detail := r.b.Status(); up || !strings.Contains(detail, "retrying") {
				t.Errorf("Status() = %v, %q", up, detail)
			}
			r.stop(t)
		})
	}
}

func TestMalformedEventsAreSkipped(t *testing.T) {
	eng := newEngine(t)
	fake := newFake(t)
	popper, sub := startNATS(t)
	popped := pops(t, sub)
	cnt := newCounter()
	run(t, Options{URL: fake.url(), Mode: ModeObserve, Calls: eng, Popper: popper, Count: cnt.Count})
	ws := fake.accept()
	lines := fixture(t, "sip_ringing.jsonl")
	dial := ""
	for _, l := range lines {
		if eventType(l) == "Dial" {
			dial = l
			break
		}
	}
	fake.play(ws,
		`{not json`,
		`[1,2,3]`,
		`{"type": "Dial", "peer": 5}`,
		`{"type": "StasisStart", "timestamp": "x"}`,
		strings.Replace(dial, `"type": "Dial"`, `"type": "FutureEvent"`, 1), // unknown: skipped quietly
		dial[:len(dial)/2], // truncated
	)
	fake.play(ws, lines...)
	if p := recvPop(t, popped); p.Agent != "agent" {
		t.Errorf("pop = %+v", p)
	}
	if n := cnt.get("malformed_event"); n != 5 {
		t.Errorf("malformed_event = %d, want 5", n)
	}
}

func TestRESTTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	t.Cleanup(func() { close(release); srv.Close() })
	b, err := New(Options{URL: srv.URL + "/ari", User: "u", Password: "p", Calls: newEngine(t), Popper: natsPopper{},
		RESTTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	err = b.call(context.Background(), func() error {
		return b.ari.Channel().SetVariable(ari.NewKey(ari.ChannelKey, "1.1"), "X", "1")
	})
	if err == nil {
		t.Fatal("a request to a hung Asterisk must fail")
	}
	// The request itself ended too (the injected client has a timeout),
	// not only the wait for it.
	done := make(chan struct{})
	go func() { b.rest.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the REST request inside ari/v5 is still running: its http.Client has no timeout")
	}
}

func TestNewChecksOptions(t *testing.T) {
	base := Options{User: "u", Password: "p", Calls: newEngine(t), Popper: natsPopper{}}
	for name, mut := range map[string]func(*Options){
		"bad url":   func(o *Options) { o.URL = "127.0.0.1:8088" },
		"bad ws":    func(o *Options) { o.WSURL = "http://x/ari/events" },
		"no user":   func(o *Options) { o.User = "" },
		"bad mode":  func(o *Options) { o.Mode = "spy" },
		"bad app":   func(o *Options) { o.App = "a b" },
		"bad rule":  func(o *Options) { o.Agents = []agentmap.Rule{{Pattern: "(", Agent: "$1"}} },
		"no popper": func(o *Options) { o.Popper = nil },
	} {
		o := base
		mut(&o)
		if _, err := New(o); err == nil {
			t.Errorf("%s: New accepted %+v", name, o)
		}
	}
	o := base
	o.URL = "https://pbx.example:8089/ari/"
	b, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if b.wsURL != "wss://pbx.example:8089/ari/events" || b.opts.App != "sticky" || b.opts.Mode != ModeStasis || b.opts.Budget != 300*time.Millisecond {
		t.Errorf("defaults: ws=%q app=%q mode=%q budget=%v", b.wsURL, b.opts.App, b.opts.Mode, b.opts.Budget)
	}
}

func FuzzDecode(f *testing.F) {
	for _, name := range []string{"stasis.jsonl", "ringing.jsonl", "sip_queue.jsonl"} {
		for _, l := range fixture(f, name) {
			f.Add([]byte(l))
		}
	}
	f.Add([]byte(`{"type":"Dial","peer":{"id":""}}`))
	f.Fuzz(func(t *testing.T, msg []byte) {
		ev, err := decode(msg)
		if err != nil && ev != nil {
			t.Fatal("an error with an event")
		}
		if ev != nil {
			switch ev.Type {
			case "Dial":
				if ev.Peer == nil {
					t.Fatal("Dial without peer passed")
				}
			case "ApplicationReplaced":
			default:
				if ev.Channel == nil {
					t.Fatalf("%s without channel passed", ev.Type)
				}
			}
			_ = ev.Channel.queue()
			_ = ev.Channel.callerNumber()
		}
	})
}

func TestIVRHints(t *testing.T) {
	ctx := context.Background()
	for _, viaChannelvars := range []bool{true, false} {
		name := map[bool]string{true: "channelvars", false: "GET variable"}[viaChannelvars]
		t.Run(name, func(t *testing.T) {
			eng := newEngine(t)
			// Known from an earlier chat by email and account number only.
			if _, err := eng.End(ctx, core.EndRequest{CallID: "chat_9", CustomerRef: "cust_acct",
				Variables: map[string]string{"channel": "chat", "email": "jane@example.test", "account_number": "AC-77"}}); err != nil {
				t.Fatal(err)
			}
			fake := newFake(t)
			popper, sub := startNATS(t)
			popped := pops(t, sub)
			run(t, Options{URL: fake.url(), Mode: ModeObserve, Calls: eng, Popper: popper})
			ws := fake.accept()
			lines := fixture(t, "sip_ringing.jsonl")
			if viaChannelvars {
				lines = withChannelvars(lines)
				for i, l := range lines {
					if strings.Contains(l, `"id": "1795549246.1"`) {
						l = strings.ReplaceAll(l, `"STICKY_EMAIL": ""`, `"STICKY_EMAIL": "Jane@Example.test"`)
						lines[i] = strings.ReplaceAll(l, `"STICKY_ACCOUNT_NUMBER": ""`, `"STICKY_ACCOUNT_NUMBER": "AC-77"`)
					}
				}
			} else {
				fake.mu.Lock()
				fake.vars["1795549246.1"] = [][2]string{{"STICKY_EMAIL", "Jane@Example.test"}, {"STICKY_ACCOUNT_NUMBER", "AC-77"}}
				fake.mu.Unlock()
			}
			fake.play(ws, lines...)
			p := recvPop(t, popped)
			if p.Context == nil || p.Context.CustomerRef != "cust_acct" {
				t.Fatalf("pop context = %+v, want cust_acct found by the IVR's email and account number", p.Context)
			}
			fake.mu.Lock()
			gets := fake.gets
			fake.mu.Unlock()
			if viaChannelvars && gets != 0 {
				t.Errorf("%d GET variable requests although the events carry channelvars", gets)
			}
			if !viaChannelvars && gets != 3 {
				t.Errorf("%d GET variable requests, want one per hint variable", gets)
			}
		})
	}
}

// The dialplan hands Asterisk's STIR/SHAKEN verification to the bridge in
// STICKY_ATTESTATION and STICKY_VERIFY_RESULT: a caller id that failed it
// does not pop the customer whose number it shows.
func TestSTIRShakenVerificationReachesTheEngine(t *testing.T) {
	ctx := context.Background()
	eng := newEngine(t)
	if _, err := eng.End(ctx, core.EndRequest{CallID: "earlier", CustomerRef: "cust_owner", Hints: &core.Hints{ANI: "+14155559876"}}); err != nil {
		t.Fatal(err)
	}
	fake := newFake(t)
	popper, sub := startNATS(t)
	popped := pops(t, sub)
	run(t, Options{URL: fake.url(), Mode: ModeObserve, Calls: eng, Popper: popper})
	ws := fake.accept()
	lines := withChannelvars(fixture(t, "sip_ringing.jsonl"))
	for i, l := range lines {
		lines[i] = strings.ReplaceAll(l, `"STICKY_SUMMARY": ""}`, `"STICKY_SUMMARY": "", "STICKY_ATTESTATION": "A", "STICKY_VERIFY_RESULT": "Signature verification failed"}`)
	}
	fake.play(ws, lines...)
	p := recvPop(t, popped)
	if p.Context == nil || p.Context.CustomerRef == "cust_owner" || p.Context.Identity.Recommendation == core.RecommendReuse {
		t.Fatalf("pop context = %+v: a caller id that failed verification popped its owner", p.Context)
	}
	found := false
	for _, s := range p.Context.Identity.Explanation {
		found = found || s.Source == "attestation:failed"
	}
	if !found {
		t.Errorf("explanation %+v does not name the failed verification", p.Context.Identity.Explanation)
	}
}

// ari/v5 sends REST through a zero http.Client (2 idle connections per
// host) and leaves bodies it does not decode unread, which costs the
// connection: the bridge's own transport must keep reusing a few.
func TestRESTReusesConnections(t *testing.T) {
	fake := newFake(t)
	popper, sub := startNATS(t)
	popped := pops(t, sub)
	run(t, Options{URL: fake.url(), Mode: ModeStasis, Calls: newEngine(t), Popper: popper})
	ws := fake.accept()
	lines := fixture(t, "sip_stasis.jsonl")
	const calls = 30
	for i := range calls {
		head, tail := until(variant(lines, i+1, fmt.Sprintf("+1415555%04d", i)), isType("StasisStart"))
		fake.play(ws, head...)
		fake.waitContinued(fmt.Sprintf("%d.0", 3000000000+i+1))
		fake.play(ws, tail...)
		recvPop(t, popped)
	}
	fake.mu.Lock()
	dials := fake.dials
	fake.mu.Unlock()
	// Each call made 9 requests (3 GET variable, subscribe, 4 SET, continue).
	if dials > 8 {
		t.Errorf("%d connections for %d calls' REST requests: they are not being reused", dials, calls)
	}
}

// An agent calling an agent rings with an extension as the caller number.
// It identifies no customer: counted as an internal call, not resolved, not
// saved (the agent's pop shows the extension, without context), and without
// the resolve_error and end_error (and their warnings) that asking the
// engine about "1002" used to cost. The external
// call after it is handled as usual.
func TestInternalCallIsNotResolved(t *testing.T) {
	h := startRig(t, ModeObserve)
	lines := fixture(t, "sip_ringing.jsonl")
	internal, external := variant(lines, 1, "1002"), variant(lines, 2, "")
	h.fake.play(h.ws, internal...)
	h.fake.play(h.ws, external...)

	// Both agents' phones ring and pop; the internal call's pop says who
	// rings (1002) with no customer context.
	for range 2 {
		p := recvPop(t, h.popped)
		internal := p.ANI == "1002"
		if internal == (p.Context != nil) || !internal && p.ANI != "+14155559876" {
			t.Errorf("pop %+v", p)
		}
	}
	end := recvEnd(t, h.spy.ends)
	if end.CallID != "ast-3000000002.1" {
		t.Errorf("end %+v, want the external call's", end)
	}
	h.r.stop(t)
	if len(h.spy.ends) != 0 || len(h.popped) != 0 {
		t.Errorf("%d more ends, %d more pops", len(h.spy.ends), len(h.popped))
	}
	if h.cnt.get("internal_call") != 1 || h.cnt.get("resolve_error") != 0 || h.cnt.get("end_error") != 0 {
		t.Errorf("counts: internal_call %d resolve_error %d end_error %d", h.cnt.get("internal_call"), h.cnt.get("resolve_error"), h.cnt.get("end_error"))
	}
}
