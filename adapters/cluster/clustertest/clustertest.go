// Package clustertest runs real NATS server clusters with JetStream inside a
// test process, on loopback ports, for tests of the shared memory.
package clustertest

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Cluster is n NATS servers routed to each other, each with JetStream.
type Cluster struct {
	t       testing.TB
	opts    []*server.Options
	Servers []*server.Server
}

// Start runs an n-server cluster named name; each server keeps its
// JetStream store in its own temporary directory, so a server can be shut
// down and started again with its data.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	clientPorts, routePorts := freePorts(t, n), freePorts(t, n)
	var routes []*url.URL
	for _, p := range routePorts {
		routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", p)})
	}
	c := &Cluster{t: t}
	base := t.TempDir()
	for i := range n {
		o := &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       clientPorts[i],
			JetStream:  true,
			StoreDir:   filepath.Join(base, fmt.Sprintf("n%d", i+1)),
			NoSigs:     true,
			NoLog:      true,
			Cluster: server.ClusterOpts{
				Name: "sticky-test",
				Host: "127.0.0.1",
				Port: routePorts[i],
			},
			Routes: routes,
		}
		c.opts = append(c.opts, o)
		c.Servers = append(c.Servers, nil)
	}
	for i := range n {
		c.Restart(i)
	}
	t.Cleanup(c.Shutdown)
	c.WaitJetStream()
	return c
}

// URL is the client URL of server i.
func (c *Cluster) URL(i int) string {
	return fmt.Sprintf("nats://127.0.0.1:%d", c.opts[i].Port)
}

// URLs are the client URLs of every server, comma-separated.
func (c *Cluster) URLs() string {
	s := ""
	for i := range c.opts {
		if i > 0 {
			s += ","
		}
		s += c.URL(i)
	}
	return s
}

// StoreDir is server i's JetStream directory.
func (c *Cluster) StoreDir(i int) string { return c.opts[i].StoreDir }

// Stop shuts server i down (its data stays).
func (c *Cluster) Stop(i int) {
	if s := c.Servers[i]; s != nil {
		s.Shutdown()
		s.WaitForShutdown()
		c.Servers[i] = nil
	}
}

// Restart starts server i again (or for the first time).
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	o := *c.opts[i]
	s, err := server.NewServer(&o)
	if err != nil {
		c.t.Fatalf("nats server %d: %v", i, err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		c.t.Fatalf("nats server %d did not start", i)
	}
	c.Servers[i] = s
}

// Shutdown stops every server.
func (c *Cluster) Shutdown() {
	for i := range c.Servers {
		c.Stop(i)
	}
}

// WaitJetStream waits until the running servers agree on a JetStream meta
// leader, which is when streams can be created.
func (c *Cluster) WaitJetStream() {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range c.Servers {
			if s != nil && s.JetStreamIsLeader() {
				return
			}
		}
		time.Sleep(20 * time.Millisecond) // polling a condition, with a deadline
	}
	c.t.Fatal("the NATS cluster elected no JetStream leader in 30s")
}

func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
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
