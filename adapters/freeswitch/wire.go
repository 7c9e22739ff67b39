package freeswitch

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/percipia/eslgo"
	"github.com/percipia/eslgo/command"
)

// This file speaks the event socket itself instead of through eslgo.Conn,
// whose v1.5.1 connection cannot be made safe (notes F2): it hands each event
// to its own goroutine (out of order), matches replies to commands by order
// with no memory of a command that timed out (a later command then gets the
// stale reply), blocks forever in Dial when FreeSWITCH rejects the ACL or the
// port is not an event socket, and stops reading silently on any error but
// EOF. eslgo still builds every command (package command) and its Event and
// RawResponse types decode headers; only the connection is ours.

// maxBody bounds one frame: FreeSWITCH events are a few KiB, a
// HANGUP_COMPLETE with its CDR body some tens of KiB.
const maxBody = 4 << 20

var (
	errClosed   = errors.New("event socket connection closed")
	errRejected = errors.New("FreeSWITCH refused the connection (event socket ACL: add this host to apply-inbound-acl)")
	errPassword = errors.New("FreeSWITCH rejected the event socket password")
)

// frameReader reads ESL messages: headers, a blank line, and Content-Length
// bytes of body.
type frameReader struct {
	tp *textproto.Reader
}

func newFrameReader(r io.Reader) *frameReader {
	return &frameReader{tp: textproto.NewReader(bufio.NewReaderSize(r, 64<<10))}
}

// read returns the next message.
func (f *frameReader) read() (*eslgo.RawResponse, error) {
	h, err := f.tp.ReadMIMEHeader()
	if err != nil {
		if len(h) == 0 && errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("reading event socket headers: %w", err)
	}
	msg := &eslgo.RawResponse{Headers: h}
	if cl := h.Get("Content-Length"); cl != "" {
		n, err := strconv.Atoi(strings.TrimSpace(cl))
		if err != nil || n < 0 || n > maxBody {
			return nil, fmt.Errorf("event socket frame with bad Content-Length %q", cl)
		}
		msg.Body = make([]byte, n)
		if _, err := io.ReadFull(f.tp.R, msg.Body); err != nil {
			return nil, fmt.Errorf("reading event socket body: %w", err)
		}
	}
	return msg, nil
}

// wanted are the event headers the bridge reads. An event carries a hundred
// or more; keeping only these makes decoding several times cheaper, which
// is most of the work per event.
var wanted = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"Event-Name", "Core-UUID", "Unique-ID", "Call-Direction", "Channel-Name",
		"Caller-Caller-ID-Number", "Caller-Orig-Caller-ID-Number", "Caller-ANI", "Caller-Destination-Number",
		"Other-Type", "Other-Leg-Unique-ID",
		"variable_origination_caller_id_number", "variable_dialed_user", "variable_dialed_domain",
		"variable_originator", "variable_originating_leg_uuid", "variable_loopback_leg",
		"variable_other_loopback_leg_uuid", "variable_uduration", "variable_duration",
		"Content-Length",
	} {
		m[k] = textproto.CanonicalMIMEHeaderKey(k)
	}
	for _, k := range stickyVars {
		m["variable_"+k] = textproto.CanonicalMIMEHeaderKey("variable_" + k)
	}
	return m
}()

// parsePlainEvent decodes a text/event-plain body ("Name: url-encoded
// value" lines, a blank line, and an optional body) into an eslgo.Event
// holding the wanted headers, under their canonical names as eslgo expects.
func parsePlainEvent(body []byte) (*eslgo.Event, error) {
	h := make(textproto.MIMEHeader, 24)
	rest := body
	for {
		nl := bytes.IndexByte(rest, '\n')
		var line []byte
		if nl < 0 {
			line, rest = rest, nil
		} else {
			line, rest = rest[:nl], rest[nl+1:]
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return nil, fmt.Errorf("malformed event header line %q", truncate(line))
		}
		if key, ok := wanted[string(line[:colon])]; ok {
			h[key] = append(h[key], string(bytes.TrimSpace(line[colon+1:])))
		}
		if rest == nil {
			break
		}
	}
	if len(h) == 0 {
		return nil, errors.New("event without headers")
	}
	ev := &eslgo.Event{Headers: h}
	if cl := h.Get("Content-Length"); cl != "" {
		n, err := strconv.Atoi(cl)
		if err != nil || n < 0 || n > len(rest) {
			return nil, fmt.Errorf("bad event Content-Length %q", cl)
		}
		ev.Body = rest[:n:n]
	}
	return ev, nil
}

func truncate(b []byte) string {
	if len(b) > 40 {
		b = b[:40]
	}
	return string(b)
}

// conn is one event socket connection, inbound or outbound. One goroutine
// (readLoop) reads every frame in wire order: events go to onEvent in that
// order, replies go to the oldest command still waiting, even if that
// command's caller has given up, so a late reply is never taken for the
// reply of the next command.
type conn struct {
	nc      net.Conn
	fr      *frameReader
	onEvent func(*eslgo.Event)
	onFrame func(*eslgo.RawResponse) // non-reply, non-event frames (disconnect notice)

	wmu     sync.Mutex // write order == queue order
	qmu     sync.Mutex
	queue   []chan *eslgo.RawResponse
	closed  chan struct{}
	once    sync.Once
	err     error
	lastIn  atomic.Int64 // unix nanos of the last frame read
	timeout time.Duration
	// password answers a later auth/request (inbound only).
	password string
}

func newConn(nc net.Conn, fr *frameReader, timeout time.Duration) *conn {
	c := &conn{nc: nc, fr: fr, closed: make(chan struct{}), timeout: timeout}
	c.lastIn.Store(time.Now().UnixNano())
	return c
}

func (c *conn) close(err error) {
	c.once.Do(func() {
		c.err = err
		close(c.closed)
		_ = c.nc.Close()
	})
}

// readLoop runs until the connection fails; it returns the reason.
func (c *conn) readLoop() error {
	for {
		msg, err := c.fr.read()
		if err != nil {
			c.close(err)
			return err
		}
		c.lastIn.Store(time.Now().UnixNano())
		switch msg.GetHeader("Content-Type") {
		case eslgo.TypeReply, eslgo.TypeAPIResponse:
			c.qmu.Lock()
			var ch chan *eslgo.RawResponse
			if len(c.queue) > 0 {
				ch = c.queue[0]
				c.queue[0] = nil
				c.queue = c.queue[1:]
			}
			c.qmu.Unlock()
			if ch != nil {
				ch <- msg // buffered: never blocks, even if the caller left
			}
		case eslgo.TypeEventPlain:
			ev, err := parsePlainEvent(msg.Body)
			if err != nil {
				ev = nil
			}
			if c.onEvent != nil {
				c.onEvent(ev) // nil: malformed
			}
		case eslgo.TypeDisconnect:
			if c.onFrame != nil {
				c.onFrame(msg)
			}
		case eslgo.TypeAuthRequest:
			// FreeSWITCH asks again after a reload; answer out of band.
			go c.reauth()
		default:
			if c.onFrame != nil {
				c.onFrame(msg)
			}
		}
	}
}

func (c *conn) reauth() {
	pw := c.password
	if pw == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	if r, err := c.send(ctx, command.Auth{Password: pw}); err != nil || !r.IsOk() {
		c.close(errPassword)
	}
}

// send writes cmd and waits for its reply, or ctx, or the end of the
// connection. A command that gives up keeps its place in the queue, so its
// reply is consumed when it arrives.
func (c *conn) send(ctx context.Context, cmd command.Command) (*eslgo.RawResponse, error) {
	msg := cmd.BuildMessage()
	if strings.ContainsAny(msg, "\r\n") {
		// Every command the bridge sends is one line; a line break in one
		// would let a value smuggle in another command.
		return nil, errors.New("refusing to send a command with a line break in it")
	}
	ch := make(chan *eslgo.RawResponse, 1)
	c.wmu.Lock()
	select {
	case <-c.closed:
		c.wmu.Unlock()
		return nil, c.closedErr()
	default:
	}
	c.qmu.Lock()
	c.queue = append(c.queue, ch)
	c.qmu.Unlock()
	deadline := time.Now().Add(c.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = c.nc.SetWriteDeadline(deadline)
	_, err := io.WriteString(c.nc, msg+"\n\n")
	c.wmu.Unlock()
	if err != nil {
		c.close(err)
		return nil, err
	}
	select {
	case r := <-ch:
		return r, nil
	case <-c.closed:
		return nil, c.closedErr()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *conn) closedErr() error {
	if c.err != nil && !errors.Is(c.err, io.EOF) {
		return fmt.Errorf("%w: %v", errClosed, c.err)
	}
	return errClosed
}

// api runs an api command and returns its body, or an error for -ERR.
func (c *conn) api(ctx context.Context, cmd, args string) (string, error) {
	r, err := c.send(ctx, command.API{Command: cmd, Arguments: args})
	if err != nil {
		return "", err
	}
	out := r.GetReply()
	if !r.IsOk() && strings.HasPrefix(out, "-") {
		return out, fmt.Errorf("%s: %s", cmd, strings.TrimSpace(out))
	}
	return out, nil
}

// dialInbound connects and authenticates, all within timeout: a port that
// never speaks, an ACL rejection and a wrong password all fail cleanly.
func dialInbound(ctx context.Context, addr, password string, timeout time.Duration, events []string) (*conn, error) {
	d := net.Dialer{Timeout: timeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	_ = nc.SetDeadline(time.Now().Add(timeout))
	fr := newFrameReader(nc)
	fail := func(err error) (*conn, error) {
		_ = nc.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	expect := func(what string) (*eslgo.RawResponse, error) {
		msg, err := fr.read()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil, fmt.Errorf("no %s from %s within %v: not a FreeSWITCH event socket?", what, addr, timeout)
			}
			return nil, fmt.Errorf("waiting for %s: %w", what, err)
		}
		return msg, nil
	}
	msg, err := expect("auth/request")
	if err != nil {
		return fail(err)
	}
	switch ct := msg.GetHeader("Content-Type"); ct {
	case eslgo.TypeAuthRequest:
	case "text/rude-rejection":
		return fail(errRejected)
	default:
		return fail(fmt.Errorf("expected auth/request from %s, got %q: not a FreeSWITCH event socket?", addr, ct))
	}
	if _, err := io.WriteString(nc, command.Auth{Password: password}.BuildMessage()+"\n\n"); err != nil {
		return fail(err)
	}
	msg, err = expect("auth reply")
	if err != nil {
		return fail(err)
	}
	if msg.GetHeader("Content-Type") != eslgo.TypeReply || !msg.IsOk() {
		return fail(errPassword)
	}
	sub := command.Event{Format: "plain", Listen: events}.BuildMessage()
	if _, err := io.WriteString(nc, sub+"\n\n"); err != nil {
		return fail(err)
	}
	msg, err = expect("event subscription reply")
	if err != nil {
		return fail(err)
	}
	if !msg.IsOk() {
		return fail(fmt.Errorf("FreeSWITCH refused %q: %s", sub, msg.GetReply()))
	}
	_ = nc.SetDeadline(time.Time{})
	c := newConn(nc, fr, timeout)
	c.password = password
	return c, nil
}
