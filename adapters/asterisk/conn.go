package asterisk

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/CyCoreSystems/ari/v5"
	"golang.org/x/net/websocket"
)

// errReplaced ends a connection whose application another client took.
var errReplaced = errors.New("another ARI client registered the same application name; give every bridge its own app name")

// attach runs one connection: check Asterisk, dial the events websocket,
// subscribe, and read until the connection breaks or ctx ends. up says
// whether the connection was established.
//
// The websocket is read here rather than by ari/v5's native Connect, which
// cannot be cancelled (notes A5#1), races on its connected flag (A5#4),
// panics on an undecodable event (A5#5), drops events past 100 per
// subscription (A5#9), loses events before Subscribe (A5#10) and leaves
// subscription channels open on Close (F1#2). REST goes through native.
func (b *Bridge) attach(ctx context.Context, queue chan<- item) (up bool, err error) {
	var info *ari.AsteriskInfo
	err = b.call(ctx, func() (err error) {
		info, err = b.ari.Asterisk().Info(nil)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("GET /asterisk/info: %w", err)
	}

	q := url.Values{"app": {b.opts.App}}
	if b.observe {
		q.Set("subscribeAll", "true")
	}
	cfg, err := websocket.NewConfig(b.wsURL+"?"+q.Encode(), "http://localhost/")
	if err != nil {
		return false, err
	}
	cfg.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(b.opts.User+":"+b.opts.Password)))
	// TCP keepalive is the only thing that notices a half-open connection:
	// x/net/websocket has no ping timer (A5#6).
	cfg.Dialer = &net.Dialer{KeepAlive: 15 * time.Second}
	dctx, cancel := context.WithTimeout(ctx, b.opts.DialTimeout)
	ws, err := cfg.DialContext(dctx)
	cancel()
	if err != nil {
		return false, err
	}
	defer ws.Close()
	stop := context.AfterFunc(ctx, func() { ws.Close() })
	defer stop()

	b.mu.Lock()
	b.node = info.SystemInfo.EntityID
	b.mu.Unlock()
	// The marker goes first, so the dispatcher reconciles its calls with
	// what Asterisk has now before it sees this connection's events.
	select {
	case queue <- item{kind: itemConnected, at: time.Now()}:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	if b.everUp.Swap(true) {
		b.count("reconnect")
	}
	b.setStatus(true, fmt.Sprintf("connected to %s (Asterisk %s, %s)", b.wsURL, info.SystemInfo.Version, info.SystemInfo.EntityID))
	b.log.Info("attached to Asterisk", "url", b.wsURL, "app", b.opts.App, "mode", b.opts.Mode,
		"version", info.SystemInfo.Version, "entity_id", info.SystemInfo.EntityID)

	if b.observe {
		// Newer Asterisk drops an app's subscriptions when its websocket
		// closes (A5#3): subscribe again on every connection. subscribeAll
		// in the URL already covers it; this is for proxies that strip it.
		b.goWork(func() {
			err := b.call(ctx, func() error {
				return b.ari.Application().Subscribe(ari.NewKey(ari.ApplicationKey, b.opts.App), "channel:")
			})
			if err != nil && ctx.Err() == nil {
				b.log.Warn("subscribing to all channels failed; relying on subscribeAll", "err", err)
			}
		})
	}

	for {
		var msg []byte
		if err := websocket.Message.Receive(ws, &msg); err != nil {
			if ctx.Err() != nil {
				return true, ctx.Err()
			}
			return true, fmt.Errorf("events websocket: %w", err)
		}
		at := time.Now()
		ev, err := decode(msg)
		if err != nil {
			b.count("malformed_event")
			// The event is not logged: it may hold callers' numbers.
			b.log.Warn("skipping malformed ARI event", "bytes", len(msg), "err", err)
			continue
		}
		if ev == nil {
			continue
		}
		if ev.Type == "ApplicationReplaced" {
			b.log.Error("ARI application replaced", "app", b.opts.App, "err", errReplaced)
			return true, errReplaced
		}
		it := item{kind: itemEvent, ev: ev, at: at}
		select {
		case queue <- it:
			continue
		default:
		}
		// The dispatcher does no I/O, so this only happens under a flood;
		// wait rather than drop (A5#9), and say so.
		b.count("backpressure")
		select {
		case queue <- it:
		case <-ctx.Done():
			return true, ctx.Err()
		}
	}
}
