package core_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/core/store"
)

// benchPhone is the ANI of preloaded customer i: a valid North American
// number (+1 415 NXX XXXX, exchange 200-299), as real callers have. (Up to
// 2026-11-25 the benchmark used +1415000XXXX, whose exchange 000 no real
// number has, so every start took the phone library's slow path.)
func benchPhone(i int) string { return fmt.Sprintf("+1415%03d%04d", 200+i/10000, i%10000) }

// Emails are at example.test: example.com is a placeholder domain that
// never links (core.BlockedEmail), and a start must look its email up.

// preload writes n customers straight into the store, each with a phone
// number, an email, a customer id, three variables, an open intent and three
// interactions, the way End would have left them.
func preload(b *testing.B, db *store.DB, n int, now time.Time) {
	b.Helper()
	began := time.Now()
	const batch = 1000
	for lo := 0; lo < n; lo += batch {
		err := db.Update(func(t *store.Txn) error {
			for i := lo; i < min(lo+batch, n); i++ {
				ref := "cust_" + strconv.Itoa(i)
				last := now.Add(-time.Duration(i%40) * 24 * time.Hour)
				c := store.Customer{Ref: ref, CreatedAt: last, UpdatedAt: last, LastContactAt: last,
					Identifiers: []store.Identifier{
						{Kind: core.KindPhone, Value: benchPhone(i), LinkedAt: last},
						{Kind: core.KindEmail, Value: fmt.Sprintf("c%d@example.test", i), LinkedAt: last},
						{Kind: core.KindCustomerID, Value: "C" + strconv.Itoa(i), LinkedAt: last},
					},
					Intents: []store.Intent{{Name: "billing_inquiry", Status: core.StatusOpen, AttemptCount: 2, FirstRaisedAt: last, LastContactAt: last}},
				}
				for _, id := range c.Identifiers {
					if _, err := t.AddRef(id.Kind, id.Value, ref); err != nil {
						return err
					}
				}
				for _, v := range []string{"summary", "ticket_id", "tier"} {
					c.Variables = append(c.Variables, store.Variable{Name: v, Value: "value of " + v, Source: "chat", SetAt: last, ExpiresAt: last.Add(30 * 24 * time.Hour)})
				}
				for h, ch := range []string{"chat", "email", "phone"} {
					at := last.Add(-time.Duration(h) * time.Hour)
					in := store.Interaction{CallID: fmt.Sprintf("%s_%d", ch, i), Channel: ch, StartedAt: at.Add(-5 * time.Minute), EndedAt: at, Intent: "billing_inquiry", IntentStatus: "open", Summary: "Customer asked about the January invoice"}
					c.Recent = append(c.Recent, in)
					if err := t.PutInteraction(ref, in); err != nil {
						return err
					}
				}
				if err := t.PutCustomer(c); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		if lo > 0 && lo%200000 == 0 {
			fmt.Fprintf(os.Stderr, "preload: %d/%d customers (%s)\n", lo, n, time.Since(began).Round(time.Second))
		}
	}
	if err := db.Badger().Flatten(2); err != nil {
		b.Fatal(err)
	}
}

// benchSizes are the store sizes start latency is measured at; set
// STICKY_BENCH_CUSTOMERS to measure one size only (e.g. in a quick run).
func benchSizes() []int {
	if s := os.Getenv("STICKY_BENCH_CUSTOMERS"); s != "" {
		n, _ := strconv.Atoi(s)
		return []int{n}
	}
	return []int{10_000, 1_000_000}
}

var preloaded sync.Map // size -> *benchStore

type benchStore struct {
	db  *store.DB
	now time.Time
}

// benchDirs are the directories openBench made, removed by TestMain.
var benchDirs struct {
	sync.Mutex
	dirs []string
}

// TestMain closes and removes the stores the benchmarks preloaded, also
// after a failed one: each is over a gigabyte at 1,000,000 customers, and
// runs that left them behind filled the disk and the page cache (which made
// later runs measure page-cache reclaim instead of the engine).
func TestMain(m *testing.M) {
	code := m.Run()
	preloaded.Range(func(_, v any) bool {
		v.(*benchStore).db.Close()
		return true
	})
	benchDirs.Lock()
	for _, d := range benchDirs.dirs {
		os.RemoveAll(d)
	}
	benchDirs.Unlock()
	os.Exit(code)
}

func openBench(b *testing.B, n int) *benchStore {
	if v, ok := preloaded.Load(n); ok {
		return v.(*benchStore)
	}
	dir, err := os.MkdirTemp("", "sticky-bench-")
	if err != nil {
		b.Fatal(err)
	}
	benchDirs.Lock()
	benchDirs.dirs = append(benchDirs.dirs, dir)
	benchDirs.Unlock()
	bs := &benchStore{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	// STICKY_BENCH_CACHE=<dir> keeps each preloaded store there and
	// measures on a copy, so repeated runs skip the minutes of preloading.
	cache := ""
	if c := os.Getenv("STICKY_BENCH_CACHE"); c != "" {
		cache = filepath.Join(c, strconv.Itoa(n))
	}
	if _, err := os.Stat(filepath.Join(cache, "complete")); cache == "" || err != nil {
		db, err := store.Open(store.Options{Dir: dir})
		if err != nil {
			b.Fatal(err)
		}
		preload(b, db, n, bs.now)
		// Close and reopen, so that the measurement starts from a settled
		// store rather than in the middle of the bulk load's compactions.
		if err := db.Close(); err != nil {
			b.Fatal(err)
		}
		if cache != "" {
			os.RemoveAll(cache)
			if err := os.CopyFS(cache, os.DirFS(dir)); err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(cache, "complete"), nil, 0o600); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		os.RemoveAll(dir)
		if err := os.CopyFS(dir, os.DirFS(cache)); err != nil {
			b.Fatal(err)
		}
		syscall.Sync() // the copy's writeback must not run during the measurement
	}
	if bs.db, err = store.Open(store.Options{Dir: dir}); err != nil {
		b.Fatal(err)
	}
	preloaded.Store(n, bs)
	return bs
}

func percentile(d []time.Duration, p float64) time.Duration {
	slices.Sort(d)
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

var callSeq atomic.Int64

// endTick is BenchmarkEndParallel's clock, across runs (-count) on the
// same store.
var endTick atomic.Int64

// BenchmarkStart measures a start (resolve plus context read plus the call
// record) in the engine for a known caller, one at a time: its p50 and p99.
func BenchmarkStart(b *testing.B) {
	for _, n := range benchSizes() {
		b.Run(fmt.Sprintf("customers=%d", n), func(b *testing.B) {
			bs := openBench(b, n)
			e := core.New(core.Options{Store: bs.db, Now: func() time.Time { return bs.now }})
			ctx := context.Background()
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				req := core.StartRequest{CallID: "bench_" + strconv.FormatInt(callSeq.Add(1), 10),
					Hints: core.Hints{ANI: benchPhone((i * 7919) % n), ExternalIDs: map[string]string{"email": fmt.Sprintf("c%d@example.test", (i*7919)%n)}}}
				t0 := time.Now()
				res, err := e.Start(ctx, req)
				lat = append(lat, time.Since(t0))
				if err != nil || res.Identity.Recommendation != core.RecommendReuse || len(res.History) != 3 {
					b.Fatalf("start: %v %+v", err, res)
				}
			}
			b.ReportMetric(float64(percentile(lat, 0.50).Microseconds()), "p50-µs")
			b.ReportMetric(float64(percentile(lat, 0.99).Microseconds()), "p99-µs")
		})
	}
}

// BenchmarkStartStoreParts times what a start asks of the store, without
// the engine around it, so a slow start can be placed: the reads (a read
// transaction looking up the phone number, the email and the customer
// record, as resolution does) and the call record's write (a transaction
// that only writes it, committed).
func BenchmarkStartStoreParts(b *testing.B) {
	for _, n := range benchSizes() {
		b.Run(fmt.Sprintf("customers=%d", n), func(b *testing.B) {
			bs := openBench(b, n)
			reads := make([]time.Duration, 0, b.N)
			writes := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				j := (i * 7919) % n
				t0 := time.Now()
				err := bs.db.View(func(t *store.Txn) error {
					refs, err := t.Refs(core.KindPhone, benchPhone(j))
					if err != nil || len(refs) != 1 {
						return fmt.Errorf("phone refs %v: %v", refs, err)
					}
					if refs, err = t.Refs(core.KindEmail, fmt.Sprintf("c%d@example.test", j)); err != nil || len(refs) != 1 {
						return fmt.Errorf("email refs %v: %v", refs, err)
					}
					_, ok, err := t.Customer(refs[0])
					if err != nil || !ok {
						return fmt.Errorf("customer %s: %v %v", refs[0], ok, err)
					}
					return nil
				})
				t1 := time.Now()
				if err == nil {
					id := "parts_" + strconv.FormatInt(callSeq.Add(1), 10)
					err = bs.db.Update(func(t *store.Txn) error {
						return t.PutCall(store.Call{ID: id, CustomerRef: "cust_" + strconv.Itoa(j), Channel: "phone", StartedAt: bs.now, ExpiresAt: bs.now.Add(time.Hour)})
					})
				}
				reads, writes = append(reads, t1.Sub(t0)), append(writes, time.Since(t1))
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(percentile(reads, 0.50).Microseconds()), "reads-p50-µs")
			b.ReportMetric(float64(percentile(reads, 0.99).Microseconds()), "reads-p99-µs")
			b.ReportMetric(float64(percentile(writes, 0.50).Microseconds()), "write-p50-µs")
			b.ReportMetric(float64(percentile(writes, 0.99).Microseconds()), "write-p99-µs")
		})
	}
}

// BenchmarkStartParallel measures start throughput with concurrent callers.
func BenchmarkStartParallel(b *testing.B) {
	for _, n := range benchSizes() {
		b.Run(fmt.Sprintf("customers=%d", n), func(b *testing.B) {
			bs := openBench(b, n)
			e := core.New(core.Options{Store: bs.db, Now: func() time.Time { return bs.now }})
			ctx := context.Background()
			b.SetParallelism(4)
			began := time.Now()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := int(callSeq.Add(1))
					_, err := e.Start(ctx, core.StartRequest{CallID: "benchp_" + strconv.Itoa(i), Hints: core.Hints{ANI: benchPhone((i * 7919) % n)}})
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(began).Seconds(), "starts/s")
		})
	}
}

// BenchmarkEndParallel measures durable ends (synced before they return)
// from concurrent callers.
func BenchmarkEndParallel(b *testing.B) {
	n := benchSizes()[0]
	bs := openBench(b, n)
	// Each end at its own time, as real ones are: with one frozen clock
	// every end ties with the customer's last contact, and the statistics
	// index walks the customer's whole history again for each (tally.go).
	e := core.New(core.Options{Store: bs.db, Now: func() time.Time { return bs.now.Add(time.Duration(endTick.Add(1)) * time.Microsecond) }})
	ctx := context.Background()
	b.SetParallelism(32)
	began := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(callSeq.Add(1))
			_, err := e.End(ctx, core.EndRequest{CallID: "bench_end_" + strconv.Itoa(i), CustomerRef: "cust_" + strconv.Itoa((i*7919)%n),
				Intent: "refund_status", Variables: map[string]string{"summary": "asked about the refund", "channel": "chat"}})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(began).Seconds(), "ends/s")
}

// BenchmarkStatsPass is one pass of the statistics job (the last day's
// figures) over the preloaded store: from every record, the first paced
// pass that builds the statistics index (tally.go) at full speed, and a
// pass from the index.
func BenchmarkStatsPass(b *testing.B) {
	n := benchSizes()[0]
	bs := openBench(b, n)
	e := core.New(core.Options{Store: bs.db, Now: func() time.Time { return bs.now }})
	ctx := context.Background()
	from, to := bs.now.Add(-24*time.Hour), bs.now.Add(time.Minute)
	b.Run("records", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := e.StatsFromRecords(ctx, from, to, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
	// the first paced pass over a store without the index builds it
	b.Run("backfill", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			if err := bs.db.DropStatsIndex(); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if _, err := e.BackgroundStats(ctx, from, to, 0, 1); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n), "customers")
	})
	b.Run("index", func(b *testing.B) {
		b.ReportAllocs()
		var s *core.Stats
		for b.Loop() {
			var err error
			if s, err = e.Stats(ctx, from, to, 0); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(s.TotalContacts), "contacts")
	})
}
