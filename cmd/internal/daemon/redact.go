package daemon

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/sticky-cc/sticky/cmd/internal/config"
	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/core/redact"
	"github.com/sticky-cc/sticky/core/store"
)

// newRedactor is the engine's redactor from the settings: nil when
// redaction is off.
func newRedactor(cfg config.Config, log *slog.Logger) (core.Redactor, error) {
	if !cfg.Redaction.Enabled {
		log.Warn("REDACTION IS OFF (STICKY_REDACT=false): card numbers and other secrets that customers type are stored, replicated and popped as typed")
		return nil, nil
	}
	r, err := redact.New(cfg.Redaction.Patterns...)
	if err != nil {
		return nil, &config.Error{Setting: "STICKY_REDACT_PATTERNS (redaction.patterns)", Problem: err.Error()}
	}
	return r, nil
}

// redactCommand runs "redact": it sweeps an existing store (every
// customer's variables and recent interactions, every stored interaction
// summary) with the built-in kinds and the configured patterns, then
// compacts the store so that the replaced text is gone from disk too. Run
// it with the bridge stopped (Badger allows one process). It prints a
// progress line and, at the end, counts by kind; never customer data.
// Interrupted, it continues from where it got to when run again.
func redactCommand(ctx context.Context, name string, args []string, getenv func(string) string, stderr io.Writer) int {
	cmd := name + " redact"
	batch, every := 256, time.Second
	var rest []string
	for i := 0; i < len(args); i++ {
		a := strings.TrimPrefix(args[i], "-")
		if (a == "-batch" || a == "batch" || a == "-progress-every" || a == "progress-every") && i+1 < len(args) {
			v := args[i+1]
			i++
			var err error
			if strings.HasSuffix(a, "batch") {
				batch, err = strconv.Atoi(v)
				if err == nil && batch < 1 {
					err = errors.New("must be at least 1")
				}
			} else {
				every, err = time.ParseDuration(v)
			}
			if err != nil {
				fmt.Fprintf(stderr, "%s: -%s %q: %v\n", cmd, strings.TrimPrefix(a, "-"), v, err)
				return 2
			}
			continue
		}
		rest = append(rest, args[i]) // the usual configuration (-data-dir, -config, ...)
	}
	cfg, err := config.Load(cmd, rest, getenv, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "  -batch N\n    \trecords per transaction (256)\n  -progress-every D\n    \thow often the progress line is printed (1s; 0: after every batch)")
			return 0
		}
		fmt.Fprintln(stderr, name+": "+err.Error())
		return 2
	}
	key, err := LoadKey(cfg)
	if err != nil {
		fmt.Fprintln(stderr, name+": "+err.Error())
		return 2
	}
	// The sweep uses the configured patterns even when redaction is off:
	// running it is asking for it.
	r, err := redact.New(cfg.Redaction.Patterns...)
	if err != nil {
		fmt.Fprintln(stderr, name+": "+(&config.Error{Setting: "STICKY_REDACT_PATTERNS (redaction.patterns)", Problem: err.Error()}).Error())
		return 2
	}
	minFree := int64(cfg.MinFreeMiB * (1 << 20))
	if minFree == 0 {
		minFree = -1
	}
	opts := store.Options{Dir: cfg.DataDir, EncryptionKey: key, MinFreeBytes: minFree, Compression: cfg.StoreCompression}
	db, err := store.Open(opts)
	if err != nil {
		fmt.Fprintln(stderr, name+": "+err.Error())
		return 1
	}
	// A cluster node's store is a copy of the shared memory's stream:
	// rewriting one copy would make it differ from the others, and the
	// stream would still hold the entries as they were sent.
	var memory string
	if err := db.View(func(t *store.Txn) (err error) { memory, err = t.Memory(); return err }); err != nil {
		db.Close()
		fmt.Fprintln(stderr, name+": "+err.Error())
		return 1
	}
	if memory != "" || cfg.Cluster.Name != "" {
		db.Close()
		fmt.Fprintf(stderr, "%s: %s is a node of a shared memory (STICKY_CLUSTER): redacting one node's copy would make it differ from the others while the stream keeps the text as it was sent; redacting a cluster's memory is not supported yet\n", cmd, cfg.DataDir)
		return 2
	}
	began := time.Now()
	var last time.Time
	rate := func(p store.SweepProgress, took time.Duration) string {
		if took <= 0 {
			return "0"
		}
		return strconv.FormatFloat(float64(p.Done-p.Began)/took.Seconds(), 'f', 0, 64)
	}
	first := true
	p, err := core.RedactStore(ctx, db, r, batch, func(p store.SweepProgress) {
		if first && p.Resumed {
			fmt.Fprintf(stderr, "%s: continuing an interrupted sweep at %d/%d records\n", cmd, p.Began, p.Total)
		}
		first = false
		if now := time.Now(); now.Sub(last) >= every {
			last = now
			fmt.Fprintf(stderr, "%s: %d/%d records, %s records/s\n", cmd, p.Done, p.Total, rate(p, now.Sub(began)))
		}
	})
	took := time.Since(began)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	switch {
	case err != nil && ctx.Err() != nil:
		fmt.Fprintf(stderr, "%s: stopped at %d/%d records; run it again to continue from there (redacted so far: %s)\n", cmd, p.Done, p.Total, found(p))
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v (at %d/%d records; run it again to continue)\n", cmd, err, p.Done, p.Total)
		return 1
	}
	fmt.Fprintf(stderr, "%s: done: %d/%d records in %s (%s records/s), %d rewritten; redacted %s\n",
		cmd, p.Done, p.Total, took.Round(time.Millisecond), rate(p, took), p.Rewritten, found(p))
	// The records were rewritten; their old versions are still in older
	// tables until compaction merges them away.
	if p.Rewritten > 0 {
		t := time.Now()
		if err := store.Compact(opts); err != nil {
			fmt.Fprintf(stderr, "%s: the store is redacted, but compacting away the old versions failed: %v\n", cmd, err)
			return 1
		}
		fmt.Fprintf(stderr, "%s: compacted the store in %s: the replaced text is no longer on disk\n", cmd, time.Since(t).Round(time.Millisecond))
	}
	return 0
}

// found lists a sweep's counts for every kind, in the kinds' order.
func found(p store.SweepProgress) string {
	var c redact.Counts
	for _, k := range redact.Kinds() {
		c[k] = int(p.Found[k.String()])
	}
	return c.String()
}
