package screenpop_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/core/api"
	"github.com/sticky-cc/sticky/core/api/apitest"
	"github.com/sticky-cc/sticky/screenpop"
)

// The start and end services answer exactly like HTTP: the same JSON for
// results, the same envelope for errors plus the HTTP status in code (and
// in the micro error headers).
func TestServicesAnswerLikeHTTP(t *testing.T) {
	e, clk := newEngine(t, time.Date(2026, 1, 26, 14, 0, 0, 0, time.UTC))
	seedJane(t, e, clk)
	svc := startService(t, screenpop.Options{Calls: e})
	waitReady(t, svc)
	hs := httptest.NewServer(apitest.Handler(t, api.New(api.Options{Engine: e}), apitest.Options{Open: true}))
	t.Cleanup(hs.Close)
	nc := adminConn(t, svc)

	post := func(path, body string) (int, []byte) {
		t.Helper()
		res, err := http.Post(hs.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, b
	}
	request := func(subject, body string) (*nats.Msg, map[string]any) {
		t.Helper()
		m, err := nc.Request(subject, []byte(body), 5*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", subject, err)
		}
		var v map[string]any
		if err := json.Unmarshal(m.Data, &v); err != nil {
			t.Fatalf("%s: reply is not JSON: %q", subject, m.Data)
		}
		return m, v
	}
	decode := func(b []byte) map[string]any {
		var v map[string]any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("not JSON: %q", b)
		}
		return v
	}

	start := `{"call_id":"nats_call","identity_hints":{"ani":"+14155551234","dnis":"8005550100"},"telco":{"line_type":"mobile"}}`
	m, viaNATS := request(screenpop.SubjectStart, start)
	if m.Header.Get("Nats-Service-Error-Code") != "" {
		t.Fatalf("start failed: %s", m.Data)
	}
	// Starting the same active call again over HTTP is a retry: same answer.
	status, b := post("/v1/calls/start", start)
	if status != 200 {
		t.Fatalf("HTTP start = %d %s", status, b)
	}
	if a, h := mustJSON(viaNATS), mustJSON(decode(b)); a != h {
		t.Errorf("start differs:\nNATS %s\nHTTP %s", a, h)
	}
	if viaNATS["customer_ref"] == "" || viaNATS["history"] == nil {
		t.Errorf("start result = %v", viaNATS)
	}

	end := `{"call_id":"nats_call","intent":"refund_status","intent_status":"resolved","variables":{"summary":"Refund confirmed"}}`
	_, endNATS := request(screenpop.SubjectEnd, end)
	status, b = post("/v1/calls/end", end)
	if status != 200 {
		t.Fatalf("HTTP end = %d %s", status, b)
	}
	if a, h := mustJSON(endNATS), mustJSON(decode(b)); a != h {
		t.Errorf("end differs:\nNATS %s\nHTTP %s", a, h)
	}

	for _, tc := range []struct {
		name, subject, path, body string
		status                    int
	}{
		{"malformed JSON", screenpop.SubjectStart, "/v1/calls/start", `{"call_id":`, 400},
		{"no hints", screenpop.SubjectStart, "/v1/calls/start", `{"call_id":"x1"}`, 400},
		{"start after end", screenpop.SubjectStart, "/v1/calls/start", start, 409},
		{"end with another body", screenpop.SubjectEnd, "/v1/calls/end", `{"call_id":"nats_call","intent":"other"}`, 409},
		{"end of an unknown call", screenpop.SubjectEnd, "/v1/calls/end", `{"call_id":"never_started"}`, 400},
		{"nested variable", screenpop.SubjectEnd, "/v1/calls/end", `{"call_id":"x2","customer_ref":"c1","variables":{"a":{"b":1}}}`, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, viaNATS := request(tc.subject, tc.body)
			if got := m.Header.Get("Nats-Service-Error-Code"); got != itoa(tc.status) {
				t.Errorf("Nats-Service-Error-Code = %q, want %d", got, tc.status)
			}
			if code, _ := viaNATS["code"].(float64); int(code) != tc.status {
				t.Errorf("code = %v, want %d", viaNATS["code"], tc.status)
			}
			status, b := post(tc.path, tc.body)
			if status != tc.status {
				t.Fatalf("HTTP status = %d, want %d", status, tc.status)
			}
			delete(viaNATS, "code")
			if a, h := mustJSON(viaNATS), mustJSON(decode(b)); a != h {
				t.Errorf("error differs:\nNATS %s\nHTTP %s", a, h)
			}
		})
	}

	// Over the 64 KiB limit: 413 like HTTP.
	big := `{"call_id":"big","identity_hints":{"ani":"+14155551234"},"pad":"` + strings.Repeat("x", core.MaxBodyBytes) + `"}`
	m, v := request(screenpop.SubjectStart, big)
	if m.Header.Get("Nats-Service-Error-Code") != "413" || v["error"] != "Request Entity Too Large" {
		t.Errorf("big body: %s", m.Data)
	}
}

// An agent's wrap-up becomes the phone interaction's end-of-interaction
// context, merged with the PBX's hang-up report in either order.
func TestWrapUp(t *testing.T) {
	e, clk := newEngine(t, time.Date(2026, 1, 26, 14, 0, 0, 0, time.UTC))
	seedJane(t, e, clk)
	cnt := &counter{n: map[string]int{}}
	svc := startService(t, screenpop.Options{Calls: e, Count: cnt.Count})
	waitReady(t, svc)
	alice, _ := connectAgent(t, svc, "alice", "alice-secret")
	ctx := context.Background()

	wrap := func(body string) (*nats.Msg, map[string]any) {
		t.Helper()
		m, err := alice.Request(screenpop.SubjectWrapUp, []byte(body), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var v map[string]any
		if err := json.Unmarshal(m.Data, &v); err != nil {
			t.Fatalf("reply %q", m.Data)
		}
		return m, v
	}

	// PBX hang-up first, wrap-up second.
	pop := ring(t, e, "call1", "alice")
	clk.Add(3 * time.Minute)
	if _, err := e.End(ctx, core.EndRequest{CallID: "call1", Merge: true}); err != nil {
		t.Fatal(err)
	}
	m, v := wrap(`{"call_id":"call1","intent":"refund_status","intent_status":"resolved","summary":"Refund issued, ref R-9","variables":{"refund_ref":"R-9","agent_score":5}}`)
	if m.Header.Get("Nats-Service-Error-Code") != "" || v["customer_ref"] != pop.Context.CustomerRef {
		t.Fatalf("wrap-up = %s", m.Data)
	}
	prof, err := e.Customer(ctx, pop.Context.CustomerRef, 0)
	if err != nil {
		t.Fatal(err)
	}
	h := prof.History[0]
	if h.CallID != "call1" || h.Channel != "phone" || h.Summary != "Refund issued, ref R-9" || h.Intent != "refund_status" || h.IntentStatus != "resolved" {
		t.Errorf("phone interaction = %+v", h)
	}
	if prof.Variables["refund_ref"].Value != "R-9" || prof.Variables["agent_score"].Value != "5" {
		t.Errorf("variables = %v", prof.Variables)
	}
	if len(prof.OpenIntents) != 0 {
		t.Errorf("refund_status still open: %+v", prof.OpenIntents)
	}

	// Wrap-up first, PBX hang-up second: the hang-up keeps the wrap-up.
	clk.Add(time.Hour)
	ring(t, e, "call2", "alice")
	if m, _ := wrap(`{"call_id":"call2","intent":"billing_inquiry","summary":"Asked about the invoice"}`); m.Header.Get("Nats-Service-Error-Code") != "" {
		t.Fatalf("wrap-up = %s", m.Data)
	}
	clk.Add(time.Minute)
	if _, err := e.End(ctx, core.EndRequest{CallID: "call2", Merge: true, Variables: map[string]string{"hangup_cause": "NORMAL_CLEARING"}}); err != nil {
		t.Fatal(err)
	}
	prof, _ = e.Customer(ctx, pop.Context.CustomerRef, 0)
	if h := prof.History[0]; h.CallID != "call2" || h.Summary != "Asked about the invoice" || h.Intent != "billing_inquiry" || h.IntentStatus != "open" {
		t.Errorf("after hang-up = %+v", h)
	}

	// Bad wrap-ups: nothing written, the envelope says why.
	for body, status := range map[string]string{
		`{"call_id":"call3","customer_ref":"cust_x","summary":"x"}`: "400", // an agent cannot pick a customer
		`{"call_id":"never_rang","summary":"x"}`:                    "400",
		`{"call_id":"call1","intent_status":"resolved"}`:            "400",
		`not json`:                              "400",
		`{"call_id":"call1","summary":{"a":1}}`: "400",
	} {
		m, v := wrap(body)
		if m.Header.Get("Nats-Service-Error-Code") != status || v["message"] == "" {
			t.Errorf("%s: %s", body, m.Data)
		}
	}
	if cnt.Get("wrapup_saved") != 2 || cnt.Get("wrapup_failed") != 5 {
		t.Errorf("saved %d failed %d", cnt.Get("wrapup_saved"), cnt.Get("wrapup_failed"))
	}
}

func TestParseWrapUp(t *testing.T) {
	req, err := screenpop.ParseWrapUp([]byte(`{"call_id":"c1","intent":"x","intent_status":"open","summary":"  hi  ","variables":{"summary":"old","n":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	if !req.Merge || req.Channel != "phone" || req.Variables["summary"] != "hi" || req.Variables["n"] != "1" || req.CustomerRef != "" || req.Hints != nil {
		t.Errorf("req = %+v", req)
	}
	if _, err := screenpop.ParseWrapUp([]byte(`{"call_id":"c1","identity_hints":{"ani":"1"}}`)); core.ErrorCode(err) != core.CodeInvalid {
		t.Errorf("identity_hints accepted: %v", err)
	}
}

func FuzzParseWrapUp(f *testing.F) {
	f.Add([]byte(`{"call_id":"c1","intent":"x","summary":"s","variables":{"a":"b"}}`))
	f.Add([]byte(`{"call_id":1}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := screenpop.ParseWrapUp(b)
		if err != nil {
			if core.ErrorCode(err) != core.CodeInvalid && core.ErrorCode(err) != core.CodeTooLarge {
				t.Fatalf("error code %v for %q: %v", core.ErrorCode(err), b, err)
			}
			return
		}
		if !req.Merge || req.Channel != "phone" || req.CustomerRef != "" || req.Hints != nil {
			t.Fatalf("%q gave %+v", b, req)
		}
	})
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	var out bytes.Buffer
	_ = json.Compact(&out, b)
	return out.String()
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }
