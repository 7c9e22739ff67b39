package freeswitch

import (
	"bufio"
	"bytes"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// socketApp plays FreeSWITCH's socket application: it connects to the
// bridge, answers connect with the channel's data (the headers of a captured
// CHANNEL_PARK event), answers the commands, and records them.
type socketApp struct {
	nc   net.Conn
	r    *bufio.Reader
	wmu  sync.Mutex
	mu   sync.Mutex
	cond *sync.Cond
	cmds []string
	done chan struct{}
}

func dialSocketApp(t *testing.T, addr string, park frame) *socketApp {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &socketApp{nc: nc, r: bufio.NewReader(nc), done: make(chan struct{})}
	s.cond = sync.NewCond(&s.mu)
	t.Cleanup(func() { nc.Close(); <-s.done })
	cmd, err := readCommand(s.r)
	if err != nil || cmd != "connect" {
		t.Fatalf("first command %q, %v; want connect", cmd, err)
	}
	// The connect reply carries the channel data as headers.
	hdr := park.body[:bytes.Index(park.body, []byte("\n\n"))]
	hdr = bytes.Replace(hdr, []byte("Event-Name: CHANNEL_PARK"), []byte("Event-Name: CHANNEL_DATA"), 1)
	s.write([]byte("Content-Type: command/reply\nReply-Text: +OK\nSocket-Mode: async\nControl: full\n"), hdr, []byte("\n\n"))
	go s.serve()
	return s
}

func (s *socketApp) write(b ...[]byte) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	for _, p := range b {
		_, _ = s.nc.Write(p)
	}
}

func (s *socketApp) serve() {
	defer close(s.done)
	for {
		cmd, err := readCommand(s.r)
		if err != nil {
			return
		}
		s.mu.Lock()
		s.cmds = append(s.cmds, cmd)
		s.cond.Broadcast()
		s.mu.Unlock()
		f := strings.Fields(cmd)
		switch {
		case cmd == "exit":
			s.write(reply("+OK bye"), []byte("Content-Type: text/disconnect-notice\nContent-Disposition: disconnect\nContent-Length: 0\n\n"))
			s.nc.Close()
			return
		case f[0] == "api":
			s.write(apiResponse("+OK\n"))
		case f[0] == "linger":
			s.write(reply("+OK will linger"))
		case f[0] == "resume":
			s.write(reply("+OK"))
		case f[0] == "filter":
			s.write(reply("+OK filter added. [" + f[1] + "]=[" + f[2] + "]"))
		case f[0] == "event":
			s.write(reply("+OK event listener enabled plain"))
		default:
			s.write(reply("-ERR command not found"))
		}
	}
}

func (s *socketApp) waitCmd(t *testing.T, prefix string) string {
	t.Helper()
	var got string
	waitCond(t, &s.mu, s.cond, func() bool {
		for _, c := range s.cmds {
			if strings.HasPrefix(c, prefix) {
				got = c
				return true
			}
		}
		return false
	}, "command "+prefix)
	return got
}

func (s *socketApp) has(prefix string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.cmds {
		if strings.HasPrefix(c, prefix) {
			return true
		}
	}
	return false
}

func startOutbound(t *testing.T) (*Bridge, *pops, *counts, *harness) {
	t.Helper()
	h := &harness{engine: newEngine(t), pops: newPops(), counts: newCounts()}
	seedJane(t, h.engine)
	b, err := New(Options{ListenAddr: "127.0.0.1:0", Calls: h.engine, Popper: h.pops, Agents: loopbackAgents,
		Count: h.counts.add, Budget: 2 * time.Second, EndGrace: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	run(t, b)
	eventually(t, "the outbound listener", func() bool { return b.OutboundAddr() != "" })
	if ok, detail := b.Status(); !ok || !strings.Contains(detail, "outbound") {
		t.Fatalf("Status %v %q", ok, detail)
	}
	return b, h.pops, h.counts, h
}

// Without sticky_continue: variables set, then the socket is let go (after
// "resume"), so the dialplan goes on with its next action.
func TestOutboundModeSetsVariablesAndLetsGo(t *testing.T) {
	b, _, _, _ := startOutbound(t)
	fx := loadFixture(t, "park")
	frames := fx.render(11, "", nil)
	bleg := callUUID(11, 1)
	park, _ := until(frames, "CHANNEL_PARK", bleg)
	app := dialSocketApp(t, b.OutboundAddr(), park[len(park)-1])
	set := app.waitCmd(t, "api uuid_setvar_multi "+bleg+" ")
	if !strings.Contains(set, "sticky_customer_ref=cust_jane") {
		t.Fatalf("setvar %q", set)
	}
	app.waitCmd(t, "exit")
	if !app.has("resume") {
		t.Fatal("no resume before letting go: the call would be hung up")
	}
	<-app.done
}

// With sticky_continue: the call is transferred there and the socket kept,
// so the ringing agent pops and the hang-up is saved.
func TestOutboundModeFollowsTheCall(t *testing.T) {
	b, pops, _, h := startOutbound(t)
	fx := loadFixture(t, "ring")
	bleg, aleg := callUUID(12, 1), callUUID(12, 0)
	frames := fx.render(12, "", func(name, uuid string) map[string]string {
		if uuid == bleg {
			return map[string]string{"sticky_continue": "agents XML default"}
		}
		return nil
	})
	park, rest := until(frames, "CHANNEL_PARK", bleg)
	app := dialSocketApp(t, b.OutboundAddr(), park[len(park)-1])
	app.waitCmd(t, "api uuid_setvar_multi "+bleg+" ")
	if got := app.waitCmd(t, "api uuid_transfer "); got != "api uuid_transfer "+bleg+" agents XML default" {
		t.Fatalf("transfer %q", got)
	}
	// FreeSWITCH now sends the filtered events on this socket.
	var progress frame
	for _, f := range frames {
		if f.name == "CHANNEL_PROGRESS" && f.uuid == aleg {
			progress = f
		}
	}
	app.write(progress.raw)
	p := pops.wait(t, 1)[0]
	if p.CallID != "fs-"+aleg || p.Agent != "1003" || p.Context == nil || p.Context.CustomerRef != "cust_jane" {
		t.Fatalf("pop %+v", p)
	}
	for _, f := range rest {
		if f.name == "CHANNEL_HANGUP_COMPLETE" {
			app.write(f.raw)
		}
	}
	eventually(t, "hang-up saved", func() bool { _, ok := history(t, h.engine, "cust_jane", "fs-"+aleg); return ok })
	app.write([]byte("Content-Type: text/disconnect-notice\nContent-Disposition: linger\nContent-Length: 0\n\n"))
	app.nc.Close()
}
