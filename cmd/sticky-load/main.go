// Command sticky-load drives calls against a running bridge over HTTP at a
// fixed rate and reports the achieved rate, latency quantiles and errors.
//
// It is open loop: calls are scheduled at fixed times and latency is
// measured from the time a request was due, so a stalled bridge shows up
// as latency instead of as a quietly lower request rate.
//
// Subcommands: "preload" loads customers through the API; "floor" serves
// the floor (a Go HTTP server answering 1 KB); "tail" runs the whole tail
// measurement (a bridge it starts, preloaded, against the floor).
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
	ctx, stop := signalContext()
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
}

// run is the command: 0 when every request succeeded, 1 when some failed,
// 2 for bad arguments.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "preload":
			return runPreload(ctx, args[1:], getenv, stdout, stderr)
		case "floor":
			return runFloor(ctx, args[1:], stdout, stderr)
		case "tail":
			return runTail(ctx, args[1:], getenv, stdout, stderr)
		}
	}
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
	cfg.Keys = splitKeys(*keys, getenv)
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

// splitKeys is -key, or STICKY_LOAD_KEYS without it, as a list.
func splitKeys(flagValue string, getenv func(string) string) []string {
	if flagValue == "" {
		flagValue = getenv("STICKY_LOAD_KEYS")
	}
	var keys []string
	for k := range strings.SplitSeq(flagValue, ",") {
		if k = strings.TrimSpace(k); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

// parse parses a subcommand's flags: -1 to go on, else the exit code.
func parse(fs *flag.FlagSet, args []string, stderr io.Writer) int {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return 2
	}
	return -1
}

func runPreload(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sticky-load preload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg PreloadConfig
	fs.StringVar(&cfg.URL, "url", "http://127.0.0.1:8080", "bridge base URL")
	keys := fs.String("key", "", "API key; several comma-separated are used in turn (default: env STICKY_LOAD_KEYS)")
	fs.IntVar(&cfg.Customers, "customers", 100_000, "customers to load, each with a chat, an email and a call (three durable ends)")
	fs.IntVar(&cfg.Concurrency, "concurrency", 64, "customers loaded at once")
	fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Second, "per request")
	fs.DurationVar(&cfg.Every, "every", 10*time.Second, "progress period (0: none)")
	if code := parse(fs, args, stderr); code >= 0 {
		return code
	}
	cfg.Keys = splitKeys(*keys, getenv)
	began := time.Now()
	cfg.Progress = func(p PreloadProgress) {
		eta := "-"
		if p.Customers > 0 {
			eta = time.Duration(float64(time.Since(began)) * float64(int64(cfg.Customers)-p.Customers) / float64(p.Customers)).Round(time.Second).String()
		}
		fmt.Fprintf(stdout, "t=%-6s %d/%d customers, %d ends, %.0f ends/s now, errors %d, eta %s\n", p.Elapsed, p.Customers, cfg.Customers, p.Ends, p.Rate, p.Errors, eta)
	}
	rep, err := Preload(ctx, cfg)
	if rep == nil {
		fmt.Fprintln(stderr, "sticky-load: "+err.Error())
		return 2
	}
	fmt.Fprintf(stdout, "preload: %d customers (%d durable ends) in %s: %.0f ends/s, %.0f customers/s; end served p50 %s p99 %s; errors %d\n",
		rep.Customers, rep.Ends, rep.Elapsed.Round(time.Millisecond), rep.EndsPerSecond(), float64(rep.Customers)/rep.Elapsed.Seconds(),
		ms(rep.End.Quantile(0.5)), ms(rep.End.Quantile(0.99)), rep.ErrorCount())
	for _, k := range sortedErrors(rep.Errors) {
		fmt.Fprintf(stdout, "  %-30s %d\n", k, rep.Errors[k])
	}
	if err != nil {
		fmt.Fprintln(stdout, "stopped: "+err.Error())
	}
	if err != nil || rep.ErrorCount() > 0 {
		return 1
	}
	return 0
}

func runFloor(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sticky-load floor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8090", "listen address (port 0 picks one)")
	if code := parse(fs, args, stderr); code >= 0 {
		return code
	}
	err := ServeFloor(ctx, *addr, func(a string) { fmt.Fprintf(stdout, "floor listening on http://%s\n", a) })
	if err != nil {
		fmt.Fprintln(stderr, "sticky-load floor: "+err.Error())
		return 1
	}
	return 0
}

func runTail(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sticky-load tail", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg TailConfig
	fs.StringVar(&cfg.Bridge, "bridge", "", "bridge binary to start on loopback with a temporary data directory (e.g. a built ari-bridge)")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "data directory for the started bridge, kept afterwards (default: a temporary one, removed)")
	env := fs.String("bridge-env", "", "extra environment for the started bridge, comma-separated KEY=VALUE (e.g. GOGC=200)")
	fs.StringVar(&cfg.URL, "url", "", "a running bridge instead of -bridge")
	keys := fs.String("key", "", "API key of the running bridge (default: env STICKY_LOAD_KEYS)")
	fs.IntVar(&cfg.PID, "pid", 0, "process id of the running bridge, for its memory")
	fs.StringVar(&cfg.PprofURL, "pprof-url", "", "the running bridge's pprof listener (STICKY_PPROF_ADDR), for -profile-dir")
	fs.IntVar(&cfg.Customers, "customers", 1_000_000, "customers preloaded and called")
	fs.BoolVar(&cfg.Preload, "preload", true, "preload the customers first (false: the data directory already holds them)")
	fs.IntVar(&cfg.PreloadConcurrency, "preload-concurrency", 64, "customers loaded at once")
	fs.Float64Var(&cfg.PreloadBaseline, "preload-baseline", 3179, "preload rate to meet, in durable ends per second (issue 17's run before the changes)")
	fs.IntVar(&cfg.StartRounds, "start-rounds", 3, "rounds of starts")
	fs.DurationVar(&cfg.StartFor, "start-for", 20*time.Second, "length of each start round")
	fs.Float64Var(&cfg.StartRate, "start-rate", 2000, "starts per second")
	fs.DurationVar(&cfg.MixedFor, "mixed-for", 10*time.Minute, "length of the mixed load (0: none)")
	fs.DurationVar(&cfg.MixedEvery, "mixed-every", time.Minute, "a line per window of the mixed load")
	fs.Float64Var(&cfg.MixedRate, "mixed-rate", 1000, "mixed requests per second (calls that start, then end synced)")
	fs.DurationVar(&cfg.FloorFor, "floor-for", 0, "length of each floor phase (default: as long as the bridge's, at most 1m)")
	fs.StringVar(&cfg.FloorURL, "floor-url", "", "a floor already serving (sticky-load floor) instead of starting one")
	fs.IntVar(&cfg.Concurrency, "concurrency", TailConcurrency, "most requests in flight (open loop: enough that stalled ends do not hold back the starts due meanwhile)")
	fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Second, "per request")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "seed for the choice of callers")
	fs.StringVar(&cfg.ProfileDir, "profile-dir", "", "save the bridge's CPU profile of each phase and a heap profile after it here")
	if code := parse(fs, args, stderr); code >= 0 {
		return code
	}
	cfg.Keys = splitKeys(*keys, getenv)
	for kv := range strings.SplitSeq(*env, ",") {
		if kv = strings.TrimSpace(kv); kv != "" {
			cfg.BridgeEnv = append(cfg.BridgeEnv, kv)
		}
	}
	rep, err := RunTail(ctx, cfg, stdout)
	if rep == nil && err != nil {
		fmt.Fprintln(stderr, "sticky-load tail: "+err.Error())
		return 2
	}
	if err != nil {
		fmt.Fprintln(stdout, "stopped: "+err.Error())
		return 1
	}
	return 0
}
