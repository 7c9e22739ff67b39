package screenpop_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sticky-cc/sticky/screenpop"
)

// BenchmarkPopDelivery paces pops at 1,000 per second through the embedded
// server on loopback and measures, per pop, the time from Pop being called
// to the agent's subscriber receiving it: live (a core subscription on the
// agent's subject) and through the stream (an ordered consumer, as the
// desktop reads), plus the time Pop takes to get JetStream's
// acknowledgement. Run: go test ./screenpop -run '^$' -bench PopDelivery -benchtime 5000x
func BenchmarkPopDelivery(b *testing.B) {
	e, clk := newEngine(b, time.Date(2026, 1, 26, 14, 0, 0, 0, time.UTC))
	seedJane(b, e, clk)
	svc := startService(b, screenpop.Options{Calls: e})
	waitReady(b, svc)
	template := ring(b, e, "bench", "alice")
	template.Queue = ""

	var mu sync.Mutex
	sent := map[string]time.Time{}
	var live, stream, acked []time.Duration
	got := make(chan struct{}, 1<<16)
	record := func(dst *[]time.Duration, id string, at time.Time) {
		mu.Lock()
		if t0, ok := sent[id]; ok {
			*dst = append(*dst, at.Sub(t0))
		}
		mu.Unlock()
		got <- struct{}{}
	}

	nc, _ := connectAgent(b, svc, "alice", "alice-secret")
	sub, err := nc.Subscribe(screenpop.AgentSubject("alice"), func(m *nats.Msg) {
		record(&live, m.Header.Get(jetstream.MsgIDHeader), time.Now())
	})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Unsubscribe()
	// The stream reader has its own connection, as a desktop would.
	desk, _ := connectAgent(b, svc, "alice", "alice-secret")
	js, _ := jetstream.New(desk)
	cons, err := js.OrderedConsumer(context.Background(), screenpop.StreamName, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{screenpop.AgentSubject("alice")}, DeliverPolicy: jetstream.DeliverNewPolicy,
	})
	if err != nil {
		b.Fatal(err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		record(&stream, m.Headers().Get(jetstream.MsgIDHeader), time.Now())
	})
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Stop()
	if err := nc.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := desk.Flush(); err != nil {
		b.Fatal(err)
	}

	const rate = 1000
	work := make(chan int, 1024)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range work {
				p := template
				p.PBXCallID = fmt.Sprintf("bench-%d-%d", b.N, i)
				id := "asterisk:" + p.PBXCallID + ":agent:alice"
				t0 := time.Now()
				mu.Lock()
				sent[id] = t0
				mu.Unlock()
				if err := svc.Pop(context.Background(), p); err != nil {
					b.Error(err)
				}
				d := time.Since(t0)
				mu.Lock()
				acked = append(acked, d)
				mu.Unlock()
			}
		})
	}
	b.ResetTimer()
	began := time.Now()
	for i := range b.N {
		// An absolute schedule: a late tick does not lower the rate.
		if d := time.Until(began.Add(time.Duration(i) * time.Second / rate)); d > 0 {
			time.Sleep(d)
		}
		work <- i
	}
	close(work)
	wg.Wait()
	for range 2 * b.N {
		select {
		case <-got:
		case <-time.After(10 * time.Second):
			b.Fatalf("only part of the pops arrived (live %d, stream %d of %d)", len(live), len(stream), b.N)
		}
	}
	elapsed := time.Since(began)
	b.StopTimer()

	mu.Lock()
	defer mu.Unlock()
	pl, pl99 := pct(live, 50), pct(live, 99)
	ps, ps99 := pct(stream, 50), pct(stream, 99)
	pa, pa99 := pct(acked, 50), pct(acked, 99)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "pops/s")
	b.ReportMetric(us(pl), "live-p50-µs")
	b.ReportMetric(us(pl99), "live-p99-µs")
	b.ReportMetric(us(ps), "stream-p50-µs")
	b.ReportMetric(us(ps99), "stream-p99-µs")
	b.ReportMetric(us(pa99), "ack-p99-µs")
	if b.N >= 1000 {
		fmt.Printf("screen-pop delivery, %d pops at %.0f/s: live subscriber p50 %v p99 %v max %v; stream consumer p50 %v p99 %v max %v; Pop acknowledged p50 %v p99 %v\n",
			b.N, float64(b.N)/elapsed.Seconds(), pl, pl99, pct(live, 100), ps, ps99, pct(stream, 100), pa, pa99)
	}
}

func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
