package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

// Config is one load run.
type Config struct {
	// URL is the bridge's base URL, e.g. http://127.0.0.1:8080.
	URL string
	// Keys are API keys, used in turn (spreads the per-key rate limit);
	// none sends no Authorization header.
	Keys []string
	// Rate is the target in requests per second, starts and ends together.
	Rate float64
	// Duration is how long requests are scheduled for.
	Duration time.Duration
	// Concurrency is the most requests in flight (default 64).
	Concurrency int
	// Customers is the number of distinct callers; with more calls than
	// that, identities repeat and calls find earlier customers.
	Customers int
	// Mix is the share of calls that are phone calls (a start, then an end
	// with the customer_ref the start returned); the rest are end-only
	// chat interactions carrying identity hints. Default 1.
	Mix float64
	// Timeout bounds one request (default 10s).
	Timeout time.Duration
	// RunID prefixes the call ids, so runs against the same store do not
	// collide (default: derived from the clock).
	RunID string
	// Seed makes the choice of callers and intents repeatable.
	Seed uint64
	// Every is the progress period (0: no progress); Progress receives it.
	Every    time.Duration
	Progress func(Progress)
	// PID, when set, is the process whose resident memory is sampled.
	PID int
	// StartsOnly sends only the starts of phone calls (Mix is then
	// ignored): a center's ringing calls, with no end to wait behind.
	StartsOnly bool
	// Acked, when set, receives every end answered 200 (from many goroutines).
	Acked func(Ack)
	// Client replaces the HTTP client built from Concurrency and Timeout.
	Client *http.Client
}

// Ack is an end the bridge acknowledged.
type Ack struct {
	CallID      string
	CustomerRef string
	Channel     string
}

// Progress is the state every Config.Every.
type Progress struct {
	Elapsed   time.Duration
	Done      int64         // responses so far
	Rate      float64       // responses per second in the last period
	P50, P99  time.Duration // latency in the last period
	Errors    int64         // so far
	InFlight  int64         // scheduled and not yet answered
	RSS       int64         // bytes, when PID is set
	RSSOK     bool
	Scheduled int64 // calls scheduled so far
}

// Report is the outcome of a run.
type Report struct {
	Target   float64
	Elapsed  time.Duration // first scheduled send to last answer
	Requests int64         // answered (any status) or failed
	OK       int64         // answered 200
	Starts   int64
	Ends     int64
	Calls    int64            // calls scheduled
	Errors   map[string]int64 // "status 429", "transport: timeout", ...
	Skipped  int64            // ends not sent because their start failed
	NotSent  int64            // calls still unsent when the run's deadline passed
	Latency  *Histogram       // every request, from its scheduled send time
	Start    *Histogram
	End      *Histogram
	// Served: answered 200, from the moment the request was sent rather
	// than due. What Latency adds on top is this generator's own lag (its
	// timer, a free worker), not the bridge's.
	StartServed *Histogram
	EndServed   *Histogram
	MaxLag      time.Duration // most a call waited for a free worker after its scheduled time
	RSS         RSS
	Customers   int64 // distinct customer_refs returned
}

// RSS is the resident memory of Config.PID, in bytes.
type RSS struct {
	PID             int
	Start, End, Max int64
}

// Achieved is the rate of 200 answers over the run.
func (r *Report) Achieved() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.OK) / r.Elapsed.Seconds()
}

// ErrorCount is the number of failed requests and calls.
func (r *Report) ErrorCount() int64 {
	var n int64
	for _, c := range r.Errors {
		n += c
	}
	return n + r.NotSent
}

func (c *Config) defaults() error {
	if c.Rate <= 0 {
		return errors.New("-rate must be above 0")
	}
	if c.Duration <= 0 {
		return errors.New("-duration must be above 0")
	}
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("-url %q is not an http(s) URL such as http://127.0.0.1:8080", c.URL)
	}
	c.URL = strings.TrimRight(c.URL, "/")
	if c.Concurrency <= 0 {
		c.Concurrency = 64
	}
	if c.Customers <= 0 {
		c.Customers = 1000
	}
	if c.Customers > 7_000_000 {
		return errors.New("-customers must be at most 7000000")
	}
	if c.Mix < 0 || c.Mix > 1 {
		return errors.New("-mix must be between 0 (all end-only) and 1 (all start then end)")
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.RunID == "" {
		c.RunID = fmt.Sprintf("load%x", time.Now().UnixNano())
	}
	if c.Client == nil {
		c.Client = newClient(c.Concurrency, c.Timeout)
	}
	return nil
}

// call is one scheduled call.
type call struct {
	n        int64
	at       time.Time // scheduled send time of its first request
	customer int
	phone    bool
}

type recorder struct {
	mu       sync.Mutex
	rep      *Report
	period   Histogram
	periodN  int64
	refs     map[string]struct{}
	inFlight int64
	sched    int64
	lastDone time.Time
}

// served records how long a request answered 200 took from its sending.
func (r *recorder) served(op string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if op == "start" {
		r.rep.StartServed.Record(d)
	} else {
		r.rep.EndServed.Record(d)
	}
}

func (r *recorder) record(op string, lat time.Duration, outcome string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rep.Requests++
	r.rep.Latency.Record(lat)
	r.period.Record(lat)
	r.periodN++
	if op == "start" {
		r.rep.Starts++
		r.rep.Start.Record(lat)
	} else {
		r.rep.Ends++
		r.rep.End.Record(lat)
	}
	if outcome == "" {
		r.rep.OK++
	} else {
		r.rep.Errors[outcome]++
	}
	r.lastDone = time.Now()
}

// Run drives the load and reports. It schedules calls at fixed times from
// the start (open loop): a slow answer does not slow the schedule, and
// each request's latency is measured from the time it was due, so time
// spent waiting for a free worker or connection is counted, not hidden.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	rep := &Report{
		Target: cfg.Rate, Errors: map[string]int64{},
		Latency: &Histogram{}, Start: &Histogram{}, End: &Histogram{},
		StartServed: &Histogram{}, EndServed: &Histogram{},
	}
	if cfg.PID != 0 {
		rss, err := ReadRSS(cfg.PID)
		if err != nil {
			return nil, err
		}
		rep.RSS = RSS{PID: cfg.PID, Start: rss, End: rss, Max: rss}
	}
	rec := &recorder{rep: rep, refs: map[string]struct{}{}}

	// A phone call is two requests, an end-only interaction one.
	callRate := cfg.Rate / (1 + cfg.Mix)
	if cfg.StartsOnly {
		callRate = cfg.Rate
	}
	interval := time.Duration(float64(time.Second) / callRate)
	total := int64(cfg.Duration / interval)
	if total == 0 {
		total = 1
	}
	begin := time.Now().Add(10 * time.Millisecond)
	// Past this, unsent calls are counted, not sent: a dead bridge must
	// not stretch the run by a timeout per queued call.
	deadline := begin.Add(cfg.Duration + cfg.Timeout)

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan call, cfg.Concurrency*4)
	var wg sync.WaitGroup
	for w := range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			worker(runCtx, &cfg, rec, jobs, w, deadline)
		}()
	}

	// Side goroutines: progress and memory sampling, stopped with stop.
	stop := make(chan struct{})
	var side sync.WaitGroup
	if cfg.PID != 0 {
		side.Add(1)
		go func() {
			defer side.Done()
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					if rss, err := ReadRSS(cfg.PID); err == nil {
						rec.mu.Lock()
						rep.RSS.End = rss
						rep.RSS.Max = max(rep.RSS.Max, rss)
						rec.mu.Unlock()
					}
				}
			}
		}()
	}
	if cfg.Every > 0 && cfg.Progress != nil {
		side.Add(1)
		go func() {
			defer side.Done()
			t := time.NewTicker(cfg.Every)
			defer t.Stop()
			last := time.Now()
			for {
				select {
				case <-stop:
					return
				case now := <-t.C:
					rec.mu.Lock()
					p := Progress{
						Elapsed: now.Sub(begin).Round(time.Second), Done: rep.Requests,
						Rate: float64(rec.periodN) / now.Sub(last).Seconds(),
						P50:  rec.period.Quantile(0.5), P99: rec.period.Quantile(0.99),
						Errors: rep.ErrorCount(), InFlight: rec.inFlight, Scheduled: rec.sched,
					}
					rec.period = Histogram{}
					rec.periodN = 0
					rec.mu.Unlock()
					if cfg.PID != 0 {
						p.RSS, _ = ReadRSS(cfg.PID)
						p.RSSOK = p.RSS > 0
					}
					last = now
					cfg.Progress(p)
				}
			}
		}()
	}

	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var notSent int64
dispatch:
	for i := range total {
		c := call{n: i, at: begin.Add(time.Duration(i) * interval), customer: rng.IntN(cfg.Customers), phone: rng.Float64() < cfg.Mix || cfg.StartsOnly}
		if d := time.Until(c.at); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				break dispatch
			}
		}
		if time.Now().After(deadline) {
			notSent = total - i
			break
		}
		rec.mu.Lock()
		rec.inFlight++
		rec.sched++
		rec.mu.Unlock()
		select {
		case jobs <- c: // blocks when every worker is busy; c.at keeps the due time
		case <-ctx.Done():
			break dispatch
		}
	}
	close(jobs)
	wg.Wait()
	close(stop)
	side.Wait()

	if cfg.PID != 0 {
		if rss, err := ReadRSS(cfg.PID); err == nil {
			rep.RSS.End = rss
			rep.RSS.Max = max(rep.RSS.Max, rss)
		}
	}
	rep.NotSent = notSent
	rep.Calls = rec.sched
	rep.Customers = int64(len(rec.refs))
	if !rec.lastDone.IsZero() {
		rep.Elapsed = rec.lastDone.Sub(begin)
	}
	return rep, ctx.Err()
}

func worker(ctx context.Context, cfg *Config, rec *recorder, jobs <-chan call, w int, deadline time.Time) {
	rng := rand.New(rand.NewPCG(cfg.Seed, uint64(w)+1))
	buf := &bytes.Buffer{}
	for c := range jobs {
		lag := time.Since(c.at)
		rec.mu.Lock()
		rec.rep.MaxLag = max(rec.rep.MaxLag, lag)
		rec.mu.Unlock()
		doCall(ctx, cfg, rec, c, rng, buf)
		rec.mu.Lock()
		rec.inFlight--
		rec.mu.Unlock()
	}
}

var (
	intents  = []string{"billing_inquiry", "refund_status", "order_status", "technical_support", "cancel_service"}
	statuses = []string{"open", "open", "resolved", "resolved", "abandoned"}
)

// ani is customer k's phone number: a fixed NANP block, one per customer.
func ani(k int) string { return fmt.Sprintf("+1415%07d", 2_000_000+k) }

func doCall(ctx context.Context, cfg *Config, rec *recorder, c call, rng *rand.Rand, buf *bytes.Buffer) {
	callID := fmt.Sprintf("%s-%d", cfg.RunID, c.n)
	key := ""
	if len(cfg.Keys) > 0 {
		key = cfg.Keys[c.n%int64(len(cfg.Keys))]
	}
	intent := intents[rng.IntN(len(intents))]
	status := statuses[rng.IntN(len(statuses))]
	summary := fmt.Sprintf("load test %s: %s", callID, intent)

	if !c.phone {
		body := map[string]any{
			"call_id": callID, "channel": "chat",
			"identity_hints": map[string]any{
				"ani":          ani(c.customer),
				"external_ids": map[string]string{"email": fmt.Sprintf("load-%d@example.test", c.customer)},
			},
			"intent": intent, "intent_status": status,
			"variables": map[string]string{"summary": summary, "load_run": cfg.RunID},
		}
		if ref, ok := post(ctx, cfg, rec, "end", "/v1/calls/end", key, body, c.at, buf); ok {
			ack(cfg, rec, Ack{callID, ref, "chat"})
		}
		return
	}

	body := map[string]any{
		"call_id":        callID,
		"identity_hints": map[string]any{"ani": ani(c.customer), "dnis": "+18005550100"},
		"telco":          map[string]string{"line_type": "mobile"},
	}
	startedRef, ok := post(ctx, cfg, rec, "start", "/v1/calls/start", key, body, c.at, buf)
	if cfg.StartsOnly {
		return
	}
	if !ok {
		rec.mu.Lock()
		rec.rep.Skipped++
		rec.mu.Unlock()
		return
	}
	// The end is due the moment the start is answered.
	end := map[string]any{
		"call_id": callID, "customer_ref": startedRef,
		"intent": intent, "intent_status": status,
		"variables": map[string]string{"summary": summary, "load_run": cfg.RunID},
	}
	if ref, ok := post(ctx, cfg, rec, "end", "/v1/calls/end", key, end, time.Now(), buf); ok {
		ack(cfg, rec, Ack{callID, ref, "phone"})
	}
}

func ack(cfg *Config, rec *recorder, a Ack) {
	rec.mu.Lock()
	rec.refs[a.CustomerRef] = struct{}{}
	rec.mu.Unlock()
	if cfg.Acked != nil {
		cfg.Acked(a)
	}
}

// post sends one request and records its outcome; it returns the
// customer_ref of a 200 answer, and false for anything else.
func post(ctx context.Context, cfg *Config, rec *recorder, op, path, key string, body any, due time.Time, buf *bytes.Buffer) (string, bool) {
	b, err := json.Marshal(body)
	if err != nil {
		panic(err) // built from maps of strings
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.URL+path, bytes.NewReader(b))
	if err != nil {
		rec.record(op, time.Since(due), "request: "+err.Error())
		return "", false
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	sent := time.Now()
	resp, err := cfg.Client.Do(req)
	if err != nil {
		rec.record(op, time.Since(due), transportError(err))
		return "", false
	}
	buf.Reset()
	_, rerr := io.Copy(buf, resp.Body)
	resp.Body.Close()
	lat := time.Since(due)
	switch {
	case resp.StatusCode != http.StatusOK:
		rec.record(op, lat, fmt.Sprintf("status %d", resp.StatusCode))
		return "", false
	case rerr != nil:
		rec.record(op, lat, transportError(rerr))
		return "", false
	}
	var out struct {
		CustomerRef string `json:"customer_ref"`
	}
	if err := json.Unmarshal(buf.Bytes(), &out); err != nil || out.CustomerRef == "" {
		rec.record(op, lat, "bad response: no customer_ref")
		return "", false
	}
	rec.record(op, lat, "")
	rec.served(op, time.Since(sent))
	return out.CustomerRef, true
}

// transportError names a failure without the URL or other detail that
// would split one cause into many counters.
func transportError(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return "transport: cancelled"
	case errors.As(err, &ne) && ne.Timeout():
		return "transport: timeout"
	case strings.Contains(err.Error(), "connection refused"):
		return "transport: connection refused"
	case strings.Contains(err.Error(), "connection reset"):
		return "transport: connection reset"
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "transport: connection closed"
	}
	return "transport: other"
}

// ReadRSS reads a process's resident set size from /proc/<pid>/status.
func ReadRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("-pid %d: %w", pid, err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb); err != nil {
				return 0, fmt.Errorf("-pid %d: VmRSS %q: %w", pid, v, err)
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("-pid %d: no VmRSS in /proc/%d/status (a kernel thread or a zombie?)", pid, pid)
}

// sortedErrors lists the error counters, largest first.
func sortedErrors(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	return keys
}
