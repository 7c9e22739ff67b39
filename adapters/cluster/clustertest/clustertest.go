// Package clustertest runs real NATS server clusters with JetStream inside a
// test process, on loopback ports, for tests of the shared memory.
package clustertest

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
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

// Start runs an n-server cluster; each server keeps its JetStream store in
// its own temporary directory, so a server can be shut down and started
// again with its data.
//
// The servers' ports are picked before they start, since each server's
// routes must name the others. Another test's connection can take a
// picked port before its server binds it; then the whole cluster is
// started again on new ports, up to three times.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	base := t.TempDir()
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		c := &Cluster{t: t}
		c.configure(filepath.Join(base, fmt.Sprint(attempt)), n)
		if err = c.startAll(); err == nil {
			t.Cleanup(c.Shutdown)
			c.WaitJetStream()
			return c
		}
		c.Shutdown()
		t.Logf("starting the NATS cluster, attempt %d: %v", attempt, err)
	}
	t.Fatalf("the NATS cluster did not start: %v", err)
	return nil
}

func (c *Cluster) configure(base string, n int) {
	clientPorts, routePorts := freePorts(c.t, n), freePorts(c.t, n)
	var routes []*url.URL
	for _, p := range routePorts {
		routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", p)})
	}
	for i := range n {
		c.opts = append(c.opts, &server.Options{
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
		})
		c.Servers = append(c.Servers, nil)
	}
}

func (c *Cluster) startAll() error {
	for i := range c.opts {
		if err := c.start(i); err != nil {
			return err
		}
	}
	return nil
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
	if err := c.start(i); err != nil {
		c.t.Fatal(err)
	}
}

func (c *Cluster) start(i int) error {
	o := *c.opts[i]
	s, err := server.NewServer(&o)
	if err != nil {
		return fmt.Errorf("nats server %d: %v", i, err)
	}
	// The servers stay quiet unless one fails to start: then its log
	// says why (a port taken, most often).
	log := &logTail{}
	s.SetLogger(log, false, false)
	s.Start()
	// A listener that fails logs a fatal error and leaves the server
	// running without it, so the wait stops at that line.
	ready := false
	for deadline := time.Now().Add(10 * time.Second); !ready && !log.failed() && time.Now().Before(deadline); {
		ready = s.ReadyForConnections(100 * time.Millisecond)
	}
	if !ready {
		s.Shutdown()
		return fmt.Errorf("nats server %d (client port %d, route port %d) did not start; its log:\n%s",
			i, c.opts[i].Port, c.opts[i].Cluster.Port, log)
	}
	c.Servers[i] = s
	return nil
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

// logTail keeps the last lines of a server's log.
type logTail struct {
	mu    sync.Mutex
	lines []string
	fatal bool // a fatal line was logged
}

func (l *logTail) add(level, format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fatal = l.fatal || level == "FTL"
	l.lines = append(l.lines, level+" "+fmt.Sprintf(format, v...))
	if len(l.lines) > 100 {
		l.lines = l.lines[len(l.lines)-50:]
	}
}

func (l *logTail) failed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fatal
}

func (l *logTail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func (l *logTail) Noticef(format string, v ...any) { l.add("INF", format, v...) }
func (l *logTail) Warnf(format string, v ...any)   { l.add("WRN", format, v...) }
func (l *logTail) Fatalf(format string, v ...any)  { l.add("FTL", format, v...) }
func (l *logTail) Errorf(format string, v ...any)  { l.add("ERR", format, v...) }
func (l *logTail) Debugf(format string, v ...any)  {}
func (l *logTail) Tracef(format string, v ...any)  {}
