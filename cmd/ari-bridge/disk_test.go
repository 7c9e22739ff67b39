package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// needRoot skips where the test cannot mount or change users; CI runs as
// root and sets STICKY_CI=1, which turns the skip into a failure.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("STICKY_CI") == "1" {
		t.Fatal("this test needs root (mount, setuid); CI must run as root")
	}
	t.Skip("needs root to mount a small file system or to run the bridge as another user")
}

// endOnce posts one end and returns the status and body.
func endOnce(t *testing.T, addr, callID string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	code, body, err := post(ctx, addr, "/v1/calls/end", map[string]any{
		"call_id": callID, "customer_ref": "cust_disk",
		"variables": map[string]string{"summary": "written " + callID},
	})
	if err != nil {
		t.Fatal(err)
	}
	return code, string(body)
}

// waitStatus repeats a fresh end until it gets want, and returns that
// answer with the ids of the ends answered 200 and 503 on the way.
func waitStatus(t *testing.T, addr, prefix string, want int) (body string, saved, refused []string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; ; i++ {
		id := fmt.Sprintf("%s_%d", prefix, i)
		code, body := endOnce(t, addr, id)
		switch code {
		case http.StatusOK:
			saved = append(saved, id)
		case http.StatusServiceUnavailable:
			refused = append(refused, id)
		default:
			t.Fatalf("end %s: %d %s", id, code, body)
		}
		if code == want {
			return body, saved, refused
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %d within 20s; last %d %s", want, code, body)
		}
		time.Sleep(50 * time.Millisecond) // pacing the poll, not synchronising
	}
}

// history returns the call ids saved for cust_disk.
func history(t *testing.T, addr string) map[string]bool {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+"/v1/customers/cust_disk?history_limit=1000", nil)
	req.Header.Set("Authorization", "Bearer crash-key")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var p struct {
		History []struct {
			CallID string `json:"call_id"`
		} `json:"history"`
	}
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	out := map[string]bool{}
	for _, h := range p.History {
		out[h.CallID] = true
	}
	return out
}

func checkRefusedNotSaved(t *testing.T, addr string, refused []string, saved ...string) {
	t.Logf("%d ends answered 200 found in the store, %d answered 503 absent", len(saved), len(refused))
	t.Helper()
	h := history(t, addr)
	for _, id := range refused {
		if h[id] {
			t.Errorf("end %s was answered 503 but is in the store", id)
		}
	}
	for _, id := range saved {
		if !h[id] {
			t.Errorf("end %s was answered 200 but is not in the store", id)
		}
	}
}

// TestFullDiskAnswers503 runs the bridge on a small tmpfs, fills it, and
// checks that ends are refused with a clear 503 (not a 200 for a write that
// could not be kept, and not a SIGBUS from Badger's memory-mapped log),
// then accepted again once space is freed.
func TestFullDiskAnswers503(t *testing.T) {
	needRoot(t)
	bin := buildBridge(t)
	mnt := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=96m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })

	b := startBridge(t, bin, filepath.Join(mnt, "data"), "STICKY_MIN_FREE_MIB=24")
	t.Cleanup(func() { b.cmd.Process.Kill(); b.cmd.Wait() })

	if code, body := endOnce(t, b.addr, "before_full"); code != 200 {
		t.Fatalf("end on a healthy disk: %d %s\n%s", code, body, b.log())
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	filler := filepath.Join(mnt, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	// Leave 8 MiB: below the bridge's 24 MiB floor, above zero.
	if _, err := io.CopyN(f, zeros{}, free-8<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()

	body, saved, refused := waitStatus(t, b.addr, "while_full", http.StatusServiceUnavailable)
	if !strings.Contains(body, "full") || !strings.Contains(body, "Service Unavailable") {
		t.Fatalf("503 must say the disk is full in the error envelope: %s", body)
	}
	// Every write while full is refused.
	for i := range 20 {
		id := fmt.Sprintf("refused_%d", i)
		if code, body := endOnce(t, b.addr, id); code != http.StatusServiceUnavailable {
			t.Fatalf("end %s on a full disk: %d %s", id, code, body)
		}
		refused = append(refused, id)
	}
	if code, body := get(t, "http://"+b.addr+"/readyz"); code == 200 || !strings.Contains(body, "full") {
		t.Fatalf("readyz on a full disk: %d %s", code, body)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	_, saved2, refused2 := waitStatus(t, b.addr, "after_free", http.StatusOK)
	// Every end answered 503 is absent; every end answered 200 is there.
	checkRefusedNotSaved(t, b.addr, append(refused, refused2...), append(append(saved, saved2...), "before_full")...)
	if code, body := endOnce(t, b.addr, "refused_0"); code != 200 {
		t.Fatalf("retrying a refused end after recovery: %d %s", code, body)
	}
}

// TestReadOnlyDataDirAnswers503 runs the bridge as an unprivileged user and
// takes away its write permission on the data directory while it runs.
func TestReadOnlyDataDirAnswers503(t *testing.T) {
	needRoot(t)
	bin := buildBridge(t)
	// The bridge runs as nobody: it must reach its binary and its data.
	base := t.TempDir()
	for p := bin; p != "/"; p = filepath.Dir(p) {
		if strings.HasPrefix(p, os.TempDir()) && p != os.TempDir() {
			os.Chmod(p, 0o755)
		}
	}
	for p := base; p != "/" && p != os.TempDir(); p = filepath.Dir(p) {
		os.Chmod(p, 0o755)
	}
	data := filepath.Join(base, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	const nobody = 65534
	if err := os.Chown(data, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	b := startBridgeAs(t, bin, data, nobody)
	t.Cleanup(func() { b.cmd.Process.Kill(); b.cmd.Wait() })

	if code, body := endOnce(t, b.addr, "before_ro"); code != 200 {
		t.Fatalf("end on a writable dir: %d %s\n%s", code, body, b.log())
	}
	if err := os.Chmod(data, 0o555); err != nil {
		t.Fatal(err)
	}
	body, saved, refused := waitStatus(t, b.addr, "while_ro", http.StatusServiceUnavailable)
	if !strings.Contains(body, "not writable") {
		t.Fatalf("503 must say the directory is not writable: %s", body)
	}
	for i := range 10 {
		id := fmt.Sprintf("ro_refused_%d", i)
		if code, body := endOnce(t, b.addr, id); code != http.StatusServiceUnavailable {
			t.Fatalf("end %s on a read-only dir: %d %s", id, code, body)
		}
		refused = append(refused, id)
	}
	if err := os.Chmod(data, 0o755); err != nil {
		t.Fatal(err)
	}
	_, saved2, refused2 := waitStatus(t, b.addr, "after_ro", http.StatusOK)
	checkRefusedNotSaved(t, b.addr, append(refused, refused2...), append(append(saved, saved2...), "before_ro")...)
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer crash-key")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
