package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Scrape is one reading of a bridge's /metrics: each series ("name" or
// `name{label="v"}`, as printed) and its value.
type Scrape map[string]float64

// scrapeMetrics reads base/metrics in Prometheus's text format.
func scrapeMetrics(ctx context.Context, client *http.Client, base string) (Scrape, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: status %d", resp.StatusCode)
	}
	s := Scrape{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			s[line[:i]] = v
		}
	}
	return s, sc.Err()
}

// StoreFigures are the store's and the process's figures from one scrape.
type StoreFigures struct {
	OK                                   bool // the bridge exported them
	L0Tables, L0Stall                    int
	LSMBytes, VlogBytes, DiskFree        float64
	Compacting                           float64
	CacheHits, CacheMisses, CacheRatio   float64
	Levels                               []LevelFigure // levels holding a table
	HeapInuse, GCCycles, GCPauseSecs, TS float64
}

// LevelFigure is one LSM level.
type LevelFigure struct {
	Level  int
	Tables int
	Bytes  float64
	Score  float64
}

func (s Scrape) store() StoreFigures {
	_, ok := s["sticky_store_l0_tables"]
	f := StoreFigures{OK: ok,
		L0Tables: int(s["sticky_store_l0_tables"]), L0Stall: int(s["sticky_store_l0_stall_tables"]),
		LSMBytes: s["sticky_store_lsm_bytes"], VlogBytes: s["sticky_store_vlog_bytes"], DiskFree: s["sticky_store_disk_free_bytes"],
		Compacting: s["sticky_store_compactions_running"],
		CacheHits:  s["sticky_store_block_cache_hits_total"], CacheMisses: s["sticky_store_block_cache_misses_total"],
		CacheRatio: s["sticky_store_block_cache_hit_ratio"],
		HeapInuse:  s["go_memstats_heap_inuse_bytes"], GCCycles: s["go_gc_duration_seconds_count"], GCPauseSecs: s["go_gc_duration_seconds_sum"],
	}
	for k, v := range s {
		lv, ok := strings.CutPrefix(k, `sticky_store_level_tables{level="`)
		if !ok || v == 0 {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSuffix(lv, `"}`))
		if err != nil {
			continue
		}
		f.Levels = append(f.Levels, LevelFigure{Level: n, Tables: int(v),
			Bytes: s[fmt.Sprintf(`sticky_store_level_bytes{level="%d"}`, n)], Score: s[fmt.Sprintf(`sticky_store_level_score{level="%d"}`, n)]})
	}
	sort.Slice(f.Levels, func(i, j int) bool { return f.Levels[i].Level < f.Levels[j].Level })
	return f
}

// levels prints the levels holding tables: "L0 3t 12MiB, L5 40t 80MiB (score 1.2)".
func (f StoreFigures) levels() string {
	var parts []string
	for _, l := range f.Levels {
		p := fmt.Sprintf("L%d %dt %s", l.Level, l.Tables, bytesIEC(l.Bytes))
		if l.Score >= 1 {
			p += fmt.Sprintf(" (score %.1f)", l.Score)
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return "empty"
	}
	return strings.Join(parts, ", ")
}

// hitRatio is the block cache's hit ratio between two scrapes (-1: no lookups).
func hitRatio(before, after StoreFigures) float64 {
	h, m := after.CacheHits-before.CacheHits, after.CacheMisses-before.CacheMisses
	if h+m <= 0 {
		return -1
	}
	return h / (h + m)
}

func bytesIEC(b float64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.2fGiB", b/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.0fMiB", b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.0fKiB", b/(1<<10))
	}
	return fmt.Sprintf("%.0fB", b)
}
