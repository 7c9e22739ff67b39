package freeswitch

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/screenpop/screenpoptest"
)

// countingCalls passes everything to the real engine and counts the Ends
// that succeeded.
type countingCalls struct {
	core.Calls
	ended  atomic.Int64
	mu     sync.Mutex
	starts []time.Duration
}

func (c *countingCalls) Start(ctx context.Context, req core.StartRequest) (*core.StartResult, error) {
	t0 := time.Now()
	res, err := c.Calls.Start(ctx, req)
	c.mu.Lock()
	c.starts = append(c.starts, time.Since(t0))
	c.mu.Unlock()
	return res, err
}

func (c *countingCalls) End(ctx context.Context, req core.EndRequest) (*core.EndResult, error) {
	res, err := c.Calls.End(ctx, req)
	if err == nil {
		c.ended.Add(1)
	}
	return res, err
}

// load replays n ringing calls (the "ring" capture, a distinct caller
// each) at rate calls per second through a fake FreeSWITCH into a bridge
// on a real engine, pops going out over a real NATS server. Each call hangs
// up hold after it rang. took is how long offering the n new calls took.
// It measures, per call, the time from FreeSWITCH
// writing the agent leg's CHANNEL_PROGRESS to an agent desktop receiving
// the pop on NATS.
func load(tb testing.TB, n, rate int, ringDelay, hold time.Duration) (lat []time.Duration, popped, ended int64, took time.Duration) {
	var noContext atomic.Int64
	defer func() {
		if k := noContext.Load(); k > 0 {
			tb.Errorf("%d pops without the caller's context", k)
		}
	}()
	calls := &countingCalls{Calls: newEngine(tb)}
	pops, sub := screenpoptest.Start(tb, calls)

	var mu sync.Mutex
	var readLag, popLag []time.Duration
	defer func() {
		tb.Logf("write→read p50 %v p99 %v; read→delivered p50 %v p99 %v", pct(readLag, .5), pct(readLag, .99), pct(popLag, .5), pct(popLag, .99))
	}()
	sent := make(map[string]time.Time, n)
	lat = make([]time.Duration, 0, n)
	var got atomic.Int64
	allPopped := make(chan struct{})
	_, err := sub.Subscribe("sticky.screenpop.agent.>", func(m *nats.Msg) {
		now := time.Now()
		var p screenpoptest.Pop
		if json.Unmarshal(m.Data, &p) != nil {
			return
		}
		if p.Context == nil || p.Context.CustomerRef == "" {
			noContext.Add(1)
		}
		mu.Lock()
		if t0, ok := sent[p.Call.CallID]; ok {
			lat = append(lat, now.Sub(t0))
			readLag = append(readLag, p.Call.RangAt.Sub(t0))
			popLag = append(popLag, now.Sub(p.Call.RangAt))
		}
		mu.Unlock()
		if got.Add(1) == int64(n) {
			close(allPopped)
		}
	})
	if err != nil {
		tb.Fatal(err)
	}
	if err := sub.Flush(); err != nil {
		tb.Fatal(err)
	}

	full := loadFixture(tb, "ring")
	fs := newFakeFS(tb, full)
	fx := *full
	fx.only = map[string]bool{}
	for _, e := range subscribed {
		fx.only[e] = true
	}
	// Render every call before the clock starts: the generator shares the
	// CPUs with the bridge.
	type callFrames struct{ created, ringing, rest []frame }
	prepared := make([]callFrames, n)
	for i := range prepared {
		num := fmt.Sprintf("%%2B1415555%04d", i%10000)
		frames := fx.render(1000+i, "", nil, "%2B14155551234", num)
		aleg := callUUID(1000+i, 0)
		first, rest := until(frames, "CHANNEL_PARK", "")
		created, ringing := first, []frame(nil)
		if ringDelay > 0 {
			for j, f := range first {
				if f.name == "CHANNEL_PROGRESS" && f.uuid == aleg {
					created, ringing = first[:j], first[j:]
					break
				}
			}
		}
		prepared[i] = callFrames{created, ringing, rest}
	}
	b, err := New(Options{Addr: fs.addr(), Calls: calls, Popper: pops, Agents: loopbackAgents,
		Budget: time.Second, EndGrace: time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- b.Run(ctx) }()
	defer func() { cancel(); <-runDone }()
	fs.waitAccepted(tb, 1)
	c := fs.current(tb)

	// Each call: its legs are created (and the caller resolved) at its
	// start; the agent leg rings ringDelay later (the dialplan routing the
	// call; 0 replays the capture back to back); it hangs up hold later.
	type pending struct {
		due    time.Time
		frames []frame
		stamp  string // call whose agent-leg CHANNEL_PROGRESS is in frames
		aleg   string
	}
	var later []pending
	schedule := func(p pending) {
		i := sort.Search(len(later), func(i int) bool { return later[i].due.After(p.due) })
		later = slices.Insert(later, i, p)
	}
	send := func(p pending) {
		for _, f := range p.frames {
			if p.stamp != "" && f.name == "CHANNEL_PROGRESS" && f.uuid == p.aleg {
				mu.Lock()
				sent[p.stamp] = time.Now()
				mu.Unlock()
			}
			fs.play(tb, c, []frame{f})
		}
	}
	interval := time.Second / time.Duration(rate)
	begin := time.Now()
	for i := 0; i < n; i++ {
		due := begin.Add(time.Duration(i) * interval)
		for len(later) > 0 && !later[0].due.After(due) {
			send(later[0])
			later = later[1:]
		}
		if d := time.Until(due); d > 0 {
			time.Sleep(d) // pacing the load generator, not synchronisation
		}
		aleg := callUUID(1000+i, 0)
		created, ringing, rest := prepared[i].created, prepared[i].ringing, prepared[i].rest
		prepared[i] = callFrames{}
		cur := pending{due: due, frames: created, stamp: "fs-" + aleg, aleg: aleg}
		send(cur)
		took = time.Since(begin) // new calls offered so far
		if ringing != nil {
			schedule(pending{due: due.Add(ringDelay), frames: ringing, stamp: "fs-" + aleg, aleg: aleg})
		}
		schedule(pending{due: due.Add(ringDelay + hold), frames: rest})
	}
	for _, p := range later {
		if d := time.Until(p.due); d > 0 {
			time.Sleep(d) // pacing
		}
		send(p)
	}
	deadline := time.After(60 * time.Second)
	select {
	case <-allPopped:
	case <-deadline:
	}
	for calls.ended.Load() < int64(n) {
		select {
		case <-deadline:
			goto out
		case <-time.After(10 * time.Millisecond): // polling the counter
		}
	}
out:
	calls.mu.Lock()
	tb.Logf("Start p50 %v p99 %v max %v", pct(calls.starts, .5), pct(calls.starts, .99), pct(calls.starts, 1))
	calls.mu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	return slices.Clone(lat), got.Load(), calls.ended.Load(), took
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p)
	return s[i]
}

// BenchmarkPopLatency200cps: event to pop delivered on NATS, at 200 new
// calls per second. Run: go test -run '^$' -bench PopLatency -benchtime 2000x
func BenchmarkPopLatency200cps(b *testing.B) {
	lat, popped, ended, took := load(b, b.N, 200, benchRingDelay, benchHold)
	b.ReportMetric(float64(pct(lat, 0.50).Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(pct(lat, 0.99).Microseconds())/1000, "p99_ms")
	b.ReportMetric(float64(pct(lat, 1).Microseconds())/1000, "max_ms")
	b.ReportMetric(float64(int64(b.N)-popped), "lost_pops")
	b.ReportMetric(float64(int64(b.N)-ended), "lost_ends")
	b.ReportMetric(float64(b.N)/took.Seconds(), "new_calls/s")
}

// BenchmarkNewCalls500cps: 500 new calls per second, each popped and saved.
// Run: go test -run '^$' -bench NewCalls500cps -benchtime 5000x
func BenchmarkNewCalls500cps(b *testing.B) {
	lat, popped, ended, took := load(b, b.N, 500, benchRingDelay, benchHold)
	b.ReportMetric(float64(pct(lat, 0.50).Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(pct(lat, 0.99).Microseconds())/1000, "p99_ms")
	b.ReportMetric(float64(int64(b.N)-popped), "lost_pops")
	b.ReportMetric(float64(int64(b.N)-ended), "lost_ends")
	b.ReportMetric(float64(b.N)/took.Seconds(), "new_calls/s")
}

// The load run as a test: a few hundred interleaved calls, none lost, each
// call's events handled in order (every pop has its context, every call is
// saved once).
func TestManyCallsNoneLost(t *testing.T) {
	const n = 300
	lat, popped, ended, _ := load(t, n, 500, 0, 100*time.Millisecond)
	if popped != n || ended != n || len(lat) != n {
		t.Fatalf("popped %d, ended %d, measured %d of %d", popped, ended, len(lat), n)
	}
}

// benchHold: how long each call lasts after it rang. In steady state a site
// ends as many calls per second as it starts, whatever their length, so a
// short hold gives the same mix of starts and hang-ups.
var benchHold = 500 * time.Millisecond

// benchRingDelay: how long after its legs were created the agent leg
// rings. With -ringdelay=0 the capture is replayed back to back and the pop
// also waits for the caller's resolution (the engine's Start).
var benchRingDelay time.Duration

func init() {
	flag.DurationVar(&benchRingDelay, "ringdelay", 50*time.Millisecond, "benchmarks: delay between a call's creation and its agent ringing")
	flag.DurationVar(&benchHold, "hold", benchHold, "benchmarks: how long a call lasts after it rang")
}
