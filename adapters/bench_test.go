package adapters_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/sticky-cc/sticky/adapters"
	"github.com/sticky-cc/sticky/adapters/webhook"
	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/core/api"
	"github.com/sticky-cc/sticky/core/store"
)

// BenchmarkDelivery posts signed webhooks over HTTP to a real engine on
// Badger: each iteration is a new interaction (a new session, thread or
// ticket), so each is a full End with its fsync.
func BenchmarkDelivery(b *testing.B) {
	raw, err := os.ReadFile("email/testdata/reply.eml")
	if err != nil {
		b.Fatal(err)
	}
	zd, err := os.ReadFile("testdata/zendesk-ticket.json")
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name, path, ctype string
		body              func(i int) []byte
	}{
		{"chat", adapters.ChatPath, "application/json", func(i int) []byte {
			return fmt.Appendf(nil, `{"session_id":"chat_b%d","customer":{"email":"c%d@example.test","phone":"+1415555%04d"},"transcript":[{"from":"customer","text":"I was charged twice"},{"from":"agent","text":"Refund opened"}],"intent":"billing_inquiry"}`, i, i%500, i%10000)
		}},
		{"email_raw", adapters.EmailPath, "message/rfc822", func(i int) []byte {
			return bytes.Replace(raw, []byte("CAJane-000@"), fmt.Appendf(nil, "CAJane-%d@", i), 1)
		}},
		{"zendesk", adapters.ZendeskPath, "application/json", func(i int) []byte {
			return bytes.Replace(zd, []byte(`"id": 35436`), fmt.Appendf(nil, `"id": %d`, 100000+i), 1)
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			db, err := store.Open(store.Options{Dir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			e := core.New(core.Options{Store: db})
			srv := api.New(api.Options{Engine: e, Keys: []string{key}})
			if err := adapters.Mount(srv, adapters.Options{Calls: e, Secret: secret, RatePerSecond: 1e9, Burst: 1 << 30}); err != nil {
				b.Fatal(err)
			}
			hs := httptest.NewServer(srv)
			defer hs.Close()
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				body := bc.body(i)
				req, _ := http.NewRequest("POST", hs.URL+bc.path, bytes.NewReader(body))
				req.Header.Set("Content-Type", bc.ctype)
				webhook.SignRequest(req, secret, time.Now(), body)
				began := time.Now()
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
				lat = append(lat, time.Since(began))
				if resp.StatusCode != 200 {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}
