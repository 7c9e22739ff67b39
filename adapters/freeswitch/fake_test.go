package freeswitch

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// A fake FreeSWITCH event socket that replays the frames captured from a
// real FreeSWITCH 1.11 (copied byte for byte into testdata/freeswitch-1.11 from the team's shared/fixtures): the
// handshake and reply frames are the captured bytes, the events are the
// captured events with their channel UUIDs rewritten so one capture becomes
// many calls.

const fixtureDir = "testdata/freeswitch-1.11"

type frame struct {
	ctype string
	raw   []byte // the whole frame as sent
	body  []byte
	name  string // Event-Name, for events
	uuid  string // Unique-ID, for events
}

type fixture struct {
	name   string
	frames []frame
	// Handshake and reply frames, as FreeSWITCH sent them.
	authRequest, accepted, listening, bye, disconnect []byte
	events                                            []frame
	uuids                                             []string // channel UUIDs, in order of first appearance
	core                                              string
	// only, if set, limits render to these events (a load generator
	// skips what the fake would not send anyway).
	only map[string]bool
}

var (
	fixtureMu    sync.Mutex
	fixtureCache = map[string]*fixture{}
)

func loadFixture(t testing.TB, name string) *fixture {
	t.Helper()
	fixtureMu.Lock()
	defer fixtureMu.Unlock()
	if f := fixtureCache[name]; f != nil {
		return f
	}
	b, err := os.ReadFile(filepath.Join(fixtureDir, name+".stream.txt"))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{name: name}
	seen := map[string]bool{}
	for len(b) > 0 {
		end := bytes.Index(b, []byte("\n\n"))
		if end < 0 {
			t.Fatalf("%s: trailing bytes without a blank line", name)
		}
		hdr := b[:end+2]
		h, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(hdr))).ReadMIMEHeader()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		n := 0
		if cl := h.Get("Content-Length"); cl != "" {
			n, _ = strconv.Atoi(cl)
		}
		fr := frame{ctype: h.Get("Content-Type"), raw: b[:end+2+n], body: b[end+2 : end+2+n]}
		b = b[end+2+n:]
		switch fr.ctype {
		case "auth/request":
			f.authRequest = fr.raw
		case "command/reply":
			switch rt := h.Get("Reply-Text"); {
			case rt == "+OK accepted":
				f.accepted = fr.raw
			case strings.HasPrefix(rt, "+OK event listener enabled"):
				f.listening = fr.raw
			case rt == "+OK bye":
				f.bye = fr.raw
			}
		case "text/disconnect-notice":
			f.disconnect = fr.raw
		case "text/event-plain":
			eh, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(fr.body))).ReadMIMEHeader()
			if err != nil && err != io.EOF {
				t.Fatalf("%s: event: %v", name, err)
			}
			fr.name = eh.Get("Event-Name")
			fr.uuid = eh.Get("Unique-Id")
			if f.core == "" {
				f.core = eh.Get("Core-Uuid")
			}
			if fr.uuid != "" && !seen[fr.uuid] {
				seen[fr.uuid] = true
				f.uuids = append(f.uuids, fr.uuid)
			}
			f.events = append(f.events, fr)
		}
		f.frames = append(f.frames, fr)
	}
	if f.authRequest == nil || f.accepted == nil || f.listening == nil || f.bye == nil || f.disconnect == nil {
		t.Fatalf("%s: handshake frames missing", name)
	}
	fixtureCache[name] = f
	return f
}

// callUUID makes the n-th call's i-th channel UUID, as long as a real one.
func callUUID(n, i int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", n, i) }

// render returns the fixture's events as call n: every channel UUID
// replaced (same length, so Content-Length holds), the core replaced by
// core when it is not empty, and extra variables added to chosen events.
func (f *fixture) render(n int, core string, extra func(name, uuid string) map[string]string, more ...string) []frame {
	repl := make([]string, 0, 2*len(f.uuids)+2+len(more))
	repl = append(repl, more...)
	for i, u := range f.uuids {
		repl = append(repl, u, callUUID(n, i))
	}
	if core != "" {
		repl = append(repl, f.core, core)
	}
	r := strings.NewReplacer(repl...)
	out := make([]frame, 0, len(f.events))
	for _, e := range f.events {
		if f.only != nil && !f.only[e.name] {
			continue
		}
		body := []byte(r.Replace(string(e.body)))
		uuid := r.Replace(e.uuid)
		if extra != nil {
			if vars := extra(e.name, uuid); len(vars) > 0 {
				body = addHeaders(body, vars)
			}
		}
		raw := []byte(r.Replace(string(e.raw)))
		if len(body) != len(e.body) {
			raw = append([]byte(fmt.Sprintf("Content-Length: %d\nContent-Type: text/event-plain\n\n", len(body))), body...)
		}
		out = append(out, frame{ctype: e.ctype, raw: raw, body: body, name: e.name, uuid: uuid})
	}
	return out
}

// addHeaders appends variable_* headers, URL-encoded as FreeSWITCH does,
// before the blank line that ends the event's headers.
func addHeaders(body []byte, vars map[string]string) []byte {
	end := bytes.Index(body, []byte("\n\n"))
	if end < 0 {
		end = len(body)
	}
	var add bytes.Buffer
	for k, v := range vars {
		fmt.Fprintf(&add, "\nvariable_%s: %s", k, url.PathEscape(v))
	}
	out := append([]byte{}, body[:end]...)
	out = append(out, add.Bytes()...)
	return append(out, body[end:]...)
}

// fakeFS is the event socket server.
type fakeFS struct {
	t        testing.TB
	ln       net.Listener
	fx       *fixture
	password string
	// rude: answer like an ACL rejection; silent: accept and say nothing.
	rude, silent bool
	// hold, if set, is called for each api command before it is answered;
	// it may delay the reply (it runs on the connection's reader).
	hold func(cmd string)

	mu       sync.Mutex
	cond     *sync.Cond
	conns    []*fakeConn
	accepted int // connections that authenticated and subscribed
	cmds     []string
	alive    map[string]bool
	exists   int // uuid_exists commands answered
	wg       sync.WaitGroup
}

type fakeConn struct {
	nc     net.Conn
	wmu    sync.Mutex
	events map[string]bool
	closed bool
}

func newFakeFS(t testing.TB, fx *fixture, setup ...func(*fakeFS)) *fakeFS {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeFS{t: t, ln: ln, fx: fx, password: "ClueCon", alive: map[string]bool{}}
	f.cond = sync.NewCond(&f.mu)
	for _, s := range setup {
		s(f)
	}
	f.wg.Add(1)
	go f.accept()
	t.Cleanup(f.close)
	return f
}

func (f *fakeFS) addr() string { return f.ln.Addr().String() }

func (f *fakeFS) close() {
	_ = f.ln.Close()
	f.dropAll()
	f.wg.Wait()
}

// dropAll closes every connection, as a FreeSWITCH that dies does.
func (f *fakeFS) dropAll() {
	f.mu.Lock()
	for _, c := range f.conns {
		c.closed = true
		_ = c.nc.Close()
	}
	f.conns = nil
	f.cond.Broadcast()
	f.mu.Unlock()
}

func (f *fakeFS) accept() {
	defer f.wg.Done()
	for {
		nc, err := f.ln.Accept()
		if err != nil {
			return
		}
		c := &fakeConn{nc: nc}
		f.mu.Lock()
		f.conns = append(f.conns, c)
		f.mu.Unlock()
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer nc.Close()
			f.serve(c)
		}()
	}
}

func (c *fakeConn) write(b ...[]byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for _, p := range b {
		if _, err := c.nc.Write(p); err != nil {
			return err
		}
	}
	return nil
}

// readCommand reads one command block: lines up to a blank line.
func readCommand(r *bufio.Reader) (string, error) {
	var lines []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return "", err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			if len(lines) == 0 {
				continue
			}
			return strings.Join(lines, "\n"), nil
		}
		lines = append(lines, line)
	}
}

func reply(text string) []byte {
	return []byte("Content-Type: command/reply\nReply-Text: " + text + "\n\n")
}

func apiResponse(body string) []byte {
	return []byte(fmt.Sprintf("Content-Type: api/response\nContent-Length: %d\n\n%s", len(body), body))
}

func (f *fakeFS) serve(c *fakeConn) {
	if f.silent {
		_, _ = io.Copy(io.Discard, c.nc)
		return
	}
	if f.rude {
		body := "Access Denied, go away.\n"
		_ = c.write([]byte(fmt.Sprintf("Content-Type: text/rude-rejection\nContent-Length: %d\n\n%s", len(body), body)))
		return
	}
	r := bufio.NewReader(c.nc)
	_ = c.write(f.fx.authRequest)
	cmd, err := readCommand(r)
	if err != nil {
		return
	}
	f.record(cmd)
	if cmd != "auth "+f.password {
		_ = c.write(reply("-ERR invalid"), f.fx.disconnect)
		return
	}
	_ = c.write(f.fx.accepted)
	for {
		cmd, err := readCommand(r)
		if err != nil {
			return
		}
		f.record(cmd)
		fields := strings.Fields(cmd)
		switch {
		case len(fields) >= 3 && fields[0] == "event" && fields[1] == "plain":
			ev := map[string]bool{}
			for _, n := range fields[2:] {
				ev[n] = true
			}
			c.wmu.Lock()
			c.events = ev
			c.wmu.Unlock()
			_ = c.write(f.fx.listening)
			f.mu.Lock()
			f.accepted++
			f.cond.Broadcast()
			f.mu.Unlock()
		case cmd == "exit":
			_ = c.write(f.fx.bye, f.fx.disconnect)
			return
		case len(fields) >= 2 && fields[0] == "api":
			if f.hold != nil {
				f.hold(cmd)
			}
			_ = c.write(apiResponse(f.api(fields[1:])))
		default:
			_ = c.write(reply("-ERR command not found"))
		}
	}
}

func (f *fakeFS) api(args []string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch args[0] {
	case "status":
		return "UP 0 years, 0 days, 0 hours, 1 minute, 2 seconds\nFreeSWITCH (Version 1.11.2) is ready\n"
	case "uuid_exists":
		f.exists++
		if len(args) > 1 && f.alive[args[1]] {
			return "true"
		}
		return "false"
	case "uuid_setvar_multi", "uuid_setvar", "uuid_transfer":
		if len(args) > 1 && f.alive[args[1]] {
			return "+OK\n"
		}
		return "-ERR No such channel!\n"
	}
	return "-ERR " + args[0] + " Command not found!\n"
}

func (f *fakeFS) record(cmd string) {
	f.mu.Lock()
	f.cmds = append(f.cmds, cmd)
	f.cond.Broadcast()
	f.mu.Unlock()
}

// waitAccepted waits until n connections have subscribed.
func (f *fakeFS) waitAccepted(t testing.TB, n int) {
	t.Helper()
	f.waitFor(t, func() bool { return f.accepted >= n }, fmt.Sprintf("%d subscribed connections", n))
}

// waitFor waits (under f.mu) for cond, at most 10s.
func (f *fakeFS) waitFor(t testing.TB, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	stop := time.AfterFunc(10*time.Second, func() { f.mu.Lock(); f.cond.Broadcast(); f.mu.Unlock() })
	defer stop.Stop()
	f.mu.Lock()
	defer f.mu.Unlock()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		f.cond.Wait()
	}
}

// commands returns the commands received so far that start with prefix.
func (f *fakeFS) commands(prefix string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.cmds {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}

// current is the newest subscribed connection.
func (f *fakeFS) current(t testing.TB) *fakeConn {
	t.Helper()
	var c *fakeConn
	f.waitFor(t, func() bool {
		for i := len(f.conns) - 1; i >= 0; i-- {
			cc := f.conns[i]
			cc.wmu.Lock()
			ok := cc.events != nil && !cc.closed
			cc.wmu.Unlock()
			if ok {
				c = cc
				return true
			}
		}
		return false
	}, "a subscribed connection")
	return c
}

// play sends frames as FreeSWITCH would: only the subscribed events, and
// it keeps the channel table uuid_exists and uuid_setvar consult.
func (f *fakeFS) play(t testing.TB, c *fakeConn, frames []frame) {
	t.Helper()
	for _, fr := range frames {
		f.track(fr)
		c.wmu.Lock()
		want := c.events[fr.name]
		c.wmu.Unlock()
		if !want {
			continue
		}
		if err := c.write(fr.raw); err != nil {
			t.Fatalf("fake FreeSWITCH: %v", err)
		}
	}
}

func (f *fakeFS) track(fr frame) {
	if fr.uuid == "" {
		return
	}
	f.mu.Lock()
	switch fr.name {
	case "CHANNEL_DESTROY", "CHANNEL_HANGUP_COMPLETE":
		delete(f.alive, fr.uuid)
	case "CHANNEL_HANGUP":
	default:
		f.alive[fr.uuid] = true
	}
	f.mu.Unlock()
}
