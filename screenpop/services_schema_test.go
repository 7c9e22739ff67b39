package screenpop_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/core/api"
	"github.com/sticky-cc/sticky/core/api/apitest"
	"github.com/sticky-cc/sticky/screenpop"
)

// The micro service tells an integrator what to send: each endpoint's
// metadata points at schemas of the HTTP API's OpenAPI document, and what
// the endpoints really take and answer matches those schemas.
func TestServiceMetadataPointsAtTheSchemas(t *testing.T) {
	e, clk := newEngine(t, time.Date(2026, 1, 26, 14, 0, 0, 0, time.UTC))
	seedJane(t, e, clk)
	svc := startService(t, screenpop.Options{Calls: e})
	waitReady(t, svc)
	nc := adminConn(t, svc)

	m, err := nc.Request("$SRV.INFO.sticky", nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var info micro.Info
	if err := json.Unmarshal(m.Data, &info); err != nil {
		t.Fatalf("$SRV.INFO: %v: %s", err, m.Data)
	}
	if info.Metadata["openapi"] != api.OpenAPIPath {
		t.Errorf("service metadata = %v", info.Metadata)
	}
	eps := map[string]micro.EndpointInfo{}
	for _, ep := range info.Endpoints {
		eps[ep.Name] = ep
	}
	for name, want := range map[string][3]string{
		"start":   {"StartRequest", "StartResult", "Error"},
		"end":     {"EndRequest", "EndResult", "Error"},
		"wrapup":  {"WrapUpRequest", "EndResult", "Error"},
		"profile": {"", "DesktopProfile", "Error"},
		"context": {"ContextRequest", "CallContext", "Error"},
	} {
		md := eps[name].Metadata
		for i, key := range []string{"request_schema", "response_schema", "error_schema"} {
			if want[i] == "" {
				if md[key] != "" {
					t.Errorf("%s: %s = %q for an empty request", name, key, md[key])
				}
				continue
			}
			if md[key] != "/v1/openapi.json#/components/schemas/"+want[i] {
				t.Errorf("%s: %s = %q", name, key, md[key])
			}
			if _, err := apitest.Schema(t, md[key]); err != nil {
				t.Errorf("%s: %s: %v", name, key, err)
			}
		}
		if md["description"] == "" {
			t.Errorf("%s has no description", name)
		}
	}

	// What the endpoints take and answer is what the schemas say.
	exchange := func(conn *nats.Conn, endpoint, subject, body string, fails bool) {
		t.Helper()
		md := eps[endpoint].Metadata
		if body != "" {
			err := apitest.ValidateJSON(t, md["request_schema"], []byte(body))
			if fails != (err != nil) {
				t.Errorf("%s: request %s against %s: %v", endpoint, body, md["request_schema"], err)
			}
		}
		m, err := conn.Request(subject, []byte(body), 5*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", subject, err)
		}
		key := "response_schema"
		if m.Header.Get(micro.ErrorCodeHeader) != "" {
			key = "error_schema"
		}
		if (key == "error_schema") != fails {
			t.Errorf("%s: reply %s", endpoint, m.Data)
		}
		if err := apitest.ValidateJSON(t, md[key], m.Data); err != nil {
			t.Errorf("%s: reply %s does not match %s: %v", endpoint, m.Data, md[key], err)
		}
	}
	exchange(nc, "start", screenpop.SubjectStart, `{"call_id":"schema_call","identity_hints":{"ani":"+14155551234","external_ids":{"email":"jane@example.com"}}}`, false)
	exchange(nc, "start", screenpop.SubjectStart, `{"call_id":"schema_call_2"}`, true)
	exchange(nc, "end", screenpop.SubjectEnd, `{"call_id":"schema_call","variables":{"hangup_cause":"NORMAL_CLEARING"}}`, false)
	exchange(nc, "end", screenpop.SubjectEnd, `{"call_id":"schema_call","variables":{"a":{"nested":1}}}`, true)
	alice, _ := connectAgent(t, svc, "alice", "alice-secret")
	exchange(alice, "wrapup", screenpop.SubjectWrapUp, `{"call_id":"schema_call","intent":"refund_status","intent_status":"resolved","summary":"Refund confirmed"}`, false)
	exchange(alice, "wrapup", screenpop.SubjectWrapUp, `{"call_id":"schema_call","customer_ref":"cust_x"}`, true)
	exchange(alice, "profile", screenpop.SubjectProfilePrefix+".alice", "", false)
	exchange(alice, "context", screenpop.ContextSubject("alice"), `{"call_id":"schema_call","customer_ref":"cust_x"}`, true)
	if err := svc.Pop(context.Background(), core.Pop{CallID: "schema_pop", PBX: "asterisk", Agent: "alice", Context: ring(t, e, "schema_pop", "alice").Context}); err != nil {
		t.Fatal(err)
	}
	exchange(alice, "context", screenpop.ContextSubject("alice"), `{"call_id":"schema_pop"}`, false)
}
