package api_test

import (
	"context"
	"testing"
)

// Through the real server: a read and a merge are in the customer's access
// log under the names of the keys that made them, newest first; the log
// takes the admin scope, and an erased customer's log is not found.
func TestAccessLogNamesTheKeys(t *testing.T) {
	e := newScopedEnv(t)
	as := func(k string) []string { return []string{"Authorization", "Bearer " + secretOf[k]} }
	if r := e.do("GET", "/v1/customers/cust_seed", "", as("read-key")...); r.status != 200 {
		t.Fatalf("read: %s", r.raw)
	}
	e.clk.Add(1e9)
	if r := e.do("POST", "/v1/customers/cust_seed/merge", `{"from":"cust_other"}`, as("admin-key")...); r.status != 200 {
		t.Fatalf("merge: %s", r.raw)
	}
	if err := e.e.FlushAccess(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.do("GET", "/v1/customers/cust_seed/access", "", as("read-key")...).errorEnvelope(t, 403)
	r := e.do("GET", "/v1/customers/cust_seed/access", "", as("admin-key")...)
	if r.status != 200 {
		t.Fatalf("access log: %s", r.raw)
	}
	recs, _ := r.body["access"].([]any)
	if len(recs) != 2 {
		t.Fatalf("access log: %s", r.raw)
	}
	for i, want := range [][2]string{{"merge", "admin-key"}, {"read", "read-key"}} {
		rec := recs[i].(map[string]any)
		if rec["kind"] != want[0] || rec["actor"] != want[1] {
			t.Errorf("record %d: %v, want %v", i, rec, want)
		}
	}
	// paging
	r = e.do("GET", "/v1/customers/cust_seed/access?limit=1", "", as("admin-key")...)
	next, _ := r.body["next_before"].(string)
	if recs, _ := r.body["access"].([]any); len(recs) != 1 || next == "" {
		t.Fatalf("first page: %s", r.raw)
	}
	r = e.do("GET", "/v1/customers/cust_seed/access?limit=1&before="+next, "", as("admin-key")...)
	if recs, _ := r.body["access"].([]any); len(recs) != 1 || recs[0].(map[string]any)["kind"] != "read" || r.body["next_before"] != nil {
		t.Fatalf("second page: %s", r.raw)
	}
	e.do("GET", "/v1/customers/cust_seed/access?limit=0", "", as("admin-key")...).errorEnvelope(t, 400)
	e.do("GET", "/v1/customers/cust_seed/access?before=soon", "", as("admin-key")...).errorEnvelope(t, 400)

	if r := e.do("DELETE", "/v1/customers/cust_seed", "", as("admin-key")...); r.status != 200 {
		t.Fatalf("erase: %s", r.raw)
	}
	e.do("GET", "/v1/customers/cust_seed/access", "", as("admin-key")...).errorEnvelope(t, 404)
}
