// Package webhook authenticates inbound webhook deliveries: an HMAC-SHA256
// signature over a timestamp and the raw body, checked in constant time and
// only inside a replay window.
//
// Sticky's scheme (any sender):
//
//	X-Sticky-Timestamp: <unix seconds>
//	X-Sticky-Signature: sha256=<hex of HMAC-SHA256(secret, timestamp + "." + body)>
//
// Zendesk's own webhook signing is accepted as well:
//
//	X-Zendesk-Webhook-Signature-Timestamp: <RFC 3339 time>
//	X-Zendesk-Webhook-Signature: <base64 of HMAC-SHA256(secret, timestamp + body)>
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names of the signature schemes.
const (
	TimestampHeader        = "X-Sticky-Timestamp"
	SignatureHeader        = "X-Sticky-Signature"
	ZendeskTimestampHeader = "X-Zendesk-Webhook-Signature-Timestamp"
	ZendeskSignatureHeader = "X-Zendesk-Webhook-Signature"
)

// DefaultWindow is how far a signed timestamp may be from now.
const DefaultWindow = 5 * time.Minute

// Scheme says which signature a request carries.
type Scheme int

const (
	None    Scheme = iota // no signature headers at all
	Sticky                // X-Sticky-Timestamp / X-Sticky-Signature
	Zendesk               // X-Zendesk-Webhook-Signature(-Timestamp)
)

// Errors of Verify; none of them says anything about the secret.
var (
	ErrMissing   = errors.New("missing signature: send X-Sticky-Timestamp and X-Sticky-Signature")
	ErrMalformed = errors.New("malformed signature headers: X-Sticky-Timestamp must be unix seconds and X-Sticky-Signature sha256=<hex>")
	ErrStale     = errors.New("signature timestamp is outside the replay window; sign with the current time")
	ErrForged    = errors.New("signature does not match the body")
	ErrNoSecret  = errors.New("signed webhooks are not configured here; use an API key")
)

// Verifier checks signatures with one shared secret.
type Verifier struct {
	Secret []byte
	// ZendeskSecret is the signing secret of a Zendesk webhook; empty
	// disables Zendesk's scheme.
	ZendeskSecret []byte
	Window        time.Duration // default DefaultWindow
	Now           func() time.Time
}

// Detect says which scheme the request's headers claim, before the body
// is read.
func Detect(h http.Header) Scheme {
	switch {
	case h.Get(SignatureHeader) != "" || h.Get(TimestampHeader) != "":
		return Sticky
	case h.Get(ZendeskSignatureHeader) != "" || h.Get(ZendeskTimestampHeader) != "":
		return Zendesk
	}
	return None
}

func (v *Verifier) window() time.Duration {
	if v.Window > 0 {
		return v.Window
	}
	return DefaultWindow
}

func (v *Verifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

// Fresh checks the headers' shape and timestamp without the body, so stale
// or unsigned requests are refused before their body is read.
func (v *Verifier) Fresh(h http.Header) error {
	_, _, err := v.parse(h)
	return err
}

type signed struct {
	secret []byte
	prefix string // what is signed before the body
	mac    []byte // the presented MAC
}

func (v *Verifier) parse(h http.Header) (signed, time.Time, error) {
	switch Detect(h) {
	case Sticky:
		if len(v.Secret) == 0 {
			return signed{}, time.Time{}, ErrNoSecret
		}
		ts, sig := strings.TrimSpace(h.Get(TimestampHeader)), strings.TrimSpace(h.Get(SignatureHeader))
		if ts == "" || sig == "" {
			return signed{}, time.Time{}, ErrMissing
		}
		secs, err := strconv.ParseInt(ts, 10, 64)
		hexSig, ok := strings.CutPrefix(sig, "sha256=")
		if err != nil || !ok || len(hexSig) != 2*sha256.Size {
			return signed{}, time.Time{}, ErrMalformed
		}
		mac, err := hex.DecodeString(hexSig)
		if err != nil {
			return signed{}, time.Time{}, ErrMalformed
		}
		at := time.Unix(secs, 0)
		if err := v.inWindow(at); err != nil {
			return signed{}, at, err
		}
		return signed{v.Secret, ts + ".", mac}, at, nil
	case Zendesk:
		if len(v.ZendeskSecret) == 0 {
			return signed{}, time.Time{}, ErrNoSecret
		}
		ts, sig := strings.TrimSpace(h.Get(ZendeskTimestampHeader)), strings.TrimSpace(h.Get(ZendeskSignatureHeader))
		if ts == "" || sig == "" {
			return signed{}, time.Time{}, ErrMissing
		}
		at, err := time.Parse(time.RFC3339, ts)
		if err != nil {
			return signed{}, time.Time{}, ErrMalformed
		}
		mac, err := base64.StdEncoding.DecodeString(sig)
		if err != nil || len(mac) != sha256.Size {
			return signed{}, time.Time{}, ErrMalformed
		}
		if err := v.inWindow(at); err != nil {
			return signed{}, at, err
		}
		return signed{v.ZendeskSecret, ts, mac}, at, nil
	}
	return signed{}, time.Time{}, ErrMissing
}

func (v *Verifier) inWindow(at time.Time) error {
	d := v.now().Sub(at)
	if d < 0 {
		d = -d
	}
	if d > v.window() {
		return ErrStale
	}
	return nil
}

// Verify checks the request's signature over body. The MACs are compared
// in constant time.
func (v *Verifier) Verify(h http.Header, body []byte) error {
	s, _, err := v.parse(h)
	if err != nil {
		return err
	}
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte(s.prefix))
	m.Write(body)
	if !hmac.Equal(m.Sum(nil), s.mac) {
		return ErrForged
	}
	return nil
}

// Sign returns the X-Sticky-Signature value for body signed at ts (unix
// seconds), for senders and tests.
func Sign(secret []byte, ts int64, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strconv.FormatInt(ts, 10) + "."))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// SignRequest sets the two signature headers on r for body signed at now.
func SignRequest(r *http.Request, secret []byte, now time.Time, body []byte) {
	ts := now.Unix()
	r.Header.Set(TimestampHeader, strconv.FormatInt(ts, 10))
	r.Header.Set(SignatureHeader, Sign(secret, ts, body))
}

// SignZendesk returns the X-Zendesk-Webhook-Signature value Zendesk would
// send for body at timestamp ts (RFC 3339).
func SignZendesk(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}
