package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// PreloadConfig loads customers through the API the way a center's history
// arrives: each customer's interactions as ends, each one durable before
// it is answered, so the store grows (and compacts) as it would in a day's
// work rather than as a flattened bulk load.
type PreloadConfig struct {
	URL  string
	Keys []string
	// Customers are loaded as customer 0 .. Customers-1, the same callers
	// Run's -customers picks from (ani(k), load-k@example.com).
	Customers   int
	Concurrency int // customers loaded at once (default 64)
	Timeout     time.Duration
	Client      *http.Client
	// Now anchors the interactions' times (default: the clock). Customer k
	// last called k%40 days before it, as in the engine benchmark.
	Now      time.Time
	Every    time.Duration
	Progress func(PreloadProgress)
	// MaxFailures stops the load after this many failed requests in a row
	// (a bridge that died); default 100.
	MaxFailures int
}

// PreloadProgress is the state every PreloadConfig.Every.
type PreloadProgress struct {
	Elapsed   time.Duration
	Customers int64   // fully loaded
	Ends      int64   // answered 200
	Rate      float64 // ends per second in the last period
	Errors    int64
}

// PreloadReport is the outcome of a preload.
type PreloadReport struct {
	Customers int64 // every end answered 200
	Ends      int64 // answered 200, each durable
	Elapsed   time.Duration
	Errors    map[string]int64
	End       *Histogram // each end, from when it was sent
}

// EndsPerSecond is the durable load rate.
func (r *PreloadReport) EndsPerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Ends) / r.Elapsed.Seconds()
}

// ErrorCount is the number of failed requests.
func (r *PreloadReport) ErrorCount() int64 {
	var n int64
	for _, c := range r.Errors {
		n += c
	}
	return n
}

// preloadChannels is each customer's history, oldest first: the engine
// benchmark's customer (a phone, an email and a customer id, three
// variables, an open intent, a chat, an email and a call).
var preloadChannels = []string{"chat", "email", "phone"}

// Preload loads cfg.Customers customers, closed loop: as fast as the bridge
// answers with cfg.Concurrency customers in flight.
func Preload(ctx context.Context, cfg PreloadConfig) (*PreloadReport, error) {
	if cfg.Customers <= 0 {
		return nil, errors.New("preload: -customers must be above 0")
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 64
	}
	if cfg.MaxFailures <= 0 {
		cfg.MaxFailures = 100
	}
	if cfg.Now.IsZero() {
		cfg.Now = time.Now().UTC().Truncate(time.Second)
	}
	lc := Config{URL: cfg.URL, Rate: 1, Duration: time.Second, Concurrency: cfg.Concurrency, Timeout: cfg.Timeout, Client: cfg.Client}
	if err := lc.defaults(); err != nil {
		return nil, err
	}
	cfg.URL, cfg.Client = lc.URL, lc.Client

	rep := &PreloadReport{Errors: map[string]int64{}, End: &Histogram{}}
	var mu sync.Mutex // guards rep
	var next, customers, ends, periodEnds atomic.Int64
	var failing atomic.Int64 // failures in a row
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	began := time.Now()
	stop := make(chan struct{})
	var side sync.WaitGroup
	if cfg.Every > 0 && cfg.Progress != nil {
		side.Add(1)
		go func() {
			defer side.Done()
			t := time.NewTicker(cfg.Every)
			defer t.Stop()
			last := began
			for {
				select {
				case <-stop:
					return
				case now := <-t.C:
					mu.Lock()
					errs := rep.ErrorCount()
					mu.Unlock()
					cfg.Progress(PreloadProgress{Elapsed: now.Sub(began).Round(time.Second), Customers: customers.Load(),
						Ends: ends.Load(), Rate: float64(periodEnds.Swap(0)) / now.Sub(last).Seconds(), Errors: errs})
					last = now
				}
			}
		}()
	}

	var wg sync.WaitGroup
	for range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := &bytes.Buffer{}
			for ctx.Err() == nil {
				k := int(next.Add(1) - 1)
				if k >= cfg.Customers {
					return
				}
				ref := ""
				for i, ch := range preloadChannels {
					body := preloadEnd(k, i, ch, ref, cfg.Now)
					key := ""
					if len(cfg.Keys) > 0 {
						key = cfg.Keys[k%len(cfg.Keys)]
					}
					sent := time.Now()
					got, outcome := postEnd(ctx, cfg.Client, cfg.URL, key, body, buf)
					mu.Lock()
					if outcome != "" {
						rep.Errors[outcome]++
					} else {
						rep.End.Record(time.Since(sent))
					}
					mu.Unlock()
					if outcome != "" {
						if failing.Add(1) >= int64(cfg.MaxFailures) {
							cancel(fmt.Errorf("preload: %d requests in a row failed, the last with %s", cfg.MaxFailures, outcome))
						}
						break
					}
					failing.Store(0)
					ends.Add(1)
					periodEnds.Add(1)
					ref = got
					if i == len(preloadChannels)-1 {
						customers.Add(1)
					}
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	side.Wait()
	rep.Elapsed = time.Since(began)
	rep.Customers, rep.Ends = customers.Load(), ends.Load()
	if err := context.Cause(ctx); err != nil {
		return rep, err
	}
	return rep, nil
}

// preloadEnd is customer k's i-th interaction. The first carries the
// identifiers and creates the customer; the others name it by customer_ref,
// as a channel that already resolved the caller does.
func preloadEnd(k, i int, channel, ref string, now time.Time) map[string]any {
	last := now.Add(-time.Duration(k%40) * 24 * time.Hour)
	ended := last.Add(-time.Duration(len(preloadChannels)-1-i) * time.Hour)
	body := map[string]any{
		"call_id": fmt.Sprintf("preload-%d-%s", k, channel), "channel": channel,
		"intent": "billing_inquiry", "intent_status": "open",
		"started_at": ended.Add(-5 * time.Minute).Format(time.RFC3339), "ended_at": ended.Format(time.RFC3339),
	}
	if ref == "" {
		body["identity_hints"] = map[string]any{
			"ani":          ani(k),
			"external_ids": map[string]string{"email": fmt.Sprintf("load-%d@example.com", k), "customer_id": "C" + strconv.Itoa(k)},
		}
		body["variables"] = map[string]string{"summary": "Customer asked about the January invoice", "ticket_id": "T" + strconv.Itoa(k), "tier": "gold"}
	} else {
		body["customer_ref"] = ref
	}
	return body
}

// postEnd sends one end; it returns the customer_ref of a 200 answer, or
// what went wrong.
func postEnd(ctx context.Context, client *http.Client, base, key string, body any, buf *bytes.Buffer) (string, string) {
	b, err := json.Marshal(body)
	if err != nil {
		panic(err) // built from maps of strings
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/calls/end", bytes.NewReader(b))
	if err != nil {
		return "", "request: " + err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", transportError(err)
	}
	buf.Reset()
	_, rerr := io.Copy(buf, resp.Body)
	resp.Body.Close()
	switch {
	case resp.StatusCode != http.StatusOK:
		return "", fmt.Sprintf("status %d", resp.StatusCode)
	case rerr != nil:
		return "", transportError(rerr)
	}
	var out struct {
		CustomerRef string `json:"customer_ref"`
	}
	if err := json.Unmarshal(buf.Bytes(), &out); err != nil || out.CustomerRef == "" {
		return "", "bad response: no customer_ref"
	}
	return out.CustomerRef, ""
}
