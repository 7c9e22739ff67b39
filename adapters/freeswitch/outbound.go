package freeswitch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/percipia/eslgo"
	"github.com/percipia/eslgo/command"
)

// Outbound mode: the dialplan runs <action application="socket"
// data="127.0.0.1:8084 async full"/>, FreeSWITCH connects to the bridge and
// parks the call until the bridge lets go. The bridge reads the channel from
// the connect reply, resolves the caller, sets the sticky_* variables, and:
//   - with sticky_continue set, transfers the call there and keeps the socket
//     (filtered to this call) to pop the ringing agent and save the hang-up;
//   - without, closes the socket after "resume", so the dialplan goes on with
//     the next action.
// eslgo's ListenAndServe cannot be stopped and ties the call to a handler
// goroutine (notes F2.7), so the listener is ours too.

// raw is a command eslgo has no type for.
type raw string

func (r raw) BuildMessage() string { return string(r) }

// OutboundAddr is the address the outbound listener is bound to ("" when
// it is not listening); useful when ListenAddr asked for port 0.
func (b *Bridge) OutboundAddr() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.listenAddr
}

func (b *Bridge) runOutbound(ctx context.Context) {
	backoff := b.opts.BackoffMin
	for ctx.Err() == nil {
		var lc net.ListenConfig
		ln, err := lc.Listen(ctx, "tcp", b.opts.ListenAddr)
		if err != nil {
			b.mu.Lock()
			if b.opts.Addr == "" {
				b.status = fmt.Sprintf("cannot listen on %s for FreeSWITCH's socket application: %v; retrying", b.opts.ListenAddr, err)
			}
			b.mu.Unlock()
			b.log.Warn("cannot listen for FreeSWITCH's socket application; retrying", "addr", b.opts.ListenAddr, "err", err)
			if !b.sleep(jitter(backoff)) {
				return
			}
			backoff = min(backoff*2, b.opts.BackoffMax)
			continue
		}
		backoff = b.opts.BackoffMin
		b.mu.Lock()
		b.listenUp, b.listenAddr = true, ln.Addr().String()
		b.mu.Unlock()
		b.log.Info("listening for FreeSWITCH's socket application (outbound mode)", "addr", ln.Addr().String())
		stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
		for {
			nc, err := ln.Accept()
			if err != nil {
				break
			}
			if !b.spawn(func() { b.serveOutbound(ctx, nc) }) {
				_ = nc.Close()
				break
			}
		}
		stop()
		_ = ln.Close()
		b.mu.Lock()
		b.listenUp, b.listenAddr = false, ""
		b.mu.Unlock()
	}
}

// serveOutbound handles one call's socket.
func (b *Bridge) serveOutbound(ctx context.Context, nc net.Conn) {
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(b.opts.DialTimeout))
	fr := newFrameReader(nc)
	if _, err := io.WriteString(nc, command.Connect{}.BuildMessage()+"\n\n"); err != nil {
		return
	}
	reply, err := fr.read()
	if err != nil || reply.GetHeader("Content-Type") != eslgo.TypeReply {
		b.log.Warn("an outbound socket connection did not answer connect", "remote", nc.RemoteAddr().String(), "err", err)
		return
	}
	reply.Headers.Set("Event-Name", "CHANNEL_PARK") // the socket app parks the call
	le, ok := decodeEvent(&eslgo.Event{Headers: reply.Headers}, b.now())
	if !ok {
		b.count("malformed_event")
		b.log.Warn("an outbound socket connect reply without a channel", "remote", nc.RemoteAddr().String())
		return
	}
	_ = nc.SetDeadline(time.Time{})

	c := newConn(nc, fr, b.opts.DialTimeout)
	c.onEvent = b.onEvent(c)
	b.mu.Lock()
	if b.stopping {
		b.mu.Unlock()
		return
	}
	b.outConns[c] = struct{}{}
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.outConns, c)
		b.mu.Unlock()
		c.close(errors.New("done"))
	}()
	done := make(chan error, 1)
	if !b.spawn(func() { done <- c.readLoop() }) {
		return
	}

	setup := func(cmd command.Command) {
		sctx, cancel := context.WithTimeout(ctx, b.opts.DialTimeout)
		defer cancel()
		if r, err := c.send(sctx, cmd); err != nil || !r.IsOk() {
			b.log.Debug("outbound socket setup command refused", "cmd", cmd.BuildMessage(), "err", err)
		}
	}
	// "resume": if the socket closes, the dialplan goes on instead of the
	// call being hung up. "linger": the hang-up events still reach us.
	setup(raw("resume"))
	setup(command.Linger{Enabled: true})
	setup(command.Filter{EventHeader: "Unique-ID", FilterValue: le.uuid})
	setup(command.Filter{EventHeader: "Other-Leg-Unique-ID", FilterValue: le.uuid})
	setup(command.Event{Format: "plain", Listen: []string{"CHANNEL_PROGRESS", "CHANNEL_PROGRESS_MEDIA", "CHANNEL_HANGUP_COMPLETE"}})

	parked := make(chan bool, 1)
	le.src = c
	le.parked = func(continued bool) { parked <- continued }
	b.track.dispatch(le)

	var continued bool
	select {
	case continued = <-parked:
	case err := <-done:
		b.log.Debug("outbound socket closed before the call was handled", "err", err)
		return
	case <-ctx.Done():
		return
	}
	if !continued {
		// Let the dialplan go on with its next action.
		ectx, cancel := context.WithTimeout(ctx, b.opts.DialTimeout)
		_, _ = c.send(ectx, command.Exit{})
		cancel()
		return
	}
	select {
	case <-done: // FreeSWITCH closes after the call (linger)
	case <-ctx.Done():
	}
}
