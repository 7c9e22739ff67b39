package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"time"
)

// TailConcurrency is the tail's default cap on requests in flight. The
// load is open loop: a request is due at its scheduled time whatever came
// before it. With 64 in flight, a few hundred milliseconds of fsync under
// the synced ends held every slot, and the starts due meanwhile waited in
// the generator, not in the bridge: a reopened million-customer store
// showed mixed p99 4.4 s at 64 and 259 ms at 1,024, start round 1 245 ms
// and 11.4 ms (issue 17). A PBX and a chat webhook do not share 64
// connections either.
const TailConcurrency = 1024

// TailConfig is the whole tail run of issue 17, in one command: a bridge
// preloaded through its API, then rounds of starts and a long mixed load,
// each driven against a floor server the same way just before, with the
// bridge's memory and Badger's own figures after every round.
type TailConfig struct {
	// Bridge is a bridge binary (ari-bridge or esl-bridge) to start on
	// loopback with a data directory of its own; empty drives URL instead.
	Bridge string
	// DataDir is the started bridge's data directory, kept afterwards;
	// empty: a new directory under the system's temp dir, removed at the end.
	DataDir string
	// BridgeEnv is added to the started bridge's environment (KEY=VALUE).
	BridgeEnv []string
	// URL, Keys and PID name a bridge that is already running.
	URL  string
	Keys []string
	PID  int

	// Customers are preloaded (customer 0..Customers-1) and called.
	Customers          int
	Preload            bool
	PreloadConcurrency int

	StartRounds int
	StartFor    time.Duration
	StartRate   float64
	MixedFor    time.Duration
	MixedEvery  time.Duration // a line per window of the mixed load
	MixedRate   float64
	// FloorFor is how long each floor phase lasts (0: as long as the
	// bridge's phase after it, at most a minute).
	FloorFor time.Duration
	// FloorURL is a floor already running; empty starts this binary's
	// floor command (Self) as a process of its own, as the bridge is.
	FloorURL string
	Self     string

	// Concurrency is the most requests in flight (default
	// TailConcurrency).
	Concurrency int
	Timeout     time.Duration
	Seed        uint64
	// ProfileDir, when set, receives a CPU profile of the bridge for each
	// of its phases and a heap profile after it (the bridge must serve
	// pprof: a started bridge gets STICKY_PPROF_ADDR, a running one needs
	// PprofURL).
	ProfileDir string
	PprofURL   string
	// PreloadBaseline is the preload rate to compare with (ends/s).
	PreloadBaseline float64
}

// PhaseResult is one phase of the run against one target.
type PhaseResult struct {
	Name    string // "start 1/3", "mixed 2/10"
	Target  string // "sticky" or "floor"
	Report  *Report
	Load    LoadAvg
	Mem     Mem          // the bridge's, after the phase
	Before  StoreFigures // the bridge's, around the phase
	After   StoreFigures
	Floor   *PhaseResult // the floor phase it is compared with
	Elapsed time.Duration
	// CPU is the CPU time the target's process used during the phase
	// (0: unknown), a figure the machine's other load disturbs little.
	CPU time.Duration
}

// cpuPerRequest is the target's CPU time per request answered.
func (p *PhaseResult) cpuPerRequest() time.Duration {
	if p.Report.Requests == 0 {
		return 0
	}
	return p.CPU / time.Duration(p.Report.Requests)
}

// p99 is the phase's 99th percentile over every request, from its
// scheduled send time.
func (p *PhaseResult) p99() time.Duration { return p.Report.Latency.Quantile(0.99) }

// TailReport is what the run measured.
type TailReport struct {
	Customers int
	Preload   *PreloadReport
	AfterLoad Mem
	Starts    []*PhaseResult // the bridge's start rounds (each with its floor)
	Mixed     []*PhaseResult // the bridge's mixed windows
	MixedAll  *Histogram     // every mixed request
	MixedEnd  *Histogram
	Floor     *PhaseResult // the floor's mixed phase
	MaxRSS    int64        // the bridge's, from the end of the preload on
	Loads     []LoadAvg
	// Warnings are the lines the started bridge logged at WARN or ERROR
	// (how many, and the first few).
	Warnings     int
	WarningLines []string
}

func (c *TailConfig) defaults() error {
	if c.Bridge == "" && c.URL == "" {
		return errors.New("tail: give -bridge (a bridge binary to start) or -url (a running bridge)")
	}
	if c.Customers <= 0 {
		return errors.New("tail: -customers must be above 0")
	}
	if c.StartRate <= 0 || c.MixedRate <= 0 || c.StartFor <= 0 || c.StartRounds < 0 || c.MixedFor < 0 {
		return errors.New("tail: rates and round lengths must be above 0")
	}
	if c.MixedEvery <= 0 || c.MixedEvery > c.MixedFor {
		c.MixedEvery = c.MixedFor
	}
	if c.Concurrency <= 0 {
		c.Concurrency = TailConcurrency
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.FloorURL == "" && c.Self == "" {
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("tail: cannot find this program to start the floor: %w", err)
		}
		c.Self = self
	}
	return nil
}

// tailRun is one run in progress.
type tailRun struct {
	cfg    TailConfig
	out    io.Writer
	client *http.Client // to the bridge
	floorC *http.Client // to the floor, its own connections
	url    string
	floor  string
	pid    int
	fpid   int // the floor's, when this run started it
	bridge *child
	pprof  string

	mu     sync.Mutex
	maxRSS int64
}

// RunTail runs the whole tail measurement and prints it to out as it goes,
// then the summary. Processes it started are stopped and a temporary data
// directory is removed before it returns, also when it fails.
func RunTail(ctx context.Context, cfg TailConfig, out io.Writer) (rep *TailReport, err error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	t := &tailRun{cfg: cfg, out: out, url: strings.TrimRight(cfg.URL, "/"), pid: cfg.PID, pprof: cfg.PprofURL}
	t.client = newClient(cfg.Concurrency, cfg.Timeout)
	t.floorC = newClient(cfg.Concurrency, cfg.Timeout)
	la, _ := ReadLoadAvg()
	fmt.Fprintf(out, "tail: %d customers, %d start rounds of %s at %.0f/s, mixed (half synced ends) for %s at %.0f/s, at most %d requests in flight; load average %s\n",
		cfg.Customers, cfg.StartRounds, cfg.StartFor, cfg.StartRate, cfg.MixedFor, cfg.MixedRate, cfg.Concurrency, la)

	if cfg.Bridge != "" {
		stop, err := t.startBridge(ctx)
		if err != nil {
			return nil, err
		}
		defer func() {
			if serr := stop(); serr != nil && err == nil {
				err = serr
			}
		}()
	}
	t.floor = cfg.FloorURL
	if t.floor == "" {
		cmd := exec.Command(cfg.Self, "floor", "-addr", "127.0.0.1:0")
		f, err := startChild(ctx, "floor", cmd, regexp.MustCompile(`floor listening on http://(\S+)`), 30*time.Second)
		if err != nil {
			return nil, err
		}
		defer f.stop(10 * time.Second)
		t.floor, t.fpid = f.url, f.pid()
		fmt.Fprintf(out, "floor:  %s (pid %d), a Go HTTP server answering 1 KB\n", t.floor, f.pid())
	}

	sampled := make(chan struct{})
	stopSampling := make(chan struct{})
	if t.pid != 0 {
		go t.sampleRSS(stopSampling, sampled)
	} else {
		close(sampled)
	}
	defer func() { close(stopSampling); <-sampled }()

	rep = &TailReport{Customers: cfg.Customers, MixedAll: &Histogram{}, MixedEnd: &Histogram{}}
	if cfg.Preload {
		if rep.Preload, err = t.preload(ctx); err != nil {
			return rep, err
		}
	}
	if t.pid != 0 {
		rep.AfterLoad, _ = ReadMem(t.pid)
	}
	t.mu.Lock()
	t.maxRSS = rep.AfterLoad.RSS
	t.mu.Unlock()

	for r := 1; r <= cfg.StartRounds; r++ {
		name := fmt.Sprintf("start %d/%d", r, cfg.StartRounds)
		p, err := t.compare(ctx, name, cfg.StartRate, cfg.StartFor, true, fmt.Sprintf("r%d", r))
		if err != nil {
			return rep, err
		}
		rep.Starts = append(rep.Starts, p)
		rep.Loads = append(rep.Loads, p.Load)
	}

	if cfg.MixedFor > 0 {
		floor, err := t.phase(ctx, "mixed", "floor", cfg.MixedRate, t.floorFor(cfg.MixedEvery), false, "mf")
		if err != nil {
			return rep, err
		}
		rep.Floor = floor
		t.printPhase(floor)
		windows := int((cfg.MixedFor + cfg.MixedEvery - 1) / cfg.MixedEvery)
		for w := 1; w <= windows; w++ {
			name := fmt.Sprintf("mixed %d/%d", w, windows)
			p, err := t.phase(ctx, name, "sticky", cfg.MixedRate, min(cfg.MixedEvery, cfg.MixedFor-time.Duration(w-1)*cfg.MixedEvery), false, fmt.Sprintf("m%d", w))
			if err != nil {
				return rep, err
			}
			p.Floor = floor
			t.printPhase(p)
			rep.Mixed = append(rep.Mixed, p)
			rep.Loads = append(rep.Loads, p.Load)
			rep.MixedAll.Merge(p.Report.Latency)
			rep.MixedEnd.Merge(p.Report.End)
		}
	}
	t.mu.Lock()
	rep.MaxRSS = t.maxRSS
	t.mu.Unlock()
	if t.bridge != nil {
		rep.Warnings, rep.WarningLines = t.bridge.warningLines()
	}
	printSummary(out, cfg, rep)
	return rep, nil
}

// startBridge starts cfg.Bridge on loopback and returns how to stop it
// (and remove its temporary data directory).
func (t *tailRun) startBridge(ctx context.Context) (func() error, error) {
	dir, temp := t.cfg.DataDir, false
	if dir == "" {
		d, err := os.MkdirTemp("", "sticky-load-")
		if err != nil {
			return nil, err
		}
		dir, temp = d, true
	}
	removeDir := func() {
		if temp {
			if err := os.RemoveAll(dir); err != nil {
				fmt.Fprintf(t.out, "could not remove the data directory %s: %v\n", dir, err)
			} else {
				fmt.Fprintf(t.out, "data directory %s removed\n", dir)
			}
		}
	}
	if len(t.cfg.Keys) == 0 {
		b := make([]byte, 16)
		rand.Read(b)
		t.cfg.Keys = []string{"load-" + hex.EncodeToString(b)}
	}
	cmd := exec.Command(t.cfg.Bridge)
	cmd.Env = append(os.Environ(),
		"STICKY_DATA_DIR="+dir, "STICKY_HTTP_ADDR=127.0.0.1:0",
		"STICKY_NATS_ADDR=127.0.0.1:0", "STICKY_NATS_WS_ADDR=127.0.0.1:0",
		"STICKY_API_KEYS="+strings.Join(t.cfg.Keys, ","), "STICKY_RATE_PER_SECOND=1000000")
	if t.cfg.ProfileDir != "" {
		cmd.Env = append(cmd.Env, "STICKY_PPROF_ADDR=127.0.0.1:0")
	}
	cmd.Env = append(cmd.Env, t.cfg.BridgeEnv...)
	b, err := startChild(ctx, "bridge", cmd, regexp.MustCompile(`listening.*http=http://([0-9.:]+)`), 5*time.Minute)
	if err != nil {
		removeDir()
		return nil, err
	}
	t.bridge, t.url, t.pid = b, b.url, b.pid()
	if t.cfg.ProfileDir != "" {
		if m := regexp.MustCompile(`pprof listening.*addr=(\S+)`).FindStringSubmatch(b.startupLines()); m != nil {
			t.pprof = "http://" + m[1]
		}
	}
	fmt.Fprintf(t.out, "bridge: %s (pid %d) on %s, data in %s\n", t.url, t.pid, t.cfg.Bridge, dir)
	return func() error {
		err := b.stop(time.Minute)
		if err != nil {
			fmt.Fprintf(t.out, "bridge stopped: %v\n%s\n", err, b.lastLines())
		}
		removeDir()
		return err
	}, nil
}

func (t *tailRun) sampleRSS(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			if m, err := ReadMem(t.pid); err == nil {
				t.mu.Lock()
				t.maxRSS = max(t.maxRSS, m.RSS)
				t.mu.Unlock()
			}
		}
	}
}

func (t *tailRun) preload(ctx context.Context) (*PreloadReport, error) {
	began := time.Now()
	pc := PreloadConfig{URL: t.url, Keys: t.cfg.Keys, Customers: t.cfg.Customers, Concurrency: t.cfg.PreloadConcurrency,
		Timeout: t.cfg.Timeout, Client: newClient(max(t.cfg.PreloadConcurrency, 64), t.cfg.Timeout), Every: 10 * time.Second,
		Progress: func(p PreloadProgress) {
			eta := "-"
			if p.Customers > 0 {
				left := time.Duration(float64(time.Since(began)) * float64(int64(t.cfg.Customers)-p.Customers) / float64(p.Customers))
				eta = left.Round(time.Second).String()
			}
			line := fmt.Sprintf("preload: t=%-6s %d/%d customers, %d ends, %.0f ends/s now, errors %d, eta %s",
				p.Elapsed, p.Customers, t.cfg.Customers, p.Ends, p.Rate, p.Errors, eta)
			if t.pid != 0 {
				if m, err := ReadMem(t.pid); err == nil {
					line += ", rss " + bytesIEC(float64(m.RSS))
				}
			}
			if la, err := ReadLoadAvg(); err == nil {
				line += ", load " + la.String()
			}
			fmt.Fprintln(t.out, line)
		}}
	cpu0, cpuErr := ReadCPU(t.pid)
	rep, err := Preload(ctx, pc)
	if rep != nil {
		la, _ := ReadLoadAvg()
		cpu := ""
		if cpu1, err := ReadCPU(t.pid); err == nil && cpuErr == nil && t.pid != 0 && rep.Ends > 0 {
			cpu = fmt.Sprintf("; bridge cpu %.0f%% (%dµs/end)", 100*(cpu1-cpu0).Seconds()/rep.Elapsed.Seconds(), ((cpu1 - cpu0) / time.Duration(rep.Ends)).Microseconds())
		}
		fmt.Fprintf(t.out, "preload: %d customers (%d durable ends) in %s: %.0f ends/s, %.0f customers/s; end served p50 %s p99 %s; errors %d; load %s%s\n",
			rep.Customers, rep.Ends, rep.Elapsed.Round(time.Second), rep.EndsPerSecond(), float64(rep.Customers)/rep.Elapsed.Seconds(),
			ms(rep.End.Quantile(0.5)), ms(rep.End.Quantile(0.99)), rep.ErrorCount(), la, cpu)
		for _, k := range sortedErrors(rep.Errors) {
			fmt.Fprintf(t.out, "  %-30s %d\n", k, rep.Errors[k])
		}
		if s, serr := scrapeMetrics(ctx, t.client, t.url); serr == nil {
			p := &PhaseResult{After: s.store()}
			if t.pid != 0 {
				p.Mem, _ = ReadMem(t.pid)
			}
			t.printBridge(p)
		}
	}
	if err == nil && rep.ErrorCount() > 0 {
		err = fmt.Errorf("preload: %d requests failed", rep.ErrorCount())
	}
	return rep, err
}

func (t *tailRun) floorFor(d time.Duration) time.Duration {
	if t.cfg.FloorFor > 0 {
		return t.cfg.FloorFor
	}
	return min(d, time.Minute)
}

// compare runs the floor, then the bridge, the same way.
func (t *tailRun) compare(ctx context.Context, name string, rate float64, d time.Duration, startsOnly bool, id string) (*PhaseResult, error) {
	floor, err := t.phase(ctx, name, "floor", rate, t.floorFor(d), startsOnly, id+"f")
	if err != nil {
		return nil, err
	}
	t.printPhase(floor)
	p, err := t.phase(ctx, name, "sticky", rate, d, startsOnly, id)
	if err != nil {
		return nil, err
	}
	p.Floor = floor
	t.printPhase(p)
	return p, nil
}

// phase drives one target for d.
func (t *tailRun) phase(ctx context.Context, name, target string, rate float64, d time.Duration, startsOnly bool, id string) (*PhaseResult, error) {
	p := &PhaseResult{Name: name, Target: target}
	url, client, keys := t.url, t.client, t.cfg.Keys
	if target == "floor" {
		url, client, keys = t.floor, t.floorC, nil
	} else {
		if t.bridge != nil {
			if done, err := t.bridge.exited(); done {
				return nil, fmt.Errorf("the bridge exited (%v):\n%s", err, t.bridge.lastLines())
			}
		}
		if s, err := scrapeMetrics(ctx, t.client, t.url); err == nil {
			p.Before = s.store()
		}
	}
	var prof chan error
	if target == "sticky" && t.cfg.ProfileDir != "" && t.pprof != "" {
		prof = make(chan error, 1)
		go func() {
			prof <- t.fetchProfile(ctx, fmt.Sprintf("/debug/pprof/profile?seconds=%d", max(1, int(d.Seconds()))), profileName(name, "cpu"))
		}()
	}
	pid := t.pid
	if target == "floor" {
		pid = t.fpid
	}
	cpu0, cpuErr := ReadCPU(pid)
	began := time.Now()
	rep, err := Run(ctx, Config{URL: url, Keys: keys, Rate: rate, Duration: d, Concurrency: t.cfg.Concurrency,
		Customers: t.cfg.Customers, Mix: 1, StartsOnly: startsOnly, Timeout: t.cfg.Timeout,
		RunID: fmt.Sprintf("tail%x-%s", began.UnixNano(), id), Seed: t.cfg.Seed + uint64(len(id)), Client: client})
	if rep == nil {
		return nil, err
	}
	p.Report, p.Elapsed = rep, time.Since(began)
	p.Load, _ = ReadLoadAvg()
	if cpu1, err := ReadCPU(pid); err == nil && cpuErr == nil && pid != 0 {
		p.CPU = cpu1 - cpu0
	}
	if target == "sticky" {
		if t.pid != 0 {
			p.Mem, _ = ReadMem(t.pid)
		}
		if s, serr := scrapeMetrics(ctx, t.client, t.url); serr == nil {
			p.After = s.store()
		}
		if prof != nil {
			if perr := <-prof; perr != nil {
				fmt.Fprintf(t.out, "  (profile: %v)\n", perr)
			} else if perr := t.fetchProfile(ctx, "/debug/pprof/heap", profileName(name, "heap")); perr != nil {
				fmt.Fprintf(t.out, "  (heap profile: %v)\n", perr)
			}
		}
	}
	return p, err
}

func profileName(phase, kind string) string {
	return strings.NewReplacer(" ", "-", "/", "of").Replace(phase) + "." + kind + ".pb.gz"
}

func (t *tailRun) fetchProfile(ctx context.Context, path, name string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.pprof+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", path, resp.StatusCode)
	}
	if err := os.MkdirAll(t.cfg.ProfileDir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(t.cfg.ProfileDir, name))
	if err != nil {
		return err
	}
	_, err = io.Copy(f, resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (t *tailRun) printPhase(p *PhaseResult) {
	r := p.Report
	h := r.Latency
	if p.Report.Starts > 0 && p.Report.Ends == 0 {
		h = r.Start
	}
	line := fmt.Sprintf("%-11s %-6s %5.0f/s %-5s n=%-7d p50 %-8s p99 %-8s p999 %-8s max %-9s errors %d  load %s",
		p.Name, p.Target, r.Target, p.Elapsed.Round(100*time.Millisecond), h.Count(),
		ms(h.Quantile(0.5)), ms(h.Quantile(0.99)), ms(h.Quantile(0.999)), ms(h.Max()), r.ErrorCount(), p.Load)
	if p.CPU > 0 {
		line += fmt.Sprintf("  cpu %.0f%% (%dµs/req)", 100*p.CPU.Seconds()/p.Elapsed.Seconds(), p.cpuPerRequest().Microseconds())
	}
	if p.Floor != nil && p.Floor.p99() > 0 {
		line += fmt.Sprintf("  p99 %.2fx floor", float64(p.p99())/float64(p.Floor.p99()))
	}
	fmt.Fprintln(t.out, line)
	if r.ErrorCount() > 0 {
		for _, k := range sortedErrors(r.Errors) {
			fmt.Fprintf(t.out, "              %-30s %d\n", k, r.Errors[k])
		}
	}
	if p.Target != "sticky" {
		return
	}
	if r.Ends > 0 {
		fmt.Fprintf(t.out, "%-18s start p50 %s p99 %s p999 %s, synced end p50 %s p99 %s p999 %s\n", "",
			ms(r.Start.Quantile(0.5)), ms(r.Start.Quantile(0.99)), ms(r.Start.Quantile(0.999)),
			ms(r.End.Quantile(0.5)), ms(r.End.Quantile(0.99)), ms(r.End.Quantile(0.999)))
	}
	t.printBridge(p)
}

// printBridge prints the bridge's memory and store figures after a phase.
func (t *tailRun) printBridge(p *PhaseResult) {
	var parts []string
	if p.Mem.RSS > 0 {
		parts = append(parts, fmt.Sprintf("rss %s (anon %s, file %s)", bytesIEC(float64(p.Mem.RSS)), bytesIEC(float64(p.Mem.Anon)), bytesIEC(float64(p.Mem.File))))
	}
	a := p.After
	if a.HeapInuse > 0 {
		s := "heap in use " + bytesIEC(a.HeapInuse)
		if p.Before.GCCycles > 0 {
			s += fmt.Sprintf(", %0.f GC cycles (%.1f ms of pauses)", a.GCCycles-p.Before.GCCycles, (a.GCPauseSecs-p.Before.GCPauseSecs)*1000)
		}
		parts = append(parts, s)
	}
	if a.OK {
		hr := "-"
		if r := hitRatio(p.Before, a); r >= 0 && p.Before.OK {
			hr = fmt.Sprintf("%.0f%%", r*100)
		}
		parts = append(parts, fmt.Sprintf("block cache hits %s (%.0f%% since open)", hr, a.CacheRatio*100))
	}
	if len(parts) > 0 {
		fmt.Fprintf(t.out, "%-18s %s\n", "", strings.Join(parts, "; "))
	}
	if a.OK {
		fmt.Fprintf(t.out, "%-18s store: L0 %d tables (stall at %d), compacting %.0f tables; %s; lsm %s, vlog %s, disk free %s\n", "",
			a.L0Tables, a.L0Stall, a.Compacting, a.levels(), bytesIEC(a.LSMBytes), bytesIEC(a.VlogBytes), bytesIEC(a.DiskFree))
	}
}

func printSummary(w io.Writer, cfg TailConfig, rep *TailReport) {
	fmt.Fprintf(w, "\nsummary (%d customers; p99 from each request's scheduled send time, floor measured just before):\n", rep.Customers)
	fmt.Fprintf(w, "%-44s %-56s %s\n", "target", "figure", "met")
	row := func(target, figure string, met string) { fmt.Fprintf(w, "%-44s %-56s %s\n", target, figure, met) }
	yes := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "NO"
	}
	if len(rep.Starts) > 0 {
		var figs []string
		ok := true
		for _, p := range rep.Starts {
			r := float64(p.p99()) / float64(max(p.Floor.p99(), time.Microsecond))
			ok = ok && r <= 2 && p.Report.ErrorCount() == 0
			figs = append(figs, fmt.Sprintf("%s/%s=%.2fx", ms(p.p99()), ms(p.Floor.p99()), r))
		}
		row("start p99 <= 2x floor, every round", strings.Join(figs, " "), yes(ok))
	}
	if len(rep.Mixed) > 0 && rep.Floor != nil {
		errs := int64(0)
		worst := rep.Mixed[0]
		for _, p := range rep.Mixed {
			errs += p.Report.ErrorCount()
			if p.p99() > worst.p99() {
				worst = p
			}
		}
		all := rep.MixedAll.Quantile(0.99)
		r := float64(all) / float64(max(rep.Floor.p99(), time.Microsecond))
		row("mixed p99 <= 3x floor", fmt.Sprintf("%s/%s=%.2fx (worst window %s)", ms(all), ms(rep.Floor.p99()), r, ms(worst.p99())), yes(r <= 3 && errs == 0))
		row("  synced ends within it", fmt.Sprintf("p50 %s p99 %s p999 %s", ms(rep.MixedEnd.Quantile(0.5)), ms(rep.MixedEnd.Quantile(0.99)), ms(rep.MixedEnd.Quantile(0.999))), "")
	}
	if rep.MaxRSS > 0 {
		met := yes(rep.MaxRSS <= 1<<30)
		note := ""
		if rep.Customers != 1_000_000 {
			note = " (the target is for 1,000,000)"
			met = "-"
		}
		row("RSS <= 1 GiB at 1,000,000 customers", fmt.Sprintf("max %s from the preload's end on, %s at it%s", bytesIEC(float64(rep.MaxRSS)), bytesIEC(float64(rep.AfterLoad.RSS)), note), met)
	}
	if rep.Preload != nil {
		fig := fmt.Sprintf("%.0f durable ends/s (%.0f customers/s)", rep.Preload.EndsPerSecond(), float64(rep.Preload.Customers)/rep.Preload.Elapsed.Seconds())
		met := "-"
		if cfg.PreloadBaseline > 0 {
			fig += fmt.Sprintf(", baseline %.0f", cfg.PreloadBaseline)
			met = yes(rep.Preload.EndsPerSecond() >= cfg.PreloadBaseline && rep.Preload.ErrorCount() == 0)
		}
		row("preload rate not below the baseline", fig, met)
	}
	if len(rep.Loads) > 0 {
		lo, hi := rep.Loads[0][0], rep.Loads[0][0]
		for _, l := range rep.Loads {
			lo, hi = min(lo, l[0]), max(hi, l[0])
		}
		fmt.Fprintf(w, "load average (1 min) after each phase: %.2f to %.2f on %d CPUs\n", lo, hi, runtime.NumCPU())
	}
	if rep.Warnings > 0 {
		fmt.Fprintf(w, "the bridge logged %d warnings or errors, the first:\n", rep.Warnings)
		for _, l := range rep.WarningLines {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
}

func newClient(conns int, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			MaxConnsPerHost:     conns,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
	}
}
