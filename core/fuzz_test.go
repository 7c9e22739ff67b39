package core_test

import (
	"context"
	"strings"
	"testing"

	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/core/store"
)

func memEngine(f *testing.F) *core.Engine {
	db, err := store.Open(store.Options{InMemory: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	return core.New(core.Options{Store: db})
}

// acceptable reports whether err is one a client can act on: bad input, or a
// conflict with an earlier request. Anything else from bad input is a bug.
func acceptable(err error) bool {
	c := core.ErrorCode(err)
	return err == nil || c == core.CodeInvalid || c == core.CodeConflict
}

func FuzzStartRequest(f *testing.F) {
	for _, s := range []string{
		`{"call_id":"a","identity_hints":{"ani":"+14155551234","external_ids":{"email":"a@b.c"}}}`,
		`{"call_id":"a","ani":"sip:4155551234@x","external_ids":{"crm_id":"1"}}`,
		`{"call_id":"b","identity_hints":{"customer_ref":"cust_1"},"telco":{"line_type":"mobile"},"channel":"phone"}`,
		`{"call_id":"\u202e","identity_hints":{"ani":"anonymous"}}`,
		`{}`, `[]`, `null`, `{"call_id":1}`,
	} {
		f.Add([]byte(s))
	}
	e := memEngine(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := core.ParseStart(body)
		if err != nil {
			if core.ErrorCode(err) != core.CodeInvalid {
				t.Fatalf("parse error of the wrong kind: %v", err)
			}
			return
		}
		res, err := e.Start(context.Background(), req)
		if !acceptable(err) {
			t.Fatalf("start(%q): %v", body, err)
		}
		if err == nil && (res.CustomerRef == "" || res.Identity.Level == "") {
			t.Fatalf("incomplete result %+v", res)
		}
	})
}

func FuzzEndRequest(f *testing.F) {
	for _, s := range []string{
		`{"call_id":"a","customer_ref":"c","intent":"x","intent_status":"open","variables":{"summary":"s","n":1,"b":true},"ttl_seconds":60}`,
		`{"call_id":"a","identity_hints":{"ani":"4155551234"},"intent":"x","intent_is_open":false}`,
		`{"call_id":"a","customer_ref":"c","variables":{"email":"X@Y.z","phone":"+1 415 555 1234"},"channel":"chat"}`,
		`{"call_id":"a","customer_ref":"c","started_at":"2026-01-01T00:00:00Z","ended_at":"2026-01-01T00:01:00.5Z"}`,
		`{"call_id":"a","variables":{"a":{"b":1}}}`,
	} {
		f.Add([]byte(s))
	}
	e := memEngine(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := core.ParseEnd(body)
		if err != nil {
			if core.ErrorCode(err) != core.CodeInvalid {
				t.Fatalf("parse error of the wrong kind: %v", err)
			}
			return
		}
		res, err := e.End(context.Background(), req)
		if !acceptable(err) {
			t.Fatalf("end(%q): %v", body, err)
		}
		if err == nil && (res.CustomerRef == "" || res.DurationSeconds < 0) {
			t.Fatalf("bad result %+v", res)
		}
	})
}

func FuzzNormalizePhone(f *testing.F) {
	for _, s := range []string{"+1 415-555-1234", "4155551234", "sip:+14155551234@host;user=phone", "tel:+44-20-7183-8750", "00442071838750", "anonymous", "", "+", "1(2)3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := core.NormalizePhone(raw, "US")
		if err != nil || got == "" {
			return
		}
		if got[0] != '+' || strings.Trim(got[1:], "0123456789") != "" || len(got) > 16 {
			t.Fatalf("NormalizePhone(%q) = %q: not E.164", raw, got)
		}
		again, err := core.NormalizePhone(got, "US")
		if err != nil || again != got {
			t.Fatalf("not idempotent: %q -> %q -> %q (%v)", raw, got, again, err)
		}
	})
}

func FuzzNormalizeEmail(f *testing.F) {
	for _, s := range []string{"a@b.c", " A@B.C ", "Jane <j@x.y>", "\"quoted\"@x.y", "x", "@", ""} {
		f.Add(s)
	}
	for _, s := range []string{"jane.doe+tag@mail.example.com", "a..b@x.y", ".a@x.y", "a@x..y", "a@x.y.", "a@-x.y", "%@x", "A_B@c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := core.NormalizeEmail(raw)
		if slow, slowErr := core.NormalizeEmailSlow(strings.TrimSpace(raw)); strings.TrimSpace(raw) != "" && (slow != got || (slowErr == nil) != (err == nil)) {
			t.Fatalf("fast and slow paths disagree on %q: %q (%v) vs %q (%v)", raw, got, err, slow, slowErr)
		}
		if err != nil || got == "" {
			return
		}
		if got != strings.ToLower(got) || !strings.Contains(got, "@") {
			t.Fatalf("NormalizeEmail(%q) = %q", raw, got)
		}
		again, err := core.NormalizeEmail(got)
		if err != nil || again != got {
			t.Fatalf("not idempotent: %q -> %q -> %q (%v)", raw, got, again, err)
		}
	})
}
