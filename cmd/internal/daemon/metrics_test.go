package daemon

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sticky-cc/sticky/core/store"
)

// The store's health reaches /metrics under the names the operator's
// dashboard uses, read afresh at every scrape.
func TestStoreHealthMetrics(t *testing.T) {
	h := store.Health{
		Levels:   []store.LevelHealth{{Level: 0, Tables: 7, Bytes: 7 << 20}, {Level: 1, Tables: 3, Bytes: 9 << 20, TargetBytes: 10 << 20, Score: 0.9}},
		L0Tables: 7, L0StallTables: 15, LSMBytes: 16 << 20, VlogBytes: 4096, CompactingTables: 10,
		BlockCacheHits: 30, BlockCacheMisses: 10, BlockCacheHitRatio: 0.75, DiskFreeBytes: 1 << 30,
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(newStoreCollector(func() store.Health { return h }))
	for name, v := range map[string]float64{
		"sticky_store_l0_tables": 7, "sticky_store_lsm_bytes": 16 << 20, "sticky_store_vlog_bytes": 4096, "sticky_store_compactions_running": 10, "sticky_store_block_cache_hit_ratio": 0.75,
		"sticky_store_block_cache_hits_total": 30, "sticky_store_block_cache_misses_total": 10,
		"sticky_store_disk_free_bytes": 1 << 30, "sticky_store_l0_stall_tables": 15,
	} {
		if got := gathered(t, reg, name, ""); got != v {
			t.Errorf("%s = %v, want %v", name, got, v)
		}
	}
	if got := gathered(t, reg, "sticky_store_level_bytes", "1"); got != 9<<20 {
		t.Errorf("level 1 bytes %v", got)
	}
	if got := gathered(t, reg, "sticky_store_level_tables", "0"); got != 7 {
		t.Errorf("level 0 tables %v", got)
	}
	// a scrape reads the store again
	h.L0Tables = 12
	if got := gathered(t, reg, "sticky_store_l0_tables", ""); got != 12 {
		t.Errorf("second scrape: %v", got)
	}
	// in memory there is no disk to report
	h.DiskFreeBytes = -1
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "sticky_store_disk_free_bytes" {
			t.Errorf("disk free exported for an in-memory store")
		}
	}
}

// gathered is the value of one metric, of the series whose level label
// is level ("" for none).
func gathered(t *testing.T, reg *prometheus.Registry, name, level string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := ""
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "level" {
					l = lp.GetValue()
				}
			}
			if l != level {
				continue
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("%s{level=%q} not gathered", name, level)
	return 0
}
