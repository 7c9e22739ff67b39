package clustertest

import (
	"net"
	"strings"
	"testing"
)

// A server whose port was taken before it bound it fails at once, with
// its log in the error, instead of hanging until a timeout.
func TestTakenPortIsReported(t *testing.T) {
	c := &Cluster{t: t}
	c.configure(t.TempDir(), 1)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c.opts[0].Port = l.Addr().(*net.TCPAddr).Port
	err = c.startAll()
	defer c.Shutdown()
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("a taken client port should fail the start with the listener's error, got %v", err)
	}
}

// Start gives a cluster whose servers agree on a JetStream leader, and
// whose stores are each in their own directory.
func TestStart(t *testing.T) {
	c := Start(t, 3)
	seen := map[string]bool{}
	for i := range 3 {
		if c.Servers[i] == nil || !c.Servers[i].JetStreamEnabled() {
			t.Fatalf("server %d is not running JetStream", i)
		}
		if seen[c.StoreDir(i)] {
			t.Fatalf("server %d's store directory %q is not its own", i, c.StoreDir(i))
		}
		seen[c.StoreDir(i)] = true
	}
}
