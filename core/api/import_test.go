package api_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/sticky-cc/sticky/core/api"
)

// POST /v1/import answers what became of every row, in order, and records
// the place of the file for GET /v1/import/{source}; the exchange is held to
// the OpenAPI document.
func TestImportOverHTTP(t *testing.T) {
	e := newEnv(t, api.Options{Keys: []string{key}})
	body := `{"source":"f1","offset":120,"line":3,"rows_done":2,"rejects_at":12,"rows":[
		{"line":2,"name":"Ann","phones":["(415) 555-0100"],"emails":["ann@example.com"],"customer_id":"C-1","variables":{"plan":"gold"},"open_intents":["billing_inquiry"]},
		{"line":3,"customer_id":"C-2","phones":["no number"]}]}`
	r := e.do("POST", "/v1/import", body)
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	res := r.body["results"].([]any)
	first, second := res[0].(map[string]any), res[1].(map[string]any)
	if first["outcome"] != "imported" || second["outcome"] != "rejected" || second["reason"] != "phone 1 is not a phone number" {
		t.Fatalf("%s", r.raw)
	}
	p := e.do("GET", "/v1/import/f1", "")
	if p.status != 200 || p.body["offset"] != float64(120) || p.body["imported"] != float64(1) || p.body["rejected"] != float64(1) {
		t.Fatalf("progress: %d %s", p.status, p.raw)
	}
	if again := e.do("POST", "/v1/import", body); !strings.Contains(again.raw, `"outcome":"unchanged"`) {
		t.Fatalf("the same rows again: %s", again.raw)
	}
	ref := first["customer_ref"].(string)
	if c := e.do("GET", "/v1/customers/"+ref, ""); c.status != 200 || !strings.Contains(c.raw, `"source":"import"`) {
		t.Fatalf("customer: %s", c.raw)
	}
	done := e.do("POST", "/v1/import", `{"source":"f1","offset":200,"line":4,"done":true,"rows":[]}`)
	if done.status != 200 {
		t.Fatal(done.raw)
	}
	e.do("GET", "/v1/import/f1", "").errorEnvelope(t, 404)
}

func TestImportRefusesBadBatches(t *testing.T) {
	e := newEnv(t, api.Options{Keys: []string{key}})
	var rows []string
	for i := range 1001 {
		rows = append(rows, fmt.Sprintf(`{"line":%d,"customer_ref":"c%d"}`, i+2, i))
	}
	e.do("POST", "/v1/import", `{"rows":[`+strings.Join(rows, ",")+`]}`).errorEnvelope(t, 413)
	e.do("POST", "/v1/import", `{"rows":"nope"}`).errorEnvelope(t, 400)
	e.do("POST", "/v1/import", `{"offset":7,"rows":[]}`).errorEnvelope(t, 400)
}
