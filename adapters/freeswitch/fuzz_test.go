package freeswitch

import (
	"bytes"
	"testing"
	"time"
)

// The event decoder takes whatever the socket sends: it must never panic,
// and a UUID it accepts must be safe to put on an api command line.
func FuzzDecodeEvent(f *testing.F) {
	for _, name := range []string{"park", "ring"} {
		fx := loadFixture(f, name)
		for i, e := range fx.events {
			if i%7 == 0 {
				f.Add(e.body)
			}
		}
	}
	f.Add([]byte("Event-Name: CHANNEL_PARK\nUnique-ID: a%0A%0Aapi%20x\n\n"))
	f.Add([]byte("Event-Name: X\nContent-Length: 99\n\nshort"))
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := parsePlainEvent(body)
		if err != nil {
			return
		}
		le, ok := decodeEvent(ev, time.Now())
		if !ok || le.name == "HEARTBEAT" {
			return
		}
		for _, u := range []string{le.uuid, le.parent} {
			if u != "" && !validUUID(u) {
				t.Fatalf("accepted UUID %q", u)
			}
		}
		for _, ep := range le.endpoints() {
			_ = ep
		}
	})
}

// The frame reader never panics and never reads a body past its limit.
func FuzzFrameReader(f *testing.F) {
	for _, name := range []string{"park", "selfhangup"} {
		fx := loadFixture(f, name)
		for i, fr := range fx.frames {
			if i%11 == 0 {
				f.Add(fr.raw)
			}
		}
	}
	f.Add([]byte("Content-Length: -1\n\n"))
	f.Add([]byte("Content-Length: 99999999999\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := newFrameReader(bytes.NewReader(data))
		for i := 0; i < 100; i++ {
			msg, err := r.read()
			if err != nil {
				return
			}
			if len(msg.Body) > maxBody {
				t.Fatalf("body of %d bytes", len(msg.Body))
			}
		}
	})
}
