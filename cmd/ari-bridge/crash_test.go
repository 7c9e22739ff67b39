package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"
)

// bridge is a running bridge process.
type bridge struct {
	cmd  *exec.Cmd
	addr string
	logs *bytes.Buffer
	mu   *sync.Mutex
}

var listening = regexp.MustCompile(`listening.*http=http://([0-9.:]+)`)

// buildBridge compiles this command once per test binary.
func buildBridge(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ari-bridge")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

func startBridge(t *testing.T, bin, dataDir string, env ...string) *bridge {
	t.Helper()
	return startBridgeAs(t, bin, dataDir, -1, env...)
}

// startBridgeAs starts the bridge as user uid (-1: as this process).
func startBridgeAs(t *testing.T, bin, dataDir string, uid int, env ...string) *bridge {
	t.Helper()
	cmd := exec.Command(bin)
	if uid >= 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
		cmd.Dir = dataDir
	}
	cmd.Env = append(os.Environ(),
		"STICKY_DATA_DIR="+dataDir, "STICKY_HTTP_ADDR=127.0.0.1:0",
		"STICKY_NATS_ADDR=127.0.0.1:0", "STICKY_NATS_WS_ADDR=127.0.0.1:0",
		"STICKY_API_KEYS=crash-key", "STICKY_RATE_PER_SECOND=100000")
	cmd.Env = append(cmd.Env, env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b := &bridge{cmd: cmd, logs: &bytes.Buffer{}, mu: &sync.Mutex{}}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			b.mu.Lock()
			b.logs.WriteString(line + "\n")
			b.mu.Unlock()
			if m := listening.FindStringSubmatch(line); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case b.addr = <-addr:
	case <-time.After(90 * time.Second): // a cluster node waits for its NATS cluster to form
		cmd.Process.Kill()
		t.Fatalf("bridge did not start:\n%s", b.log())
	}
	return b
}

func (b *bridge) log() string { b.mu.Lock(); defer b.mu.Unlock(); return b.logs.String() }

func (b *bridge) kill(t *testing.T) {
	t.Helper()
	if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = b.cmd.Wait()
}

func post(ctx context.Context, addr, path string, body any) (int, []byte, error) {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+addr+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer crash-key")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out, nil
}

type ack struct{ ref, callID, value string }

// TestCrashLosesNoAcknowledgedEnd kills the bridge with SIGKILL at random
// moments while several clients send ends, restarts it, and checks that
// every end that was answered 200 is there, complete.
func TestCrashLosesNoAcknowledgedEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills processes")
	}
	bin := buildBridge(t)
	dir := t.TempDir()
	const kills, clients = 20, 4
	var all []ack
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for round := range kills {
		b := startBridge(t, bin, dir)
		// the store must have opened cleanly with everything acknowledged before
		verify(t, b, all)
		ctx, cancel := context.WithCancel(context.Background())
		var mu sync.Mutex
		var acked []ack
		var wg sync.WaitGroup
		killAfter := 10 + rng.IntN(150)
		enough := make(chan struct{})
		var once sync.Once
		for c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ref := fmt.Sprintf("cust_r%d_c%d", round, c)
				for i := 0; ctx.Err() == nil; i++ {
					a := ack{ref, fmt.Sprintf("r%d-c%d-%d", round, c, i), fmt.Sprintf("v%d", rand.Int())}
					status, _, err := post(ctx, b.addr, "/v1/calls/end", map[string]any{
						"call_id": a.callID, "customer_ref": ref, "intent": "crash_test",
						"variables": map[string]string{"last": a.value, "summary": "end " + a.callID},
					})
					if err != nil {
						return // killed mid-request: not acknowledged
					}
					if status != 200 {
						t.Errorf("end %s: status %d", a.callID, status)
						return
					}
					mu.Lock()
					acked = append(acked, a)
					if len(acked) >= killAfter {
						once.Do(func() { close(enough) })
					}
					mu.Unlock()
				}
			}()
		}
		select {
		case <-enough:
		case <-time.After(60 * time.Second):
			t.Fatalf("round %d: no progress\n%s", round, b.log())
		}
		b.kill(t) // while requests are in flight
		cancel()
		wg.Wait()
		mu.Lock()
		all = append(all, acked...)
		mu.Unlock()
	}
	b := startBridge(t, bin, dir)
	defer b.kill(t)
	verify(t, b, all)
	t.Logf("%d SIGKILLs, %d acknowledged ends checked after restart, none lost", kills, len(all))
	fmt.Printf("crash test: %d SIGKILLs, %d acknowledged ends checked, none lost\n", kills, len(all))
}

// verify reads every acknowledged end back: each call is in its customer's
// history with its summary, and each customer's last value is one that was
// acknowledged or sent after it.
func verify(t *testing.T, b *bridge, acks []ack) {
	t.Helper()
	byRef := map[string][]ack{}
	for _, a := range acks {
		byRef[a.ref] = append(byRef[a.ref], a)
	}
	for ref, list := range byRef {
		req, _ := http.NewRequest("GET", "http://"+b.addr+"/v1/customers/"+ref+"?history_limit=1000", nil)
		req.Header.Set("Authorization", "Bearer crash-key")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var p struct {
			History []struct {
				CallID  string `json:"call_id"`
				Summary string `json:"summary"`
			} `json:"history"`
			OpenIntents []struct {
				AttemptCount int `json:"attempt_count"`
			} `json:"open_intents"`
		}
		err = json.NewDecoder(resp.Body).Decode(&p)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("customer %s: status %d, %v\n%s", ref, resp.StatusCode, err, b.log())
		}
		have := map[string]string{}
		for _, h := range p.History {
			have[h.CallID] = h.Summary
		}
		for _, a := range list {
			if have[a.callID] != "end "+a.callID {
				t.Fatalf("acknowledged end %s of %s lost after SIGKILL (have %d of %d)", a.callID, ref, len(have), len(list))
			}
		}
		if len(p.OpenIntents) != 1 || p.OpenIntents[0].AttemptCount < len(list) {
			t.Fatalf("customer %s: intents %+v, want attempt_count >= %d", ref, p.OpenIntents, len(list))
		}
	}
}
