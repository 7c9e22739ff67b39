package asterisk

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/net/websocket"

	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/screenpop/screenpoptest"
)

// The load benchmarks replay rewritten copies of a captured call at a
// fixed rate through the fake Asterisk into a bridge on a real engine
// (Badger) that pops through a real NATS server, and measure from the
// moment the fake writes the triggering event to the moment a NATS
// subscriber holds the pop. Run them with a fixed call count, e.g.
//
//	go test -run '^$' -bench 'Load' -benchtime 2000x ./adapters/asterisk/

// The captures were made without ari.conf channelvars, so the bridge asks
// for the IVR's hints with three GETs per call; the Vars variants add the
// channelvars object that the sample ari.conf makes Asterisk send.
func BenchmarkLoadRing200(b *testing.B)       { loadRun(b, ModeObserve, "sip_ringing.jsonl", 200, false) }
func BenchmarkLoadRing500(b *testing.B)       { loadRun(b, ModeObserve, "sip_ringing.jsonl", 500, false) }
func BenchmarkLoadRing200Vars(b *testing.B)   { loadRun(b, ModeObserve, "sip_ringing.jsonl", 200, true) }
func BenchmarkLoadRing500Vars(b *testing.B)   { loadRun(b, ModeObserve, "sip_ringing.jsonl", 500, true) }
func BenchmarkLoadStasis200(b *testing.B)     { loadRun(b, ModeStasis, "sip_stasis.jsonl", 200, false) }
func BenchmarkLoadStasis500(b *testing.B)     { loadRun(b, ModeStasis, "sip_stasis.jsonl", 500, false) }
func BenchmarkLoadStasis200Vars(b *testing.B) { loadRun(b, ModeStasis, "sip_stasis.jsonl", 200, true) }
func BenchmarkLoadStasis500Vars(b *testing.B) { loadRun(b, ModeStasis, "sip_stasis.jsonl", 500, true) }

// withChannelvars adds what ari.conf channelvars= makes Asterisk put in
// every channel object.
func withChannelvars(lines []string) []string {
	const vars = `"language": "en", "channelvars": {"STICKY_EMAIL": "", "STICKY_CUSTOMER_ID": "", "STICKY_ACCOUNT_NUMBER": "", "STICKY_INTENT": "", "STICKY_INTENT_STATUS": "", "STICKY_SUMMARY": ""}}`
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = strings.ReplaceAll(l, `"language": "en"}`, vars)
	}
	return out
}

func loadRun(b *testing.B, mode, file string, rate int, channelvars bool) {
	n := b.N
	eng := newEngine(b)
	fake := newFake(b)
	popper, sub := screenpoptest.Start(b, eng)
	timed := &timedCalls{Calls: eng, byCall: map[string]time.Duration{}}
	spy := &spyCalls{Calls: timed, ends: make(chan core.EndRequest, n+16)}
	cnt := newCounter()

	// The trigger of the pop: the agent's Dial RINGING, or StasisStart.
	trigger := func(l string) bool {
		if mode == ModeStasis {
			return eventType(l) == "StasisStart"
		}
		return eventType(l) == "Dial" && strings.Contains(l, `"dialstatus": "RINGING"`)
	}
	base := fixture(b, file)
	if channelvars {
		base = withChannelvars(base)
	}
	type callLines struct {
		id         string
		head, tail []string // up to the trigger, and the rest
	}
	calls := make([]callLines, n)
	for i := range calls {
		v := variant(base, i+1, fmt.Sprintf("+1415%07d", i+1))
		head, tail := until(v, trigger)
		var id string
		if mode == ModeStasis {
			id = "ast-" + fmt.Sprintf("%d.0", 3000000000+i+1)
		} else {
			id = "ast-" + fmt.Sprintf("%d.1", 3000000000+i+1)
		}
		calls[i] = callLines{id: id, head: head, tail: tail}
	}

	var mu sync.Mutex
	sent := make(map[string]time.Time, n)
	got := make(map[string]time.Duration, n)
	all := make(chan struct{})
	_, err := sub.Subscribe("sticky.screenpop.>", func(m *nats.Msg) {
		at := time.Now()
		id := popCallID(m.Data)
		mu.Lock()
		defer mu.Unlock()
		if s, ok := sent[id]; ok {
			if _, dup := got[id]; !dup {
				got[id] = at.Sub(s)
				if len(got) == n {
					close(all)
				}
			}
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := sub.Flush(); err != nil {
		b.Fatal(err)
	}

	r := run(b, Options{URL: fake.url(), Mode: mode, Calls: spy, Popper: popper, Count: cnt.Count,
		Logger: testLogger(b)})
	ws := fake.accept()
	waitFor(b, "connected", func() bool { up, _ := r.b.Status(); return up })

	// In a real call the hang-up comes long after the ring; here the rest
	// of each call follows hold later, so calls overlap as they would.
	const hold = 500 * time.Millisecond
	type pending struct {
		at    time.Time
		lines []string
	}
	var tails []pending
	// How late a 1ms timer fires in this process meanwhile: on a shared
	// machine, the scheduling delay every figure above includes.
	var lateness []time.Duration
	stopProbe, probed := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(probed)
		for {
			t0 := time.Now()
			select {
			case <-stopProbe:
				return
			case <-time.After(time.Millisecond):
				lateness = append(lateness, time.Since(t0)-time.Millisecond)
			}
		}
	}()
	interval := time.Second / time.Duration(rate)
	b.ResetTimer()
	start := time.Now()
	for i, c := range calls {
		slot := start.Add(time.Duration(i) * interval)
		for len(tails) > 0 && !tails[0].at.After(slot) {
			send(b, ws, tails[0].lines)
			tails = tails[1:]
		}
		if d := time.Until(slot); d > 0 {
			<-time.After(d)
		}
		send(b, ws, c.head[:len(c.head)-1])
		mu.Lock()
		sent[c.id] = time.Now()
		mu.Unlock()
		send(b, ws, c.head[len(c.head)-1:])
		tails = append(tails, pending{slot.Add(hold), c.tail})
	}
	offered := float64(n) / time.Since(start).Seconds()
	for _, p := range tails {
		if d := time.Until(p.at); d > 0 {
			<-time.After(d)
		}
		send(b, ws, p.lines)
	}
	select {
	case <-all:
	case <-time.After(30 * time.Second):
	}
	ends := 0
	deadline := time.After(30 * time.Second)
wait:
	for ends < n {
		select {
		case <-spy.ends:
			ends++
		case <-deadline:
			break wait
		}
	}
	b.StopTimer()
	close(stopProbe)
	<-probed
	r.stop(b)

	// lat is event to pop; own is the same less the call's Start in the
	// core: what the bridge, the fake's socket and NATS add.
	mu.Lock()
	timed.mu.Lock()
	lat := make([]time.Duration, 0, len(got))
	own := make([]time.Duration, 0, len(got))
	for id, d := range got {
		lat = append(lat, d)
		own = append(own, d-timed.byCall[id])
	}
	timed.mu.Unlock()
	mu.Unlock()
	slices.Sort(lat)
	slices.Sort(own)
	at := func(ds []time.Duration, p float64) float64 {
		if len(ds) == 0 {
			return 0
		}
		return float64(ds[min(len(ds)-1, int(float64(len(ds))*p))].Microseconds()) / 1000
	}
	pct := func(p float64) float64 { return at(lat, p) }
	if mode == ModeStasis {
		fake.mu.Lock()
		cont := len(fake.continued)
		fake.mu.Unlock()
		b.ReportMetric(float64(n-cont), "not-continued")
	}
	b.ReportMetric(offered, "calls/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(pct(1), "max-ms")
	b.ReportMetric(float64(n-len(lat)), "lost-pops")
	b.ReportMetric(float64(n-ends), "lost-ends")
	b.ReportMetric(float64(cnt.get("backpressure")), "backpressure")
	timed.mu.Lock()
	slices.Sort(timed.d)
	b.ReportMetric(at(timed.d, 0.50), "core-start-p50-ms")
	b.ReportMetric(at(timed.d, 0.99), "core-start-p99-ms")
	timed.mu.Unlock()
	slices.Sort(lateness)
	b.ReportMetric(at(lateness, 0.99), "timer-late-p99-ms")
	b.ReportMetric(at(own, 0.50), "excl-core-p50-ms")
	b.ReportMetric(at(own, 0.99), "excl-core-p99-ms")
	b.Logf("%s %d calls at %.0f calls/s: pop p50 %.2fms p99 %.2fms max %.2fms; pops %d/%d, ends %d/%d; resolve_timeout=%d resolve_error=%d pop_error=%d end_error=%d",
		mode, n, offered, pct(0.5), pct(0.99), pct(1), len(lat), n, ends, n,
		cnt.get("resolve_timeout"), cnt.get("resolve_error"), cnt.get("pop_error"), cnt.get("end_error"))
}

func popCallID(data []byte) string {
	var p screenpoptest.Pop
	_ = json.Unmarshal(data, &p)
	return p.Call.CallID
}

func send(b *testing.B, ws *websocket.Conn, lines []string) {
	for _, l := range lines {
		if err := websocket.Message.Send(ws, l); err != nil {
			b.Fatalf("sending event: %v", err)
		}
	}
}

// timedCalls is the engine, with how long each Start took: the part of
// the latency that is the core's, not the bridge's.
type timedCalls struct {
	core.Calls
	mu     sync.Mutex
	d      []time.Duration
	byCall map[string]time.Duration
}

func (s *timedCalls) Start(ctx context.Context, req core.StartRequest) (*core.StartResult, error) {
	t := time.Now()
	r, err := s.Calls.Start(ctx, req)
	took := time.Since(t)
	s.mu.Lock()
	s.d = append(s.d, took)
	s.byCall[req.CallID] = took
	s.mu.Unlock()
	return r, err
}
