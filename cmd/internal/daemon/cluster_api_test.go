package daemon

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sticky-cc/sticky/core/api/apitest"
)

// GET /v1/cluster is for monitoring: a key with the read scope sees it, a
// key without gets 403, and the answer is what the OpenAPI document says.
func TestClusterStatusNeedsTheReadScope(t *testing.T) {
	addr, _ := runDaemon(t, map[string]string{"STICKY_DATA_DIR": t.TempDir(),
		"STICKY_API_KEYS": "monitoring:read:mon-secret-0123456789,chat:ingest:chat-secret-0123456789"})
	get := func(key string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+addr+"/v1/cluster?state=1", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	req, _ := http.NewRequest("POST", "http://"+addr+"/v1/calls/end", strings.NewReader(`{"call_id":"c1","customer_ref":"cust_1","channel":"chat"}`))
	req.Header.Set("Authorization", "Bearer chat-secret-0123456789")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("end with the ingest key: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	code, body := get("mon-secret-0123456789")
	if code != 200 {
		t.Fatalf("read key: %d %s", code, body)
	}
	if err := apitest.ValidateJSON(t, "#/components/schemas/Cluster", body); err != nil {
		t.Errorf("%s does not match the document: %v", body, err)
	}
	if code, body := get("chat-secret-0123456789"); code != 403 {
		t.Errorf("ingest key: %d %s", code, body)
	}
}
