// Package daemon is the process both bridges run: the engine on Badger, the
// HTTP API with the adapters and the desktop, screen-pops over NATS, and
// the one PBX attachment in which the bridges differ.
package daemon

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sticky-cc/sticky/cmd/internal/config"
	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/core/api"
	"github.com/sticky-cc/sticky/core/store"
)

// PBX is the attachment to one PBX.
type PBX interface {
	// Run attaches and keeps attaching until ctx ends; it must not block
	// the rest of the process while the PBX is away.
	Run(ctx context.Context) error
	// Status says whether the PBX is connected, for /readyz and metrics.
	Status() (connected bool, detail string)
}

// Deps is what an attachment gets to work with.
type Deps struct {
	Config config.Config
	Calls  core.Calls
	Popper core.Popper
	Logger *slog.Logger
	// Count counts noteworthy events (reconnect, resolve_timeout, ...)
	// into the process metrics.
	Count func(event string)
}

// Attach builds a bridge's PBX attachment. It returns nil and a reason
// when the PBX is not configured: the process then serves everything else.
type Attach func(d Deps) (PBX, string, error)

// Main runs a bridge process and exits.
func Main(name string, attach Attach) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := Command(ctx, name, os.Args[1:], os.Getenv, os.Stdout, os.Stderr, attach)
	stop()
	os.Exit(code)
}

// Command runs a bridge with its arguments: the service, or a subcommand.
func Command(ctx context.Context, name string, args []string, getenv func(string) string, stdout, stderr io.Writer, attach Attach) int {
	if len(args) > 0 {
		switch args[0] {
		case "backup", "restore", "rotate-key":
			return storeCommand(ctx, name, args[0], args[1:], getenv, stdout, stderr)
		case "redact":
			return redactCommand(ctx, name, args[1:], getenv, stderr)
		case "import": // import.go
			return importCommand(ctx, name, args[1:], getenv, stderr)
		case "hash-password":
			return HashPassword(os.Stdin, stdout, stderr)
		}
	}
	cfg, err := config.Load(name, args, getenv, stderr)
	if errors.Is(err, flag_ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, name+": "+err.Error())
		return 2
	}
	log := NewLogger(cfg, stderr)
	if limit := applyMemoryLimit(cfg, getenv); limit < math.MaxInt64 {
		log.Info("go heap soft limit", "mib", limit>>20)
	}
	log.Info("go processors", "gomaxprocs", applyMinProcs(cfg, getenv), "cores", runtime.NumCPU())
	if err := Run(ctx, name, cfg, attach, log, nil); err != nil {
		log.Error("stopped", "err", err)
		return 1
	}
	return 0
}

// NewLogger builds the process logger from the config.
func NewLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.LogLevel))
	o := &slog.HandlerOptions{Level: lvl}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}

// LoadKey reads the encryption key from the config: a file (raw bytes, hex
// or base64) or the variable itself (hex or base64). No key: nil.
func LoadKey(cfg config.Config) ([]byte, error) {
	var raw []byte
	setting := "STICKY_ENCRYPTION_KEY_FILE (encryption_key_file)"
	switch {
	case cfg.EncryptionKeyFile != "":
		b, err := os.ReadFile(cfg.EncryptionKeyFile)
		if err != nil {
			return nil, &config.Error{Setting: setting, Problem: err.Error()}
		}
		raw = b
	case cfg.EncryptionKey != "":
		setting = "STICKY_ENCRYPTION_KEY"
		raw = []byte(cfg.EncryptionKey)
	default:
		return nil, nil
	}
	if k, ok := keyBytes(raw); ok {
		return k, nil
	}
	return nil, &config.Error{Setting: setting, Problem: "must hold a 16, 24 or 32 byte AES key (raw, hex or base64)"}
}

func keyBytes(raw []byte) ([]byte, bool) {
	okLen := func(n int) bool { return n == 16 || n == 24 || n == 32 }
	if okLen(len(raw)) {
		return raw, true
	}
	s := strings.TrimSpace(string(raw))
	if b, err := hex.DecodeString(s); err == nil && okLen(len(b)) {
		return b, true
	}
	if b, err := base64.StdEncoding.DecodeString(s); err == nil && okLen(len(b)) {
		return b, true
	}
	return nil, false
}

// Addrs are the addresses the process bound (ports of 0 resolved).
type Addrs struct {
	HTTP string
}

// Run runs the whole process until ctx ends, then shuts down gracefully:
// no new requests, in-flight requests and calls finished, the store
// flushed and closed, all within cfg.ShutdownTimeout.
func Run(ctx context.Context, name string, cfg config.Config, attach Attach, log *slog.Logger, bound func(Addrs)) error {
	key, err := LoadKey(cfg)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if cfg.PprofAddr != "" {
		stop, err := servePprof(cfg.PprofAddr, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	minFree := int64(cfg.MinFreeMiB * (1 << 20))
	if minFree == 0 {
		minFree = -1 // off
	}
	db, err := store.Open(store.Options{Dir: cfg.DataDir, EncryptionKey: key, Logger: log, MinFreeBytes: minFree, Compression: cfg.StoreCompression})
	if err != nil {
		return err
	}
	// closeStore turns false when a component outlives the shutdown
	// deadline: closing Badger under a reader kills the process with a
	// fault (unmapped tables). Left open, the store recovers from its
	// log at the next start, and every acknowledged write is in it.
	closeStore := true
	defer func() {
		if !closeStore {
			log.Error("the store was left open at exit: a component was still using it at the shutdown deadline, and closing it under a reader would crash the process; it recovers at the next start")
			return
		}
		if err := db.Close(); err != nil {
			log.Error("closing the store", "err", err)
		} else {
			log.Info("store closed")
		}
	}()

	m := newMetrics()
	mem, err := newMemory(cfg, key, log)
	if err != nil {
		return err
	}
	var shared core.Log
	if mem != nil {
		shared = mem
	}
	redactor, err := newRedactor(cfg, log)
	if err != nil {
		return err
	}
	m.Register(newStoreCollector(db.Health))
	engine := core.New(core.Options{
		Store: db, DefaultRegion: cfg.DefaultRegion, Logger: log, Observer: m, Log: shared, Redactor: redactor,
		VariableTTL: cfg.VariableTTL, IntentWindow: cfg.IntentWindow,
		Node: nodeName(cfg), AccessRetention: cfg.AccessRetention,
		Model: cfg.Identity.Model(), DiscloseLevel: cfg.DiscloseLevel,
	})
	m.Register(accessDropped(engine))
	srv := api.New(api.Options{Engine: engine, NamedKeys: cfg.Keys, RatePerSecond: cfg.RatePerSecond, Logger: log})
	if err := srv.CheckAddr(cfg.HTTPAddr); err != nil {
		return &config.Error{Setting: "STICKY_HTTP_ADDR (http_addr)", Problem: err.Error()}
	}
	if !srv.Authenticated() {
		log.Warn("NO API KEYS CONFIGURED: the API accepts every request and is bound to loopback only; set STICKY_API_KEYS before exposing it")
	}
	srv.AddReadiness("store", true, func() (bool, string) {
		if err := db.Writable(); err != nil {
			return false, err.Error()
		}
		return true, "open"
	})
	srv.HandlePublic("GET /metrics", m.handler())

	// Components that run until ctx ends, each with an owner goroutine.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	goRun := func(what string, run func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(runCtx); err != nil && runCtx.Err() == nil {
				errc <- fmt.Errorf("%s: %w", what, err)
			}
		}()
	}
	// The access log's writer has its own context: it stops after the
	// HTTP server and, standalone, after the PBX too, so that it writes
	// what they recorded; clustered, before NATS closes, which it needs.
	accCtx, stopAccess := context.WithCancel(context.Background())
	accDone := make(chan error, 1)
	go func() { accDone <- engine.RunAccessLog(accCtx) }()
	var accOnce sync.Once
	flushAccess := func() {
		accOnce.Do(func() {
			stopAccess()
			if err := <-accDone; err != nil {
				log.Warn("access log: the last records were not written", "err", err)
			}
		})
	}
	defer flushAccess()

	var popper core.Popper = m.pops(nil)
	pops, err := startPops(runCtx, cfg, engine, srv, log, m.count)
	if err != nil {
		return err
	}
	if pops != nil {
		popper = m.pops(engine.RecordPops(pops.popper))
		goRun("screen-pops", pops.run)
	}
	if mem != nil {
		follow, err := joinMemory(runCtx, cfg, mem, engine, pops)
		if err != nil {
			return err
		}
		goRun("shared memory", follow)
	}
	mountCluster(cfg, mem, engine, srv, m)
	goRun("sweeper", engine.Run)
	sc := newStatsCollector(engine, cfg.StatsWindow, cfg.StatsEvery, log)
	m.Register(sc)
	goRun("statistics", sc.run)
	if err := mountAdapters(cfg, engine, srv, log); err != nil {
		return err
	}

	pbx, why, err := attach(Deps{Config: cfg, Calls: engine, Popper: popper, Logger: log, Count: m.count})
	if err != nil {
		return err
	}
	if pbx == nil {
		log.Warn("no PBX attached; serving the API, adapters and screen-pops only", "why", why)
		srv.AddReadiness("pbx", false, func() (bool, string) { return false, "not configured: " + why })
		m.pbxStatus(func() (bool, string) { return false, why })
	} else {
		srv.AddReadiness("pbx", false, pbx.Status)
		m.pbxStatus(pbx.Status)
		goRun("pbx", pbx.Run)
	}

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return &config.Error{Setting: "STICKY_HTTP_ADDR (http_addr)", Problem: err.Error()}
	}
	log.Info(name+" listening", "http", "http://"+ln.Addr().String(), "data_dir", cfg.DataDir)
	if bound != nil {
		bound(Addrs{HTTP: ln.Addr().String()})
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	httpDone := make(chan error, 1)
	go func() { httpDone <- hs.Serve(ln) }()

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "deadline", cfg.ShutdownTimeout)
	case runErr = <-errc:
		log.Error("component failed; shutting down", "err", runErr)
	case err := <-httpDone:
		runErr = fmt.Errorf("http: %w", err)
	}
	sctx, scancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer scancel()
	if err := hs.Shutdown(sctx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	if mem != nil {
		flushAccess()
	}
	cancel()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-sctx.Done():
		log.Warn("components did not stop within the shutdown deadline")
		closeStore = false
	}
	flushAccess()
	return runErr
}
