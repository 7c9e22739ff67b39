package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for sticky-load when the tail run
// starts "<self> floor": the floor then runs as a process of its own, as
// it does from the built command.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "floor" {
		ctx, stop := signalContext()
		code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// TestPreloadGivesEachCustomerTheBenchmarksHistory preloads a real bridge
// and checks what a later start finds: the customer by phone, with three
// interactions, the open intent and the three variables.
func TestPreloadGivesEachCustomerTheBenchmarksHistory(t *testing.T) {
	url := startBridge(t)
	var progress []PreloadProgress
	var mu sync.Mutex
	rep, err := Preload(context.Background(), PreloadConfig{URL: url, Keys: []string{testKey}, Customers: 40, Concurrency: 8,
		Every: time.Millisecond, Progress: func(p PreloadProgress) { mu.Lock(); progress = append(progress, p); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Customers != 40 || rep.Ends != 120 || rep.ErrorCount() != 0 || rep.End.Count() != 120 || rep.EndsPerSecond() <= 0 {
		t.Fatalf("preload: %d customers %d ends errors %v", rep.Customers, rep.Ends, rep.Errors)
	}
	mu.Lock()
	if len(progress) == 0 || progress[len(progress)-1].Ends > 120 {
		t.Errorf("progress %+v", progress)
	}
	mu.Unlock()
	for _, k := range []int{0, 17, 39} {
		body := fmt.Sprintf(`{"call_id":"check-%d","identity_hints":{"ani":%q}}`, k, ani(k))
		req, _ := http.NewRequest("POST", url+"/v1/calls/start", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var res struct {
			Identity struct {
				Recommendation string `json:"recommendation"`
			} `json:"identity"`
			OpenIntents []struct {
				Intent string `json:"intent"`
			} `json:"open_intents"`
			Variables map[string]any `json:"variables"`
			History   []struct {
				Channel string `json:"channel"`
			} `json:"history"`
		}
		err = json.NewDecoder(resp.Body).Decode(&res)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("start for customer %d: %d %v", k, resp.StatusCode, err)
		}
		var channels []string
		for _, h := range res.History {
			channels = append(channels, h.Channel)
		}
		// Customer k last called k%40 days ago: an ANI alone is less sure
		// of an older caller, and the intent lapses after 30 days.
		wantIntents := 1
		if k%40 >= 30 {
			wantIntents = 0
		}
		if res.Identity.Recommendation == "ignore" || len(res.OpenIntents) != wantIntents || len(res.Variables) != 3 || strings.Join(channels, ",") != "phone,email,chat" {
			t.Errorf("customer %d: %+v", k, res)
		}
	}
	// a dead bridge stops the preload instead of failing every customer
	srv := httptest.NewServer(http.NotFoundHandler())
	dead := srv.URL
	srv.Close()
	rep, err = Preload(context.Background(), PreloadConfig{URL: dead, Customers: 1000, Concurrency: 4, MaxFailures: 10})
	if err == nil || rep.Ends != 0 || rep.ErrorCount() < 10 || rep.ErrorCount() > 20 {
		t.Fatalf("dead bridge: %v, %d ends, %d errors", err, rep.Ends, rep.ErrorCount())
	}
}

// The floor answers both calls with 1 KB holding a customer_ref, so the
// generator drives it exactly as it drives the bridge.
func TestFloorAnswersLikeABridge(t *testing.T) {
	srv := httptest.NewServer(Floor())
	defer srv.Close()
	for _, path := range []string{"/v1/calls/start", "/v1/calls/end"} {
		resp, err := http.Post(srv.URL+path, "application/json", strings.NewReader(`{"call_id":"x"}`))
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || b.Len() != FloorAnswerBytes || !json.Valid(b.Bytes()) || !strings.Contains(b.String(), `"customer_ref":"cust_floor"`) {
			t.Fatalf("%s: %d, %d bytes", path, resp.StatusCode, b.Len())
		}
	}
	rep, err := Run(context.Background(), Config{URL: srv.URL, Rate: 200, Duration: time.Second, StartsOnly: true, Customers: 10})
	if err != nil || rep.ErrorCount() != 0 || rep.Starts != rep.Requests || rep.Ends != 0 || rep.Starts < 150 {
		t.Fatalf("starts only against the floor: %v %+v", err, rep)
	}
}

func TestServeFloorStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- ServeFloor(ctx, "127.0.0.1:0", func(a string) { addr <- a }) }()
	a := <-addr
	resp, err := http.Post("http://"+a+"/v1/calls/start", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

// TestTailRunReproducesTheWholeMeasurement is the one command of issue 17
// at a tiny scale: it builds the real bridge, which the run starts as a
// child process with a temporary data directory, preloads, drives the
// floor (this binary's floor command, its own process) and the bridge, and
// prints every round and the summary; the data directory is gone after.
func TestTailRunReproducesTheWholeMeasurement(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the bridge")
	}
	bin := filepath.Join(t.TempDir(), "ari-bridge")
	if out, err := exec.Command("go", "build", "-o", bin, "../ari-bridge").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	var out bytes.Buffer
	profiles := t.TempDir()
	code := run(context.Background(), []string{"tail", "-bridge", bin, "-customers", "60", "-preload-concurrency", "8",
		"-start-rounds", "2", "-start-for", "500ms", "-start-rate", "200",
		"-mixed-for", "1s", "-mixed-every", "500ms", "-mixed-rate", "200", "-floor-for", "300ms",
		"-profile-dir", profiles}, func(string) string { return "" }, &out, &out)
	t.Log("\n" + out.String())
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	s := out.String()
	for _, want := range []string{
		"preload: 60 customers (180 durable ends)",
		"start 1/2   floor", "start 1/2   sticky", "start 2/2   sticky", "mixed       floor", "mixed 1/2   sticky", "mixed 2/2   sticky",
		"synced end p50", "rss ", "store: L0 ", "µs/req", "block cache hits", "load ",
		"start p99 <= 2x floor, every round", "mixed p99 <= 3x floor", "RSS <= 1 GiB at 1,000,000 customers", "preload rate not below the baseline",
		"load average (1 min) after each phase",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(s, "errors 1") || strings.Contains(s, "status ") {
		t.Errorf("requests failed")
	}
	m := regexp.MustCompile(`data in (\S+)`).FindStringSubmatch(s)
	if m == nil || !strings.Contains(s, "data directory "+m[1]+" removed") {
		t.Fatalf("no data directory removed")
	}
	if _, err := os.Stat(m[1]); !os.IsNotExist(err) {
		t.Errorf("data directory %s still there: %v", m[1], err)
	}
	for _, name := range []string{"start-1of2.cpu.pb.gz", "start-2of2.heap.pb.gz", "mixed-2of2.cpu.pb.gz"} {
		if fi, err := os.Stat(filepath.Join(profiles, name)); err != nil || fi.Size() == 0 {
			t.Errorf("profile %s: %v", name, err)
		}
	}
}

func TestTailRefusesWithoutABridge(t *testing.T) {
	var out bytes.Buffer
	if code := run(context.Background(), []string{"tail"}, func(string) string { return "" }, &out, &out); code != 2 || !strings.Contains(out.String(), "-bridge") {
		t.Fatalf("exit %d: %s", code, out.String())
	}
}

func TestScrapeReadsTheStoreFigures(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `# HELP sticky_store_l0_tables x
# TYPE sticky_store_l0_tables gauge
sticky_store_l0_tables 4
sticky_store_l0_stall_tables 15
sticky_store_lsm_bytes 1.5e+09
sticky_store_block_cache_hits_total 30
sticky_store_block_cache_misses_total 10
sticky_store_level_tables{level="0"} 4
sticky_store_level_bytes{level="0"} 2.68435456e+08
sticky_store_level_tables{level="1"} 0
sticky_store_level_tables{level="6"} 50
sticky_store_level_bytes{level="6"} 1.2e+09
sticky_store_level_score{level="6"} 1.5
go_memstats_heap_inuse_bytes 5e+08
`)
	}))
	defer srv.Close()
	s, err := scrapeMetrics(context.Background(), http.DefaultClient, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	f := s.store()
	if !f.OK || f.L0Tables != 4 || f.L0Stall != 15 || f.LSMBytes != 1.5e9 || f.HeapInuse != 5e8 || len(f.Levels) != 2 {
		t.Fatalf("%+v", f)
	}
	if got := f.levels(); got != "L0 4t 256MiB, L6 50t 1.12GiB (score 1.5)" {
		t.Errorf("levels %q", got)
	}
	if r := hitRatio(StoreFigures{CacheHits: 20, CacheMisses: 0}, f); r != 0.5 {
		t.Errorf("hit ratio over the round %v", r)
	}
	if r := hitRatio(f, f); r != -1 {
		t.Errorf("no lookups: %v", r)
	}
}

func TestReadMemAndLoadAvg(t *testing.T) {
	m, err := ReadMem(os.Getpid())
	if err != nil || m.RSS < 1<<20 || m.Anon <= 0 || m.Anon+m.File > m.RSS+1<<20 {
		t.Fatalf("%+v %v", m, err)
	}
	if _, err := ReadMem(1 << 30); err == nil {
		t.Fatal("no error for a pid that does not exist")
	}
	if l, err := ReadLoadAvg(); err != nil || l[0] < 0 {
		t.Fatalf("%v %v", l, err)
	}
	before, err := ReadCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for spin := time.Now(); time.Since(spin) < 50*time.Millisecond; {
	}
	if after, err := ReadCPU(os.Getpid()); err != nil || after < before {
		t.Fatalf("cpu %s then %s, %v", before, after, err)
	}
	if _, err := ReadCPU(1 << 30); err == nil {
		t.Fatal("no error for a pid that does not exist")
	}
}
