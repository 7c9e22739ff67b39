package daemon

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sticky-cc/sticky/cmd/internal/config"
	"github.com/sticky-cc/sticky/core"
)

func noPBX(Deps) (PBX, string, error) { return nil, "test", nil }

// runDaemon runs the process in-process until the test ends.
func runDaemon(t *testing.T, env map[string]string) (string, func() error) {
	t.Helper()
	addr, stop, _ := startDaemon(t, env, noPBX)
	return addr, stop
}

// startDaemon is runDaemon with a PBX attachment, returning the process's
// log too.
func startDaemon(t *testing.T, env map[string]string, attach Attach) (string, func() error, *syncBuffer) {
	t.Helper()
	base := map[string]string{"STICKY_HTTP_ADDR": "127.0.0.1:0", "STICKY_NATS_ADDR": "127.0.0.1:0", "STICKY_NATS_WS_ADDR": "127.0.0.1:0"}
	for k, v := range env {
		base[k] = v
	}
	cfg, err := config.Load("test", nil, func(k string) string { return base[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	logs := &syncBuffer{}
	go func() {
		done <- Run(ctx, "test", cfg, attach, NewLogger(cfg, logs), func(a Addrs) { addr <- a.HTTP })
	}()
	select {
	case a := <-addr:
		// stop ends the process and waits for it; the cleanup does too,
		// so that the test's directories are removed only once the store
		// is closed.
		var once sync.Once
		var runErr error
		stop := func() error { cancel(); once.Do(func() { runErr = <-done }); return runErr }
		t.Cleanup(func() { stop() })
		return a, stop, logs
	case err := <-done:
		t.Fatalf("run: %v\n%s", err, logs.String())
	case <-time.After(20 * time.Second):
		t.Fatal("did not start")
	}
	return "", nil, nil
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func postJSON(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestProcessServesHealthMetricsAndShutsDown(t *testing.T) {
	dir := t.TempDir()
	addr, stop := runDaemon(t, map[string]string{"STICKY_DATA_DIR": dir})
	if code, _ := get(t, "http://"+addr+"/healthz"); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	// Ready once the embedded NATS is up and its stream exists; the PBX
	// is reported but does not gate readiness.
	var code int
	var body string
	for deadline := time.Now().Add(20 * time.Second); ; {
		code, body = get(t, "http://"+addr+"/readyz")
		if code == 200 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // polling a condition, not synchronising
	}
	if code != 200 || !strings.Contains(body, `"pbx":{"ok":false`) || !strings.Contains(body, `"store":{"ok":true`) || !strings.Contains(body, `"screen-pops":{"ok":true`) {
		t.Fatalf("readyz %d %s", code, body)
	}
	if code, body := postJSON(t, "http://"+addr+"/v1/calls/end", `{"call_id":"m1","customer_ref":"c1","channel":"chat"}`); code != 200 {
		t.Fatalf("end %d %s", code, body)
	}
	_, metrics := get(t, "http://"+addr+"/metrics")
	for _, want := range []string{`sticky_ends_total{channel="chat"} 1`, "sticky_resolve_seconds_bucket", "sticky_pbx_connected 0",
		"sticky_store_l0_tables 0", "sticky_store_lsm_bytes ", "sticky_store_vlog_bytes ", "sticky_store_compactions_running 0",
		"sticky_store_block_cache_hit_ratio ", "sticky_store_disk_free_bytes ", `sticky_store_level_tables{level="0"} 0`, `sticky_store_level_bytes{level="6"} 0`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	// the store was closed cleanly: it opens again and holds the end
	addr, stop = runDaemon(t, map[string]string{"STICKY_DATA_DIR": dir})
	if code, body := get(t, "http://"+addr+"/v1/customers/c1"); code != 200 || !strings.Contains(body, `"m1"`) {
		t.Fatalf("after restart %d %s", code, body)
	}
	stop()
}

func TestNoKeysOnAPublicAddressIsRefused(t *testing.T) {
	cfg, err := config.Load("test", nil, func(k string) string {
		return map[string]string{"STICKY_HTTP_ADDR": "0.0.0.0:0", "STICKY_DATA_DIR": t.TempDir()}[k]
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	err = Run(context.Background(), "test", cfg, noPBX, NewLogger(cfg, io.Discard), nil)
	if err == nil || !strings.Contains(err.Error(), "STICKY_HTTP_ADDR") || !strings.Contains(err.Error(), "STICKY_API_KEYS") {
		t.Fatalf("got %v", err)
	}
}

func command(t *testing.T, env map[string]string, args ...string) (int, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Command(context.Background(), "test", args, func(k string) string { return env[k] }, &out, &errb, noPBX)
	return code, errb.String()
}

func TestEncryptionBackupRestoreAndKeyRotation(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(t.TempDir(), "key")
	os.WriteFile(keyFile, []byte(hex.EncodeToString(bytes.Repeat([]byte{7}, 32))), 0o600)
	env := map[string]string{"STICKY_DATA_DIR": dir, "STICKY_ENCRYPTION_KEY_FILE": keyFile}
	addr, stop := runDaemon(t, env)
	if code, body := postJSON(t, "http://"+addr+"/v1/calls/end", `{"call_id":"enc1","customer_ref":"cust_secret","variables":{"summary":"plaintext-marker-xyz"}}`); code != 200 {
		t.Fatal(body)
	}
	stop()
	// nothing readable on disk
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			if b, _ := os.ReadFile(p); bytes.Contains(b, []byte("plaintext-marker-xyz")) {
				t.Errorf("%s holds the plaintext", p)
			}
		}
		return nil
	})
	// without the key the store does not open
	if _, _, err := openWith(dir, nil); err == nil {
		t.Fatal("encrypted store opened without its key")
	}
	// backup, restore into a new directory (encrypted with the same key)
	backup := filepath.Join(t.TempDir(), "sticky.bak")
	if code, msg := command(t, env, "backup", "-file", backup); code != 0 {
		t.Fatalf("backup: %s", msg)
	}
	restored := t.TempDir()
	renv := map[string]string{"STICKY_DATA_DIR": restored, "STICKY_ENCRYPTION_KEY_FILE": keyFile}
	if code, msg := command(t, renv, "restore", "-file", backup); code != 0 {
		t.Fatalf("restore: %s", msg)
	}
	if code, _ := command(t, renv, "restore", "-file", backup); code == 0 {
		t.Fatal("restore into a non-empty directory was accepted")
	}
	// rotate the restored copy's key, then it opens with the new key only
	newKey := filepath.Join(t.TempDir(), "new")
	os.WriteFile(newKey, bytes.Repeat([]byte{9}, 16), 0o600)
	if code, msg := command(t, renv, "rotate-key", "-new-key-file", newKey); code != 0 {
		t.Fatalf("rotate: %s", msg)
	}
	renv["STICKY_ENCRYPTION_KEY_FILE"] = newKey
	addr, stop = runDaemon(t, renv)
	if code, body := get(t, "http://"+addr+"/v1/customers/cust_secret"); code != 200 || !strings.Contains(body, "plaintext-marker-xyz") {
		t.Fatalf("restored and rotated store: %d %s", code, body)
	}
	stop()
	old, _ := os.ReadFile(keyFile)
	k, _ := keyBytes(old)
	if _, _, err := openWith(restored, k); err == nil {
		t.Fatal("rotated store still opens with the old key")
	}
}

func TestAdaptersAreServedByTheProcess(t *testing.T) {
	addr, stop := runDaemon(t, map[string]string{"STICKY_DATA_DIR": t.TempDir()})
	defer stop()
	code, body := postJSON(t, "http://"+addr+"/v1/adapters/chat", `{"session_id":"chat_session_1","customer":{"email":"jane@example.test"},
		"summary":"Asked about the refund","intent":"refund_status","intent_status":"open"}`)
	if code != 200 {
		t.Fatalf("chat adapter: %d %s", code, body)
	}
	code, body = postJSON(t, "http://"+addr+"/v1/calls/start", `{"call_id":"c1","identity_hints":{"external_ids":{"email":"Jane@Example.test"}}}`)
	if code != 200 || !strings.Contains(body, "chat_session_1") || !strings.Contains(body, "refund_status") {
		t.Fatalf("start after a chat: %d %s", code, body)
	}
}

// Profiles are served only when asked for, on their own loopback listener,
// never on the API's address.
func TestPprofIsOptInAndSeparate(t *testing.T) {
	var logs syncBuffer
	cfg, err := config.Load("test", nil, func(k string) string {
		return map[string]string{"STICKY_HTTP_ADDR": "127.0.0.1:0", "STICKY_NATS_ADDR": "127.0.0.1:0", "STICKY_NATS_WS_ADDR": "127.0.0.1:0",
			"STICKY_DATA_DIR": t.TempDir(), "STICKY_PPROF_ADDR": "127.0.0.1:0"}[k]
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- Run(ctx, "test", cfg, noPBX, NewLogger(cfg, &logs), func(a Addrs) { addr <- a.HTTP }) }()
	var api string
	select {
	case api = <-addr:
	case err := <-done:
		t.Fatalf("run: %v", err)
	}
	defer func() { cancel(); <-done }()
	m := regexp.MustCompile(`msg="pprof listening" addr=(\S+)`).FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no pprof address logged:\n%s", logs.String())
	}
	if code, body := get(t, "http://"+m[1]+"/debug/pprof/"); code != 200 || !strings.Contains(body, "goroutine") {
		t.Fatalf("pprof index: %d", code)
	}
	if code, _ := get(t, "http://"+api+"/debug/pprof/"); code == 200 {
		t.Fatal("pprof served on the API address")
	}
	if config.Defaults().PprofAddr != "" {
		t.Fatal("pprof is on by default")
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// stuckPBX is a component that goes on using the engine after its
// context ends, until released.
type stuckPBX struct {
	calls   core.Calls
	release chan struct{}
	result  chan error
}

func (p *stuckPBX) Run(ctx context.Context) error {
	<-ctx.Done()
	<-p.release
	_, err := p.calls.End(context.Background(), core.EndRequest{CallID: "late", CustomerRef: "c1", Channel: "chat"})
	p.result <- err
	return nil
}

func (p *stuckPBX) Status() (bool, string) { return false, "stuck" }

// A component still running at the shutdown deadline keeps the store: it
// is not closed under it (which crashes a reader with a fault).
func TestStoreIsNotClosedUnderAComponentPastTheDeadline(t *testing.T) {
	p := &stuckPBX{release: make(chan struct{}), result: make(chan error, 1)}
	attach := func(d Deps) (PBX, string, error) { p.calls = d.Calls; return p, "", nil }
	_, stop, logs := startDaemon(t, map[string]string{"STICKY_DATA_DIR": t.TempDir(), "STICKY_SHUTDOWN_TIMEOUT": "200ms"}, attach)
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	if !strings.Contains(logs.String(), "the store was left open at exit") {
		t.Fatalf("no word of the store left open:\n%s", logs.String())
	}
	close(p.release)
	if err := <-p.result; err != nil {
		t.Fatalf("the component outliving the deadline found the store closed: %v", err)
	}
}
