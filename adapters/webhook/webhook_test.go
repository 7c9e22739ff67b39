package webhook

import (
	"net/http"
	"strconv"
	"testing"
	"time"
	"unicode/utf8"
)

func TestVerify(t *testing.T) {
	now := time.Date(2026, 1, 26, 14, 0, 0, 0, time.UTC)
	v := &Verifier{Secret: []byte("s3cret"), ZendeskSecret: []byte("zd"), Now: func() time.Time { return now }}
	body := []byte(`{"a":1}`)
	h := http.Header{}
	h.Set(TimestampHeader, strconv.FormatInt(now.Unix(), 10))
	h.Set(SignatureHeader, Sign([]byte("s3cret"), now.Unix(), body))
	if err := v.Verify(h, body); err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(h, []byte(`{"a":2}`)); err != ErrForged {
		t.Fatalf("changed body: %v", err)
	}
	old := now.Add(-DefaultWindow - time.Second).Unix()
	h.Set(TimestampHeader, strconv.FormatInt(old, 10))
	h.Set(SignatureHeader, Sign([]byte("s3cret"), old, body))
	if err := v.Verify(h, body); err != ErrStale {
		t.Fatalf("stale: %v", err)
	}
	// Zendesk's scheme: base64, no separator, RFC 3339 timestamp.
	z := http.Header{}
	ts := now.Add(-time.Minute).Format(time.RFC3339)
	z.Set(ZendeskTimestampHeader, ts)
	z.Set(ZendeskSignatureHeader, SignZendesk([]byte("zd"), ts, body))
	if Detect(z) != Zendesk || v.Verify(z, body) != nil {
		t.Fatal("zendesk signature refused")
	}
	z.Set(ZendeskSignatureHeader, SignZendesk([]byte("s3cret"), ts, body))
	if err := v.Verify(z, body); err != ErrForged {
		t.Fatalf("zendesk signature with the wrong secret: %v", err)
	}
	if err := (&Verifier{}).Verify(h, body); err != ErrNoSecret {
		t.Fatalf("no secret: %v", err)
	}
}

func TestClipBytes(t *testing.T) {
	s := "ééééé" // 10 bytes
	for n := 4; n <= 12; n++ {
		got := ClipBytes(s, n)
		if len(got) > n || !utf8.ValidString(got) {
			t.Fatalf("ClipBytes(%d) = %q", n, got)
		}
	}
}
