package api_test

import (
	"testing"

	"github.com/sticky-cc/sticky/core/api"
	"github.com/sticky-cc/sticky/core/store"
	"github.com/sticky-cc/sticky/core/store/storetest"
)

func TestIdentifyOverHTTP(t *testing.T) {
	e := newEnv(t, api.Options{})
	for _, body := range []string{
		`{"call_id":"s1","customer_ref":"cust_h1","identity_hints":{"ani":"+14155550003"}}`,
		`{"call_id":"s2","customer_ref":"cust_h2","identity_hints":{"ani":"+14155550003"}}`,
		`{"call_id":"s3","customer_ref":"cust_a","identity_hints":{"ani":"+14155550001"}}`,
	} {
		if r := e.do("POST", "/v1/calls/end", body); r.status != 200 {
			t.Fatal(r.raw)
		}
	}
	r := e.do("POST", "/v1/calls/start", `{"call_id":"c1","identity_hints":{"ani":"+14155550003"}}`)
	if r.status != 200 || r.body["customer_ref"] != "" {
		t.Fatalf("shared line: %s", r.raw)
	}
	if r := e.do("POST", "/v1/calls/start", `{"call_id":"c2","identity_hints":{"ani":"+14155550001"}}`); r.body["customer_ref"] != "cust_a" {
		t.Fatalf("own line: %s", r.raw)
	}

	before := storetest.Dump(t, e.db)
	for _, tc := range []struct {
		name, path, body string
		status           int
	}{
		{"unknown call", "/v1/calls/nope/identify", `{"customer_ref":"cust_h1"}`, 404},
		{"unknown customer", "/v1/calls/c1/identify", `{"customer_ref":"cust_zz"}`, 404},
		{"agent it was not popped to", "/v1/calls/c1/identify", `{"customer_ref":"cust_h1","agent":"1001"}`, 403},
		{"no customer", "/v1/calls/c1/identify", `{}`, 400},
		{"not a boolean", "/v1/calls/c1/identify", `{"customer_ref":"cust_h1","not":"yes"}`, 400},
		{"unknown field", "/v1/calls/c1/identify", `{"customer_ref":"cust_h1","by":"me"}`, 400},
	} {
		r := e.do("POST", tc.path, tc.body)
		r.errorEnvelope(t, tc.status)
	}
	r = e.do("POST", "/v1/calls/c2/identify", `{"customer_ref":"cust_h1"}`)
	r.errorEnvelope(t, 409)
	if d, _ := r.body["details"].(map[string]any); d["assigned_customer_ref"] != "cust_a" || d["requested_customer_ref"] != "cust_h1" {
		t.Fatalf("409 without both refs: %s", r.raw)
	}
	if storetest.Dump(t, e.db) != before {
		t.Fatal("a refused identify changed the store")
	}

	r = e.do("POST", "/v1/calls/c1/identify", `{"customer_ref":"cust_h2"}`)
	if r.status != 200 || r.body["customer_ref"] != "cust_h2" || r.body["decision"] != "assigned" {
		t.Fatalf("identify: %s", r.raw)
	}
	if want := "key:key-1"; r.body["decided_by"] != want { // the plain key's name (api.Options.Keys)
		t.Fatalf("decided_by %v, want %s", r.body["decided_by"], want)
	}
	err := e.db.View(func(tx *store.Txn) error {
		c, _, err := tx.Call("c1")
		if err == nil && (c.CustomerRef != "cust_h2" || c.Identity == nil || len(c.Identity.Decisions) != 1 || c.Identity.Decisions[0].By != r.body["decided_by"]) {
			t.Errorf("call record %+v", c)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// "not this person", then the end: it is kept, unassigned
	if r := e.do("POST", "/v1/calls/c1/identify", `{"customer_ref":"cust_h2","not":true}`); r.status != 200 || r.body["customer_ref"] != "" {
		t.Fatalf("not: %s", r.raw)
	}
	if r := e.do("POST", "/v1/calls/end", `{"call_id":"c1","intent":"billing"}`); r.status != 200 || r.body["unassigned"] != true {
		t.Fatalf("end of the unassigned call: %s", r.raw)
	}
}
