package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sticky-cc/sticky/cmd/internal/config"
	"github.com/sticky-cc/sticky/cmd/internal/daemon"
)

const testKey = "load-test-key"

// startBridge runs the real bridge process in-process (engine on Badger in
// a temp dir, HTTP API on a free port, embedded NATS) until the test ends.
func startBridge(t *testing.T) string {
	t.Helper()
	env := map[string]string{
		"STICKY_DATA_DIR": t.TempDir(), "STICKY_HTTP_ADDR": "127.0.0.1:0",
		"STICKY_NATS_ADDR": "127.0.0.1:0", "STICKY_NATS_WS_ADDR": "127.0.0.1:0",
		"STICKY_API_KEYS": testKey, "STICKY_RATE_PER_SECOND": "100000",
	}
	cfg, err := config.Load("test", nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	noPBX := func(daemon.Deps) (daemon.PBX, string, error) { return nil, "load test", nil }
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	var logs bytes.Buffer
	go func() {
		done <- daemon.Run(ctx, "test", cfg, noPBX, daemon.NewLogger(cfg, &syncWriter{w: &logs}), func(a daemon.Addrs) { addr <- a.HTTP })
	}()
	select {
	case a := <-addr:
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("bridge shutdown: %v", err)
			}
		})
		return "http://" + a
	case err := <-done:
		cancel()
		t.Fatalf("bridge: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("bridge did not start")
	}
	return ""
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// TestLoadAgainstRealBridge drives a real bridge at 200 req/s for 3 s and
// checks that nothing failed and that every end the bridge acknowledged
// is in the store: the customer's history holds the interaction.
func TestLoadAgainstRealBridge(t *testing.T) {
	url := startBridge(t)
	var mu sync.Mutex
	var acks []Ack
	var progress atomic.Int32
	rep, err := Run(context.Background(), Config{
		URL: url, Keys: []string{testKey}, Rate: 200, Duration: 3 * time.Second,
		Concurrency: 16, Customers: 50, Mix: 0.75, RunID: "t1", Seed: 7,
		Every: time.Second, Progress: func(Progress) { progress.Add(1) },
		PID:   os.Getpid(),
		Acked: func(a Ack) { mu.Lock(); acks = append(acks, a); mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	printReport(&out, rep)
	t.Log("\n" + out.String())
	if rep.ErrorCount() != 0 || rep.Skipped != 0 {
		t.Fatalf("errors: %v, not sent %d, skipped %d", rep.Errors, rep.NotSent, rep.Skipped)
	}
	// 200 req/s for 3 s at 1.75 requests per call: 342 calls
	if rep.Calls < 300 || rep.Requests != rep.Starts+rep.Ends || rep.Ends != rep.Calls {
		t.Fatalf("calls %d, requests %d = %d starts + %d ends", rep.Calls, rep.Requests, rep.Starts, rep.Ends)
	}
	if int64(len(acks)) != rep.Ends || rep.OK != rep.Requests {
		t.Fatalf("%d acks for %d ends, %d ok of %d", len(acks), rep.Ends, rep.OK, rep.Requests)
	}
	if rep.Start.Count() == 0 || rep.Start.Count()+rep.End.Count() != rep.Latency.Count() {
		t.Fatalf("histograms: start %d end %d all %d", rep.Start.Count(), rep.End.Count(), rep.Latency.Count())
	}
	// identities repeat: 50 callers, several hundred calls
	if rep.Customers > 50*2 || rep.Customers < 10 {
		t.Fatalf("%d distinct customers for 50 callers", rep.Customers)
	}
	if rep.RSS.Start <= 0 || rep.RSS.Max < rep.RSS.Start || rep.RSS.Max < rep.RSS.End {
		t.Fatalf("rss %+v", rep.RSS)
	}
	if progress.Load() < 2 {
		t.Fatalf("%d progress reports in 3 s at one per second", progress.Load())
	}

	byRef := map[string]map[string]string{}
	for _, a := range acks {
		if byRef[a.CustomerRef] == nil {
			byRef[a.CustomerRef] = map[string]string{}
		}
		byRef[a.CustomerRef][a.CallID] = a.Channel
	}
	for ref, calls := range byRef {
		req, _ := http.NewRequest("GET", url+"/v1/customers/"+ref+"?history_limit=1000", nil)
		req.Header.Set("Authorization", "Bearer "+testKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var p struct {
			History []struct {
				CallID  string `json:"call_id"`
				Channel string `json:"channel"`
				Summary string `json:"summary"`
			} `json:"history"`
		}
		err = json.NewDecoder(resp.Body).Decode(&p)
		resp.Body.Close()
		if resp.StatusCode != 200 || err != nil {
			t.Fatalf("customer %s: %d %v", ref, resp.StatusCode, err)
		}
		seen := map[string]bool{}
		for _, h := range p.History {
			if ch, ok := calls[h.CallID]; ok {
				if h.Channel != ch || !strings.HasPrefix(h.Summary, "load test "+h.CallID) {
					t.Errorf("customer %s call %s: channel %q summary %q, want %s", ref, h.CallID, h.Channel, h.Summary, ch)
				}
				seen[h.CallID] = true
			}
		}
		for id := range calls {
			if !seen[id] {
				t.Errorf("acknowledged end %s is not in customer %s's history", id, ref)
			}
		}
	}
	t.Logf("%d acknowledged ends of %d customers all found in the store", len(acks), len(byRef))
}

// TestLatencyCountsTimeWaitingBehindAStall is the coordinated-omission
// check: with one worker and a server that stalls on its first request,
// the calls scheduled during the stall must report the time they waited.
// A closed-loop generator would time them from when they were finally
// sent and see one slow request.
func TestLatencyCountsTimeWaitingBehindAStall(t *testing.T) {
	const stall = 300 * time.Millisecond
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			<-time.After(stall) // the server's stall, not a synchronisation
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"customer_ref":"cust_x"}`)
	}))
	defer srv.Close()
	rep, err := Run(context.Background(), Config{
		URL: srv.URL, Rate: 100, Duration: 600 * time.Millisecond, Concurrency: 1, Mix: 0, Customers: 5,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.ErrorCount() != 0 || rep.Requests < 50 {
		t.Fatalf("requests %d errors %v", rep.Requests, rep.Errors)
	}
	// Calls are due every 10 ms; those due in the first 150 ms of the stall
	// (about 15) waited at least 150 ms for it to end.
	if slow := rep.Latency.Above(150 * time.Millisecond); slow < 10 {
		t.Fatalf("only %d requests report ≥150ms behind a %s stall: waiting time is hidden", slow, stall)
	}
	if rep.MaxLag < stall/2 {
		t.Fatalf("max schedule lag %s behind a %s stall", rep.MaxLag, stall)
	}
	// Timed from their sending instead, only the stalled request was slow:
	// the served figures separate the bridge's time from the queue's.
	if rep.EndServed.Count() != rep.End.Count() || rep.EndServed.Above(150*time.Millisecond) != 1 {
		t.Fatalf("served: %d of %d, %d slow; want all, 1 slow", rep.EndServed.Count(), rep.End.Count(), rep.EndServed.Above(150*time.Millisecond))
	}
}

// TestErrorsAreCountedByStatus checks that failures are counted by cause
// and that an end whose start failed is not sent.
func TestErrorsAreCountedByStatus(t *testing.T) {
	var starts, ends atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer k2" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if strings.HasSuffix(r.URL.Path, "/start") {
			starts.Add(1)
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		ends.Add(1)
		fmt.Fprint(w, `{"customer_ref":"cust_y"}`)
	}))
	defer srv.Close()
	rep, err := Run(context.Background(), Config{
		URL: srv.URL, Keys: []string{"k1", "k2"}, Rate: 200, Duration: 200 * time.Millisecond, Mix: 0.5, Seed: 3,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Keys alternate by call: k1's calls are 401, k2's phone calls are 429
	// at the start (and send no end), k2's chats succeed.
	if rep.Errors["status 401"] == 0 || rep.Errors["status 429"] != int64(starts.Load()) || rep.OK != int64(ends.Load()) {
		t.Fatalf("errors %v ok %d (server saw %d starts, %d ends)", rep.Errors, rep.OK, starts.Load(), ends.Load())
	}
	if rep.Skipped < rep.Errors["status 429"] {
		t.Fatalf("%d ends skipped after %d failed starts", rep.Skipped, rep.Errors["status 429"])
	}
	var out bytes.Buffer
	printReport(&out, rep)
	if !strings.Contains(out.String(), "status 401") || !strings.Contains(out.String(), "status 429") {
		t.Fatalf("report:\n%s", out.String())
	}
}

func TestDeadBridgeIsReportedNotWaitedOn(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	rep, err := Run(context.Background(), Config{URL: url, Rate: 100, Duration: 200 * time.Millisecond, Mix: 1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK != 0 || rep.Errors["transport: connection refused"] == 0 {
		t.Fatalf("errors %v", rep.Errors)
	}
}

func TestBadConfigIsRefused(t *testing.T) {
	for _, c := range []Config{
		{URL: "http://x", Rate: 0, Duration: time.Second},
		{URL: "http://x", Rate: 1, Duration: 0},
		{URL: "ftp://x", Rate: 1, Duration: time.Second},
		{URL: "http://x", Rate: 1, Duration: time.Second, Mix: 1.5},
	} {
		if rep, err := Run(context.Background(), c); err == nil || rep != nil {
			t.Errorf("%+v accepted", c)
		}
	}
	if _, err := Run(context.Background(), Config{URL: "http://x", Rate: 1, Duration: time.Second, PID: -1}); err == nil {
		t.Error("pid -1 accepted")
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h Histogram
	for i := 1; i <= 100_000; i++ {
		h.Record(time.Duration(i) * time.Microsecond) // 1 µs .. 100 ms, uniform
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {0.999, 99900 * time.Microsecond}, {0.001, 100 * time.Microsecond}} {
		got := h.Quantile(tc.q)
		if d := float64(got-tc.want) / float64(tc.want); d < 0 || d > 0.002 {
			t.Errorf("q%.3f = %s, want %s within 0.2%% above", tc.q, got, tc.want)
		}
	}
	if h.Max() != 100*time.Millisecond || h.Count() != 100_000 {
		t.Errorf("max %s count %d", h.Max(), h.Count())
	}
	if a := h.Above(90 * time.Millisecond); a < 10_000 || a > 10_100 {
		t.Errorf("above 90ms: %d", a)
	}
	// every bucket's upper bound maps back to the same bucket
	for b := 0; b < len(h.counts)-1; b++ {
		if bucketOf(upper(b)) != b || bucketOf(upper(b)+1) != b+1 {
			if upper(b) > 1<<62 {
				break
			}
			t.Fatalf("bucket %d: upper %d maps to %d, next to %d", b, upper(b), bucketOf(upper(b)), bucketOf(upper(b)+1))
		}
	}
	var empty Histogram
	if empty.Quantile(0.99) != 0 || empty.Mean() != 0 {
		t.Error("empty histogram")
	}
}

func TestReadRSS(t *testing.T) {
	rss, err := ReadRSS(os.Getpid())
	if err != nil || rss < 1<<20 {
		t.Fatalf("own rss %d, %v", rss, err)
	}
	if _, err := ReadRSS(1 << 30); err == nil {
		t.Fatal("no error for a pid that does not exist")
	}
}

// TestCommandPrintsTheReport runs the command as a user would, against
// the real bridge.
func TestCommandPrintsTheReport(t *testing.T) {
	url := startBridge(t)
	var out, errb bytes.Buffer
	env := map[string]string{"STICKY_LOAD_KEYS": testKey}
	code := run(context.Background(), []string{"-url", url, "-rate", "100", "-duration", "1s", "-every", "500ms",
		"-customers", "20", "-pid", fmt.Sprint(os.Getpid())}, func(k string) string { return env[k] }, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	for _, want := range []string{"t=", "rate:", "p50", "p99", "p999", "start served:", "end served:", "errors:    0", "rss:", "pid"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if code := run(context.Background(), []string{"-rate", "x"}, func(string) string { return "" }, &out, &errb); code != 2 {
		t.Errorf("bad flag: exit %d", code)
	}
	// without the key every request is refused, and the exit code says so
	out.Reset()
	code = run(context.Background(), []string{"-url", url, "-rate", "50", "-duration", "200ms", "-every", "0"}, func(string) string { return "" }, &out, &errb)
	if code != 1 || !strings.Contains(out.String(), "status 401") {
		t.Errorf("no key: exit %d\n%s", code, out.String())
	}
}
