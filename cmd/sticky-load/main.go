// Command sticky-load drives calls against a running bridge over HTTP at a
// fixed rate and reports the achieved rate, latency quantiles and errors.
//
// It is open loop: calls are scheduled at fixed times and latency is
// measured from the time a request was due, so a stalled bridge shows up
// as latency instead of as a quietly lower request rate.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the command: 0 when every request succeeded, 1 when some failed,
// 2 for bad arguments.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sticky-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg Config
	fs.StringVar(&cfg.URL, "url", "http://127.0.0.1:8080", "bridge base URL")
	keys := fs.String("key", "", "API key; several comma-separated are used in turn (default: env STICKY_LOAD_KEYS)")
	fs.Float64Var(&cfg.Rate, "rate", 100, "target requests per second (starts and ends together)")
	fs.DurationVar(&cfg.Duration, "duration", 30*time.Second, "how long to send")
	fs.IntVar(&cfg.Concurrency, "concurrency", 64, "most requests in flight")
	fs.IntVar(&cfg.Customers, "customers", 1000, "distinct callers; identities repeat when there are more calls")
	fs.Float64Var(&cfg.Mix, "mix", 1, "share of calls that are phone calls (start then end); the rest are end-only chats")
	fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Second, "per request")
	fs.StringVar(&cfg.RunID, "run-id", "", "call id prefix (default: from the clock, unique per run)")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "seed for the choice of callers and intents")
	fs.DurationVar(&cfg.Every, "every", 10*time.Second, "progress period (0: none)")
	fs.IntVar(&cfg.PID, "pid", 0, "process id of the bridge, to sample its resident memory (VmRSS) from /proc")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sticky-load: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *keys == "" {
		*keys = getenv("STICKY_LOAD_KEYS")
	}
	for k := range strings.SplitSeq(*keys, ",") {
		if k = strings.TrimSpace(k); k != "" {
			cfg.Keys = append(cfg.Keys, k)
		}
	}
	cfg.Progress = func(p Progress) { fmt.Fprintln(stdout, progressLine(p)) }
	fmt.Fprintf(stdout, "sticky-load: %s at %.0f req/s for %s, %d customers, mix %.2f, concurrency %d\n",
		cfg.URL, cfg.Rate, cfg.Duration, cfg.Customers, cfg.Mix, cfg.Concurrency)
	rep, err := Run(ctx, cfg)
	if rep == nil {
		fmt.Fprintln(stderr, "sticky-load: "+err.Error())
		return 2
	}
	if err != nil {
		fmt.Fprintln(stdout, "interrupted: "+err.Error())
	}
	printReport(stdout, rep)
	if rep.ErrorCount() > 0 || err != nil {
		return 1
	}
	return 0
}

func progressLine(p Progress) string {
	s := fmt.Sprintf("t=%-5s done=%-8d rate=%7.1f/s p50=%-8s p99=%-8s errors=%d in_flight=%d",
		p.Elapsed, p.Done, p.Rate, ms(p.P50), ms(p.P99), p.Errors, p.InFlight)
	if p.RSSOK {
		s += " rss=" + mib(p.RSS)
	}
	return s
}

func printReport(w io.Writer, r *Report) {
	fmt.Fprintf(w, "requests:  %d (%d starts, %d ends) in %d calls over %.1fs, %d distinct customers\n",
		r.Requests, r.Starts, r.Ends, r.Calls, r.Elapsed.Seconds(), r.Customers)
	fmt.Fprintf(w, "rate:      %.1f req/s answered 200 (target %.0f)\n", r.Achieved(), r.Target)
	for _, h := range []struct {
		name string
		h    *Histogram
	}{{"latency:  ", r.Latency}, {"  start:  ", r.Start}, {"  end:    ", r.End}} {
		fmt.Fprintf(w, "%s p50 %s  p99 %s  p999 %s  max %s  (n=%d, from scheduled send time)\n",
			h.name, ms(h.h.Quantile(0.5)), ms(h.h.Quantile(0.99)), ms(h.h.Quantile(0.999)), ms(h.h.Max()), h.h.Count())
	}
	for _, h := range []struct {
		name string
		h    *Histogram
	}{{"  start served:", r.StartServed}, {"  end served:  ", r.EndServed}} {
		fmt.Fprintf(w, "%s p50 %s  p99 %s  p999 %s  max %s  (n=%d, from when it was sent)\n",
			h.name, ms(h.h.Quantile(0.5)), ms(h.h.Quantile(0.99)), ms(h.h.Quantile(0.999)), ms(h.h.Max()), h.h.Count())
	}
	fmt.Fprintf(w, "schedule:  most a call waited for a free worker %s\n", ms(r.MaxLag))
	if r.ErrorCount() == 0 {
		fmt.Fprintln(w, "errors:    0")
	} else {
		fmt.Fprintf(w, "errors:    %d\n", r.ErrorCount())
		for _, k := range sortedErrors(r.Errors) {
			fmt.Fprintf(w, "  %-30s %d\n", k, r.Errors[k])
		}
		if r.NotSent > 0 {
			fmt.Fprintf(w, "  %-30s %d\n", "not sent by the deadline", r.NotSent)
		}
		if r.Skipped > 0 {
			fmt.Fprintf(w, "  (%d ends not sent because their start failed)\n", r.Skipped)
		}
	}
	if r.RSS.PID != 0 {
		fmt.Fprintf(w, "rss:       pid %d start %s  end %s  max %s\n", r.RSS.PID, mib(r.RSS.Start), mib(r.RSS.End), mib(r.RSS.Max))
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000) }

func mib(b int64) string { return fmt.Sprintf("%.1fMiB", float64(b)/(1<<20)) }
