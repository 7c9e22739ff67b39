package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestSIGTERMShutsDownGracefully sends SIGTERM while clients are sending
// ends: the process stops taking work, finishes what is in flight, closes
// Badger cleanly and exits 0 within its deadline; every end it answered
// 200 is there after a restart.
func TestSIGTERMShutsDownGracefully(t *testing.T) {
	bin := buildBridge(t)
	dir := t.TempDir()
	b := startBridge(t, bin, dir, "STICKY_SHUTDOWN_TIMEOUT=5s")

	var mu sync.Mutex
	var acked []ack
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	first := make(chan struct{})
	var once sync.Once
	for c := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				id := fmt.Sprintf("term_%d_%d", c, i)
				val := "end " + id
				code, _, err := post(ctx, b.addr, "/v1/calls/end", map[string]any{
					"call_id": id, "customer_ref": "cust_term", "intent": "shutdown_test",
					"variables": map[string]string{"summary": val},
				})
				if err != nil {
					return // the listener is closed: shutting down
				}
				if code == 200 {
					mu.Lock()
					acked = append(acked, ack{"cust_term", id, val})
					mu.Unlock()
					once.Do(func() { close(first) })
				}
			}
		}()
	}
	<-first
	began := time.Now()
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := b.cmd.Wait()
	took := time.Since(began)
	stop()
	wg.Wait()
	if err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, b.log())
	}
	logs := b.log()
	for _, want := range []string{"shutting down", "store closed"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	if took > 6*time.Second {
		t.Errorf("shutdown took %v, over its 5s deadline", took)
	}
	t.Logf("SIGTERM: exited 0 in %v with %d ends acknowledged", took.Round(time.Millisecond), len(acked))

	b2 := startBridge(t, bin, dir)
	defer func() { b2.cmd.Process.Kill(); b2.cmd.Wait() }()
	verify(t, b2, acked)
}
