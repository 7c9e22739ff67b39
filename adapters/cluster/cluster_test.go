package cluster_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sticky-cc/sticky/adapters/cluster"
	"github.com/sticky-cc/sticky/adapters/cluster/clustertest"
	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/core/store"
)

// node is one Sticky node: an engine on its own Badger, following the
// shared memory through its own NATS server.
type node struct {
	t    testing.TB
	dir  string
	db   *store.DB
	eng  *core.Engine
	mem  *cluster.Memory
	nc   *nats.Conn
	stop context.CancelFunc
	done chan error
}

func startNode(t testing.TB, url, dir string, opts cluster.Options) *node {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(store.Options{Dir: dir, MinFreeBytes: -1, LowMemory: true, Compression: "none"})
	if err != nil {
		t.Fatal(err)
	}
	opts.Conn = nc
	if opts.Name == "" {
		opts.Name = "test"
	}
	mem, err := cluster.Open(context.Background(), opts)
	if err != nil {
		db.Close()
		nc.Close()
		t.Fatal(err)
	}
	eng := core.New(core.Options{Store: db, Log: mem, AppendTimeout: time.Second, ApplyTimeout: 3 * time.Second})
	if err := eng.Bind(mem.ID()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{t: t, dir: dir, db: db, eng: eng, mem: mem, nc: nc, stop: cancel, done: make(chan error, 1)}
	go func() { n.done <- mem.Run(ctx, eng) }()
	t.Cleanup(n.close)
	return n
}

func (n *node) close() {
	if n.stop == nil {
		return
	}
	n.stop()
	if err := <-n.done; err != nil {
		n.t.Errorf("follower: %v", err)
	}
	n.stop = nil
	n.nc.Close()
	n.db.Close()
}

// waitLevel waits until every node has applied the whole log.
func waitLevel(t *testing.T, nodes ...*node) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		var last uint64
		for _, n := range nodes {
			last = max(last, n.mem.Status().Last)
		}
		level := true
		for _, n := range nodes {
			if n.eng.Applied().Seq < last {
				level = false
			}
		}
		if level {
			return
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, with a deadline
	}
	for _, n := range nodes {
		t.Logf("node %s: %+v", n.dir, n.mem.Status())
	}
	t.Fatal("the nodes did not apply the whole log in 20s")
}

// sameState checks that every node holds exactly the same memory.
func sameState(t *testing.T, nodes ...*node) {
	t.Helper()
	waitLevel(t, nodes...)
	var first, chain string
	for i, n := range nodes {
		d, count, err := n.eng.StateDigest()
		if err != nil {
			t.Fatal(err)
		}
		as := n.eng.Applied()
		if i == 0 {
			first, chain = d, as.Digest
			if count == 0 {
				t.Fatal("the state is empty")
			}
			continue
		}
		if d != first || as.Digest != chain {
			t.Fatalf("node %d differs: state %s vs %s, chain %s vs %s", i, d, first, as.Digest, chain)
		}
	}
}

func threeNodes(t *testing.T) (*clustertest.Cluster, []*node) {
	c := clustertest.Start(t, 3)
	var nodes []*node
	for i := range 3 {
		nodes = append(nodes, startNode(t, c.URL(i), filepath.Join(t.TempDir(), "data"), cluster.Options{Replicas: 3}))
	}
	return c, nodes
}

func end(t *testing.T, n *node, req core.EndRequest) *core.EndResult {
	t.Helper()
	res, err := n.eng.End(context.Background(), req)
	if err != nil {
		t.Fatalf("end %s: %v", req.CallID, err)
	}
	return res
}

func TestSharedMemoryAcrossNodes(t *testing.T) {
	_, nodes := threeNodes(t)
	a, b, c := nodes[0], nodes[1], nodes[2]
	ctx := context.Background()

	// A chat ends on A; A reads its own write at once.
	end(t, a, core.EndRequest{CallID: "chat_1", CustomerRef: "cust_a", Intent: "billing_inquiry",
		Variables: map[string]string{"channel": "chat", "email": "ann@example.test", "summary": "double charge"}})
	p, err := a.eng.Customer(ctx, "cust_a", 0)
	if err != nil || len(p.History) != 1 {
		t.Fatalf("read-your-writes on A: %+v %v", p, err)
	}

	// The call rings on B, which knows her by email.
	res, err := b.eng.Start(ctx, core.StartRequest{CallID: "call_1",
		Hints: core.Hints{ANI: "+14155552100", ExternalIDs: map[string]string{"email": "ann@example.test"}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.CustomerRef != "cust_a" || len(res.OpenIntents) != 1 || res.Consistency != "" {
		t.Fatalf("start on B: %+v", res)
	}
	// A retry of the same start on C gives the same answer.
	again, err := c.eng.Start(ctx, core.StartRequest{CallID: "call_1",
		Hints: core.Hints{ANI: "+14155552100", ExternalIDs: map[string]string{"email": "ann@example.test"}}})
	if err != nil || again.CustomerRef != res.CustomerRef || !again.CallStart.Equal(res.CallStart.Time) {
		t.Fatalf("retry on C: %+v %v", again, err)
	}
	// Started on B, ended on C (the PBX failed over mid-call).
	er := end(t, c, core.EndRequest{CallID: "call_1", Intent: "billing_inquiry", IntentStatus: "resolved"})
	if er.CustomerRef != "cust_a" || !er.CallStart.Equal(res.CallStart.Time) {
		t.Fatalf("end on C: %+v", er)
	}
	// The same end again on A is idempotent; a different one is a conflict.
	if again := end(t, a, core.EndRequest{CallID: "call_1", Intent: "billing_inquiry", IntentStatus: "resolved"}); jsonOf(again) != jsonOf(er) {
		t.Fatalf("end retried on A: %+v, want %+v", again, er)
	}
	if _, err := a.eng.End(ctx, core.EndRequest{CallID: "call_1", Intent: "other"}); core.ErrorCode(err) != core.CodeConflict {
		t.Fatalf("a different end: %v, want a conflict", err)
	}
	// The new number now finds her on every node.
	for i, n := range nodes {
		waitLevel(t, nodes...)
		r, err := n.eng.Start(ctx, core.StartRequest{CallID: fmt.Sprintf("call_2_%d", i), Hints: core.Hints{ANI: "+14155552100"}})
		if err != nil || r.CustomerRef != "cust_a" {
			t.Fatalf("node %d: %+v %v", i, r, err)
		}
	}
	// Merge, unlink and erasure go through the log too.
	end(t, b, core.EndRequest{CallID: "chat_2", CustomerRef: "cust_b", Variables: map[string]string{"email": "bob@example.test"}})
	if _, err := c.eng.Merge(ctx, "cust_a", "cust_b"); err != nil {
		t.Fatal(err)
	}
	if err := a.eng.Unlink(ctx, "cust_a", "email", "bob@example.test"); err != nil {
		t.Fatal(err)
	}
	if err := b.eng.Unlink(ctx, "cust_a", "email", "bob@example.test"); core.ErrorCode(err) != core.CodeNotFound {
		t.Fatalf("unlinking twice: %v", err)
	}
	sameState(t, nodes...)
	end(t, c, core.EndRequest{CallID: "chat_3", CustomerRef: "cust_c", Variables: map[string]string{"email": "cy@example.test"}})
	if err := b.eng.DeleteCustomer(ctx, "cust_a"); err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes {
		waitLevel(t, nodes...)
		if _, err := n.eng.Customer(ctx, "cust_a", 0); core.ErrorCode(err) != core.CodeNotFound {
			t.Fatalf("node %d still has the erased customer: %v", i, err)
		}
	}
	sameState(t, nodes...)
}

// The same call_id with different bodies on two nodes at once: exactly one
// wins, everywhere, and the other gets the conflict.
func TestConcurrentConflictingStarts(t *testing.T) {
	_, nodes := threeNodes(t)
	ctx := context.Background()
	for round := range 20 {
		id := fmt.Sprintf("race_%d", round)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		refs := make([]string, 2)
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := nodes[i].eng.Start(ctx, core.StartRequest{CallID: id,
					Hints: core.Hints{ANI: fmt.Sprintf("+1415555%04d", 1000+round*2+i)}})
				errs[i] = err
				if r != nil {
					refs[i] = r.CustomerRef
				}
			}()
		}
		wg.Wait()
		won := 0
		for i, err := range errs {
			switch {
			case err == nil:
				won++
			case core.ErrorCode(err) != core.CodeConflict:
				t.Fatalf("round %d node %d: %v", round, i, err)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d winners (%v)", round, won, errs)
		}
	}
	sameState(t, nodes...)
}

// One of three NATS servers down: writes go on. Two down: writes get a
// clear "unavailable", starts answer from the local copy and say so, and
// once the servers are back everything recovers by itself.
func TestQuorumLoss(t *testing.T) {
	c, nodes := threeNodes(t)
	a := nodes[0]
	ctx := context.Background()
	end(t, a, core.EndRequest{CallID: "e0", CustomerRef: "cust_q", Variables: map[string]string{"email": "q@example.test"}})

	c.Stop(2)
	end(t, a, core.EndRequest{CallID: "e1", CustomerRef: "cust_q", Intent: "refund"})

	c.Stop(1)
	_, err := a.eng.End(ctx, core.EndRequest{CallID: "e2", CustomerRef: "cust_q"})
	if core.ErrorCode(err) != core.CodeUnavailable {
		t.Fatalf("end without quorum: %v, want unavailable", err)
	}
	res, err := a.eng.Start(ctx, core.StartRequest{CallID: "s1", Hints: core.Hints{ExternalIDs: map[string]string{"email": "q@example.test"}}})
	if err != nil {
		t.Fatalf("start without quorum: %v", err)
	}
	if res.Consistency != core.ConsistencyLocal || res.CustomerRef != "cust_q" || len(res.OpenIntents) != 1 {
		t.Fatalf("start without quorum: %+v", res)
	}
	if st := a.mem.Status(); st.Writable {
		t.Fatalf("status without quorum says writable: %+v", st)
	}

	c.Restart(1)
	c.Restart(2)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := a.eng.End(ctx, core.EndRequest{CallID: "e2", CustomerRef: "cust_q"})
		if err == nil {
			break
		}
		if !errors.Is(err, err) || core.ErrorCode(err) != core.CodeUnavailable || time.Now().After(deadline) {
			t.Fatalf("after the servers came back: %v", err)
		}
	}
	sameState(t, nodes...)
}

// A node restarted with its data dir catches up by itself; a brand-new
// empty node replays the whole log and answers alike.
func TestRestartAndNewNode(t *testing.T) {
	c, nodes := threeNodes(t)
	ctx := context.Background()
	for i := range 30 {
		end(t, nodes[i%3], core.EndRequest{CallID: fmt.Sprintf("c%d", i), CustomerRef: fmt.Sprintf("cust_%d", i%7),
			Intent: "x", Variables: map[string]string{"n": fmt.Sprint(i)}})
	}
	b := nodes[1]
	dir := b.dir
	b.close()
	for i := 30; i < 60; i++ {
		end(t, nodes[0], core.EndRequest{CallID: fmt.Sprintf("c%d", i), CustomerRef: fmt.Sprintf("cust_%d", i%7)})
	}
	b2 := startNode(t, c.URL(1), dir, cluster.Options{Replicas: 3})
	fresh := startNode(t, c.URL(2), filepath.Join(t.TempDir(), "fresh"), cluster.Options{Replicas: 3})
	sameState(t, nodes[0], nodes[2], b2, fresh)
	p, err := fresh.eng.Customer(ctx, "cust_3", 100)
	if err != nil || len(p.History) == 0 {
		t.Fatalf("new node: %+v %v", p, err)
	}
}

// A node refuses, before writing anything, a data dir of another memory,
// a standalone store, and a key the memory was not created with.
func TestRefusals(t *testing.T) {
	c := clustertest.Start(t, 3)
	n := startNode(t, c.URL(0), filepath.Join(t.TempDir(), "a"), cluster.Options{Replicas: 3, Name: "east", Key: make([]byte, 32)})
	end(t, n, core.EndRequest{CallID: "x", CustomerRef: "cust_x"})
	dir := n.dir
	n.close()

	nc, err := nats.Connect(c.URL(1))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	key2 := make([]byte, 32)
	key2[0] = 1
	for _, tc := range []struct {
		name string
		opts cluster.Options
		want string
	}{
		{"other key", cluster.Options{Name: "east", Key: key2}, "encryption key"},
		{"no key", cluster.Options{Name: "east"}, "disagree on encryption"},
		{"bad name", cluster.Options{Name: "east.1"}, "must be 1-64"},
	} {
		tc.opts.Conn, tc.opts.Replicas = nc, 3
		if _, err := cluster.Open(context.Background(), tc.opts); err == nil || !contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
	// The east data dir pointed at the memory "west".
	west, err := cluster.Open(context.Background(), cluster.Options{Conn: nc, Name: "west", Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(store.Options{Dir: dir, MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	eng := core.New(core.Options{Store: db, Log: west})
	if err := eng.Bind(west.ID()); err == nil || !contains(err.Error(), "belongs to the shared memory") {
		t.Errorf("east's data dir on west: %v", err)
	}
	db.Close()
	// A standalone store with data.
	sdir := filepath.Join(t.TempDir(), "standalone")
	sdb, err := store.Open(store.Options{Dir: sdir, MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := core.New(core.Options{Store: sdb}).End(context.Background(), core.EndRequest{CallID: "s", CustomerRef: "cust_s"}); err != nil {
		t.Fatal(err)
	}
	if err := core.New(core.Options{Store: sdb, Log: west}).Bind(west.ID()); err == nil || !contains(err.Error(), "standalone store") {
		t.Errorf("standalone store joining: %v", err)
	}
	sdb.Close()
	// None of the refused nodes wrote to the east memory.
	east, err := cluster.Open(context.Background(), cluster.Options{Conn: nc, Name: "east", Replicas: 3, Key: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	if got := east.Status().Last; got != 1 {
		t.Errorf("the east memory has %d entries, want the 1 its node wrote", got)
	}
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func contains(s, sub string) bool {
	return len(sub) == 0 || (len(s) >= len(sub) && (s == sub || indexOf(s, sub) >= 0))
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

// grepTree lists the files under dir that hold needle.
func grepTree(t testing.TB, dir string, needle []byte) []string {
	var hits []string
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return nil
		}
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, needle) {
			hits = append(hits, p)
		}
		return nil
	})
	return hits
}

// After an erasure, the customer's data is in no node's store and in no
// NATS server's files, and a node that joins afterwards still reaches the
// same memory as the others.
func TestErasureLeavesNoTrace(t *testing.T) {
	c, nodes := threeNodes(t)
	a, b, cc := nodes[0], nodes[1], nodes[2]
	ctx := context.Background()
	canary := []byte("canary-9d4e@example.test")
	end(t, a, core.EndRequest{CallID: "chat_x", CustomerRef: "cust_x", Intent: "refund",
		Variables: map[string]string{"email": string(canary), "summary": "wants a refund"}})
	if _, err := b.eng.Start(ctx, core.StartRequest{CallID: "call_x", Hints: core.Hints{ANI: "+14155552177",
		ExternalIDs: map[string]string{"email": string(canary)}}}); err != nil {
		t.Fatal(err)
	}
	end(t, b, core.EndRequest{CallID: "call_x", Intent: "refund", IntentStatus: "resolved"})
	end(t, cc, core.EndRequest{CallID: "chat_y", CustomerRef: "cust_y", Variables: map[string]string{"email": "y@example.test"}})
	waitLevel(t, nodes...)
	// Before the erasure the canary is in the stores (the test can fail).
	if len(grepTree(t, a.dir, canary)) == 0 {
		t.Fatal("the canary is not in node A's store before the erasure")
	}
	if err := cc.eng.DeleteCustomer(ctx, "cust_x"); err != nil {
		t.Fatal(err)
	}
	waitLevel(t, nodes...)
	for _, n := range nodes {
		if err := n.eng.Scrub(); err != nil {
			t.Fatal(err)
		}
		if hits := grepTree(t, n.dir, canary); len(hits) > 0 {
			t.Errorf("the erased customer's email is still in %v", hits)
		}
	}
	for i := range 3 {
		if hits := grepTree(t, c.StoreDir(i), canary); len(hits) > 0 {
			t.Errorf("the erased customer's email is in NATS server %d's files %v", i, hits)
		}
	}
	// The ref can be used again: it gets a new key, and the old entries
	// stay unreadable.
	end(t, b, core.EndRequest{CallID: "chat_x2", CustomerRef: "cust_x", Variables: map[string]string{"summary": "back again"}})
	// A node that joins now replays the log: the erased customer's
	// entries no longer open, and it ends with the same memory.
	fresh := startNode(t, c.URL(0), filepath.Join(t.TempDir(), "fresh"), cluster.Options{Replicas: 3})
	sameState(t, a, b, cc, fresh)
	if p, err := fresh.eng.Customer(ctx, "cust_x", 0); err != nil || len(p.History) != 1 || len(p.Identifiers) != 0 {
		t.Fatalf("the new node's cust_x should be only the one after the erasure: %+v %v", p, err)
	}
	if p, err := fresh.eng.Customer(ctx, "cust_y", 0); err != nil || len(p.Identifiers) != 1 {
		t.Fatalf("the new node lost a live customer: %+v %v", p, err)
	}
}

// A node joining after the stream was trimmed starts from the latest
// snapshot and the stream's tail; a snapshot taken after an erasure
// replaces the one that held the erased customer.
func TestSnapshotAndTrimmedStream(t *testing.T) {
	c := clustertest.Start(t, 3)
	opts := cluster.Options{Replicas: 3, KeepEntries: 5}
	var nodes []*node
	for i := range 3 {
		nodes = append(nodes, startNode(t, c.URL(i), filepath.Join(t.TempDir(), "data"), opts))
	}
	a := nodes[0]
	ctx := context.Background()
	canary := []byte("canary-snap-51c0@example.test")
	end(t, a, core.EndRequest{CallID: "x0", CustomerRef: "cust_x", Variables: map[string]string{"email": string(canary)}})
	for i := range 40 {
		end(t, nodes[i%3], core.EndRequest{CallID: fmt.Sprintf("e%d", i), CustomerRef: fmt.Sprintf("cust_%d", i%6), Intent: "x"})
	}
	waitLevel(t, nodes...)
	seq, err := a.mem.SnapshotNow(ctx, a.eng)
	if err != nil {
		t.Fatal(err)
	}
	if first := a.mem.Status(); seq < 41 || first.Applied < seq {
		t.Fatalf("snapshot at %d, status %+v", seq, first)
	}
	js, _ := jetstream.New(a.nc)
	st, err := js.Stream(ctx, cluster.StreamName("test"))
	if err != nil {
		t.Fatal(err)
	}
	if first := st.CachedInfo().State.FirstSeq; first <= 1 || first > seq {
		t.Fatalf("after a snapshot at %d the stream starts at %d: not trimmed", seq, first)
	}
	for i := 40; i < 50; i++ {
		end(t, nodes[i%3], core.EndRequest{CallID: fmt.Sprintf("e%d", i), CustomerRef: fmt.Sprintf("cust_%d", i%6)})
	}
	joined := startNode(t, c.URL(1), filepath.Join(t.TempDir(), "joined"), opts)
	sameState(t, append(nodes, joined)...)

	// Erase, snapshot again: the old snapshot's key is gone, so the copy
	// that held the canary no longer opens anywhere.
	if err := nodes[2].eng.DeleteCustomer(ctx, "cust_x"); err != nil {
		t.Fatal(err)
	}
	waitLevel(t, nodes...)
	if _, err := a.mem.SnapshotNow(ctx, a.eng); err != nil {
		t.Fatal(err)
	}
	late := startNode(t, c.URL(2), filepath.Join(t.TempDir(), "late"), opts)
	sameState(t, append(nodes, joined, late)...)
	for i := range 3 {
		if hits := grepTree(t, c.StoreDir(i), canary); len(hits) > 0 {
			t.Errorf("the erased customer's email is in NATS server %d's files %v", i, hits)
		}
	}
}

func TestRefusesNATSWithoutJetStream(t *testing.T) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats did not start")
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_, err = cluster.Open(context.Background(), cluster.Options{Conn: nc, Name: "x", Replicas: 1, WaitConnected: 5 * time.Second})
	if err == nil || !contains(err.Error(), "no JetStream") {
		t.Fatalf("a NATS without JetStream: %v", err)
	}
}
