package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// clusterEnv is the environment of node i of a three-node cluster whose
// embedded NATS servers route to each other on routePorts.
func clusterEnv(i int, routePorts []int) []string {
	var routes []string
	for j, p := range routePorts {
		if j != i {
			routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
		}
	}
	return []string{
		"STICKY_CLUSTER=crash", "STICKY_CLUSTER_REPLICAS=3",
		fmt.Sprintf("STICKY_NATS_SERVER_NAME=node%d", i),
		fmt.Sprintf("STICKY_NATS_CLUSTER_ADDR=127.0.0.1:%d", routePorts[i]),
		"STICKY_NATS_ROUTES=" + strings.Join(routes, ","),
	}
}

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

type clusterInfo struct {
	Applied     uint64 `json:"applied_sequence"`
	Last        uint64 `json:"stream_sequence"`
	Digest      string `json:"digest"`
	StateDigest string `json:"state_digest"`
	Ready       bool   `json:"ready"`
}

func (b *bridge) cluster(t *testing.T) clusterInfo {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+b.addr+"/v1/cluster?state=1", nil)
	req.Header.Set("Authorization", "Bearer crash-key")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ci clusterInfo
	if err := json.NewDecoder(resp.Body).Decode(&ci); err != nil {
		t.Fatal(err)
	}
	return ci
}

// TestClusterNodeKilledUnderLoad runs three bridge processes sharing one
// memory through their embedded NATS servers, kills one with SIGKILL while
// ends are written to all of them, and restarts it: no acknowledged end is
// lost on any node, and all three hold the same memory.
func TestClusterNodeKilledUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills processes")
	}
	bin := buildBridge(t)
	routes := freePorts(t, 3)
	dirs := []string{filepath.Join(t.TempDir(), "n0"), filepath.Join(t.TempDir(), "n1"), filepath.Join(t.TempDir(), "n2")}
	nodes := make([]*bridge, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Add(1)
		go func() { defer wg.Done(); nodes[i] = startBridge(t, bin, dirs[i], clusterEnv(i, routes)...) }()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	defer func() {
		for _, b := range nodes {
			if b != nil {
				b.kill(t)
			}
		}
	}()

	var mu sync.Mutex
	var acked []ack
	var addrs [3]string
	for i, b := range nodes {
		addrs[i] = b.addr
	}
	// Each writer keeps going until n of its ends are acknowledged: while
	// the killed node's NATS server is gone the stream may re-elect its
	// leader, and a write refused meanwhile is retried, as a client would.
	write := func(ctx context.Context, c int, n int) {
		done := 0
		for i := 0; done < n && ctx.Err() == nil; i++ {
			mu.Lock()
			addr := addrs[(c+i)%3]
			mu.Unlock()
			a := ack{fmt.Sprintf("cust_c%d", c), fmt.Sprintf("c%d-%d", c, i), fmt.Sprint(i)}
			status, _, err := post(ctx, addr, "/v1/calls/end", map[string]any{
				"call_id": a.callID, "customer_ref": a.ref, "intent": "crash_test",
				"variables": map[string]string{"last": a.value, "summary": "end " + a.callID}})
			if err != nil || status != 200 {
				// The node was killed, or the stream is electing a leader:
				// not acknowledged. Back off a little before the next try.
				select {
				case <-ctx.Done():
				case <-time.After(20 * time.Millisecond):
				}
				continue
			}
			done++
			mu.Lock()
			acked = append(acked, a)
			mu.Unlock()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var writers sync.WaitGroup
	for c := range 4 {
		writers.Add(1)
		go func() { defer writers.Done(); write(ctx, c, 150) }()
	}
	// Kill node 1 once some ends are in, while the writers go on.
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 100 || ctx.Err() != nil {
			break
		}
		time.Sleep(10 * time.Millisecond) // polling progress, with a deadline
	}
	nodes[1].kill(t)
	nodes[1] = nil
	writers.Wait()
	nodes[1] = startBridge(t, bin, dirs[1], clusterEnv(1, routes)...)

	// Every node applies the whole log and holds the same memory.
	deadline := time.Now().Add(2 * time.Minute)
	var infos []clusterInfo
	for {
		infos = infos[:0]
		level := true
		for _, b := range nodes {
			ci := b.cluster(t)
			infos = append(infos, ci)
			if !ci.Ready || ci.Applied != ci.Last || ci.StateDigest != infos[0].StateDigest || ci.Digest != infos[0].Digest {
				level = false
			}
		}
		if level {
			break
		}
		if time.Now().After(deadline) {
			if os.Getenv("STICKY_KEEP_DIVERGED") != "" {
				for i, d := range dirs {
					exec.Command("cp", "-a", d, fmt.Sprintf("/tmp/diverged-%d", i)).Run()
				}
			}
			// Each node that lags prints its log, and the restarted one
			// always does.
			var logs strings.Builder
			for i, ci := range infos {
				if i == 1 || !ci.Ready || ci.Applied != ci.Last || ci.StateDigest != infos[0].StateDigest {
					fmt.Fprintf(&logs, "--- node %d:\n%s\n", i, nodes[i].log())
				}
			}
			t.Fatalf("the nodes did not converge: %+v\n%s", infos, logs.String())
		}
		time.Sleep(50 * time.Millisecond) // polling a condition, with a deadline
	}
	if len(acked) < 300 {
		t.Fatalf("only %d ends acknowledged", len(acked))
	}
	for _, b := range nodes {
		verify(t, b, acked)
	}
	t.Logf("%d acknowledged ends on 3 nodes, one SIGKILLed and restarted; none lost; %d entries applied everywhere", len(acked), infos[0].Applied)
}
