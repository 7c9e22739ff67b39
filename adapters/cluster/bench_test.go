package cluster_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sticky-cc/sticky/adapters/cluster"
	"github.com/sticky-cc/sticky/adapters/cluster/clustertest"
	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/core/store"
)

// BenchmarkSharedMemory prints the write path's figures of issue 13 in one
// run, on this machine's disk and loopback:
//
//	go test ./adapters/cluster/ -run '^$' -bench SharedMemory -benchtime 1x
//
// the floor (a bare 1 KiB write+fsync loop in the same directory), synced
// ends standalone and on a three-node R3 cluster, starts standalone and
// clustered, how soon a write on one node is visible on another, and how
// many ends per second the cluster sustains at each concurrency.
func BenchmarkSharedMemory(b *testing.B) {
	const n = 2000
	ctx := context.Background()
	dir := b.TempDir()

	floor := fsyncLoop(b, dir, n)
	report(b, "floor: 1 KiB write+fsync", floor, nil)

	sdb, err := store.Open(store.Options{Dir: filepath.Join(dir, "standalone"), MinFreeBytes: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer sdb.Close()
	solo := core.New(core.Options{Store: sdb})
	soloEnds := timeEach(n, func(i int) error {
		_, err := solo.End(ctx, core.EndRequest{CallID: fmt.Sprintf("s%d", i), CustomerRef: fmt.Sprintf("cust_%d", i%500), Intent: "x",
			Variables: map[string]string{"summary": "bench"}})
		return err
	})
	report(b, "end, standalone (synced)", soloEnds, floor)
	soloStarts := timeEach(n, func(i int) error {
		_, err := solo.Start(ctx, core.StartRequest{CallID: fmt.Sprintf("ss%d", i), Hints: core.Hints{CustomerRef: fmt.Sprintf("cust_%d", i%500)}})
		return err
	})
	report(b, "start, standalone", soloStarts, nil)

	c := clustertest.Start(b, 3)
	var nodes []*node
	for i := range 3 {
		nodes = append(nodes, startNode(b, c.URL(i), filepath.Join(dir, fmt.Sprintf("node%d", i)), cluster.Options{Replicas: 3}))
	}
	a, other := nodes[0], nodes[1]
	var visible []time.Duration
	ends := timeEach(n, func(i int) error {
		_, err := a.eng.End(ctx, core.EndRequest{CallID: fmt.Sprintf("c%d", i), CustomerRef: fmt.Sprintf("cust_%d", i%500), Intent: "x",
			Variables: map[string]string{"summary": "bench"}})
		if err != nil {
			return err
		}
		// How long until the write is applied on another node too.
		done, seq := time.Now(), a.eng.Applied().Seq
		for other.eng.Applied().Seq < seq {
		}
		visible = append(visible, time.Since(done))
		return nil
	})
	report(b, "end, cluster R3", ends, floor)
	report(b, "visible on another node after the end returned", visible, nil)
	starts := timeEach(n, func(i int) error {
		_, err := a.eng.Start(ctx, core.StartRequest{CallID: fmt.Sprintf("cs%d", i), Hints: core.Hints{CustomerRef: fmt.Sprintf("cust_%d", i%500)}})
		return err
	})
	report(b, "start, cluster R3", starts, soloStarts)

	for _, workers := range []int{1, 4, 16, 64} {
		var mu sync.Mutex
		var lat []time.Duration
		var wg sync.WaitGroup
		began := time.Now()
		per := n / workers
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range per {
					t0 := time.Now()
					if _, err := nodes[w%3].eng.End(ctx, core.EndRequest{CallID: fmt.Sprintf("t%d-%d-%d", workers, w, i), CustomerRef: fmt.Sprintf("cust_%d", (w*per+i)%500)}); err != nil {
						b.Error(err)
						return
					}
					d := time.Since(t0)
					mu.Lock()
					lat = append(lat, d)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		rate := float64(len(lat)) / time.Since(began).Seconds()
		slices.Sort(lat)
		fmt.Printf("cluster R3 ends, %2d writers over 3 nodes: %6.0f/s, p50 %v p99 %v\n", workers, rate, pct(lat, 50), pct(lat, 99))
	}
}

func fsyncLoop(b *testing.B, dir string, n int) []time.Duration {
	f, err := os.Create(filepath.Join(dir, "floor"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1024)
	return timeEach(n, func(int) error {
		if _, err := f.Write(buf); err != nil {
			return err
		}
		return f.Sync()
	})
}

func timeEach(n int, fn func(i int) error) []time.Duration {
	out := make([]time.Duration, 0, n)
	for i := range n {
		t0 := time.Now()
		if err := fn(i); err != nil {
			panic(err)
		}
		out = append(out, time.Since(t0))
	}
	return out
}

func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p/100))].Round(time.Microsecond)
}

// report prints p50/p99 of d, and its p99 against base's when given.
func report(b *testing.B, what string, d, base []time.Duration) {
	s := slices.Sorted(slices.Values(d))
	line := fmt.Sprintf("%-48s p50 %9v  p99 %9v", what, pct(s, 50), pct(s, 99))
	if base != nil {
		bs := slices.Sorted(slices.Values(base))
		line += fmt.Sprintf("  (p99 %.2fx of %v)", float64(pct(s, 99))/float64(max(pct(bs, 99), 1)), pct(bs, 99))
	}
	fmt.Println(line)
}
