package store

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// BenchmarkEachCallStart is the cost per record of the statistics job's
// scan of every call record: 50,000 calls of about the size the
// million-customer load writes, read in paced chunks. It prints
// ns/record and allocations per record.
func BenchmarkEachCallStart(b *testing.B) {
	db := benchCalls(b)
	b.ResetTimer()
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		if err := db.EachCallStartPaced(func() error { return nil }, func(time.Time, []byte) error { n++; return nil }); err != nil {
			b.Fatal(err)
		}
		if n != benchCallCount {
			b.Fatalf("scanned %d calls, not %d", n, benchCallCount)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchCallCount), "ns/record")
}

// BenchmarkSweepScan is the periodic sweep over the same calls when none
// has expired, its usual case: the cost per call record in the store. It
// reads the expiry index's due keys (none); BenchmarkSweepScanUnindexed is
// the sweep of a store without the index, which reads every record (and
// writes its index keys).
func BenchmarkSweepScan(b *testing.B) {
	db := benchCalls(b)
	benchSweep(b, func(now time.Time) (int, error) { return db.SweepPaced(now, func() error { return nil }) })
}

func BenchmarkSweepScanUnindexed(b *testing.B) {
	db := benchCalls(b)
	benchSweep(b, func(now time.Time) (int, error) { return db.sweepAll(now, func() error { return nil }) })
}

func benchSweep(b *testing.B, sweep func(time.Time) (int, error)) {
	now := benchStart.Add(24 * time.Hour)
	b.ResetTimer()
	b.ReportAllocs()
	for b.Loop() {
		if n, err := sweep(now); err != nil || n != 0 {
			b.Fatalf("the sweep deleted %d: %v", n, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchCallCount), "ns/record")
}

const benchCallCount = 50_000

var benchStart = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

func benchCalls(b *testing.B) *DB {
	db, err := Open(Options{Dir: b.TempDir(), MinFreeBytes: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	base := benchStart
	result := json.RawMessage(`{"customer_ref":"cust_000000","confidence":0.93,"status":"ended","intent":"billing"}`)
	for c := 0; c < benchCallCount; c += 500 {
		err := db.Update(func(tx *Txn) error {
			for i := c; i < c+500; i++ {
				err := tx.PutCall(Call{ID: fmt.Sprintf("call_%08d", i), CustomerRef: fmt.Sprintf("cust_%06d", i/3),
					Channel: "voice", StartedAt: base, DNIS: "+18005550100", Ended: true, EndedAt: base.Add(time.Minute),
					StartFingerprint: "f3a9c0d2e1b4", EndFingerprint: "0b1c2d3e4f5a", EndResult: result,
					ExpiresAt: base.Add(30 * 24 * time.Hour)})
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return db
}
