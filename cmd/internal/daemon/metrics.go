package daemon

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/core/redact"
	"github.com/sticky-cc/sticky/core/store"
)

// metrics is the process's Prometheus registry; it hears the engine as its
// Observer and wraps the screen-pop publisher.
type metrics struct {
	reg       *prometheus.Registry
	starts    *prometheus.CounterVec
	ends      *prometheus.CounterVec
	errors    *prometheus.CounterVec
	resolve   prometheus.Histogram
	endTime   prometheus.Histogram
	popsOK    prometheus.Counter
	popsError prometheus.Counter
	pbxEvents *prometheus.CounterVec
	reconnect prometheus.Counter
	redacted  *prometheus.CounterVec

	mu     sync.Mutex
	status func() (bool, string)
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.starts = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sticky_starts_total",
		Help: "Call starts answered, by identity level and recommendation."}, []string{"level", "recommendation"})
	m.ends = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sticky_ends_total",
		Help: "Interactions saved, by channel."}, []string{"channel"})
	m.errors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sticky_errors_total",
		Help: "Failed operations, by operation and kind."}, []string{"op", "kind"})
	m.resolve = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sticky_resolve_seconds",
		Help: "Time to resolve a caller and read their context (engine Start).", Buckets: prometheus.ExponentialBuckets(25e-6, 2, 14)})
	m.endTime = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sticky_end_seconds",
		Help: "Time to save an interaction durably (engine End).", Buckets: prometheus.ExponentialBuckets(50e-6, 2, 14)})
	m.popsOK = prometheus.NewCounter(prometheus.CounterOpts{Name: "sticky_pops_published_total", Help: "Screen-pops handed to NATS."})
	m.popsError = prometheus.NewCounter(prometheus.CounterOpts{Name: "sticky_pop_errors_total", Help: "Screen-pops that could not be published."})
	m.pbxEvents = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sticky_events_total",
		Help: "Noteworthy events of the PBX bridge and the screen-pops: resolve_timeout, resolve_error, malformed_event, end_error, pop_retry, nats_disconnected, wrapup_saved, ..."}, []string{"event"})
	m.reconnect = prometheus.NewCounter(prometheus.CounterOpts{Name: "sticky_pbx_reconnects_total", Help: "Times the PBX connection was re-established."})
	m.redacted = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sticky_redactions_total",
		Help: "What was redacted from the free text of ends before it was stored, by kind: card, cvv, expiry, ssn, iban, pattern."}, []string{"kind"})
	for _, k := range redact.Kinds() {
		m.redacted.WithLabelValues(k.String()) // every kind shows, at 0 until it happens
	}
	pbx := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sticky_pbx_connected", Help: "1 while the PBX connection is up."}, func() float64 {
		m.mu.Lock()
		st := m.status
		m.mu.Unlock()
		if st == nil {
			return 0
		}
		if ok, _ := st(); ok {
			return 1
		}
		return 0
	})
	m.reg.MustRegister(m.starts, m.ends, m.errors, m.resolve, m.endTime, m.popsOK, m.popsError, m.pbxEvents, m.reconnect, m.redacted, pbx,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Register adds collectors from the PBX or pop components.
func (m *metrics) Register(c prometheus.Collector) { m.reg.MustRegister(c) }

// count is the bridges' and screen-pops' counter hook.
func (m *metrics) count(event string) {
	if event == "reconnect" {
		m.reconnect.Inc()
		return
	}
	m.pbxEvents.WithLabelValues(event).Inc()
}

func (m *metrics) pbxStatus(f func() (bool, string)) {
	m.mu.Lock()
	m.status = f
	m.mu.Unlock()
}

func kind(err error) string {
	switch core.ErrorCode(err) {
	case core.CodeInvalid:
		return "invalid"
	case core.CodeConflict:
		return "conflict"
	case core.CodeNotFound:
		return "not_found"
	case core.CodeUnavailable:
		return "unavailable"
	}
	return "internal"
}

func (m *metrics) Started(res *core.StartResult, took time.Duration, err error) {
	if err != nil {
		m.errors.WithLabelValues("start", kind(err)).Inc()
		return
	}
	m.resolve.Observe(took.Seconds())
	m.starts.WithLabelValues(res.Identity.Level, res.Identity.Recommendation).Inc()
}

func (m *metrics) Ended(res *core.EndResult, channel string, took time.Duration, err error) {
	if err != nil {
		m.errors.WithLabelValues("end", kind(err)).Inc()
		return
	}
	m.endTime.Observe(took.Seconds())
	m.ends.WithLabelValues(channel).Inc()
}

// Redacted counts what the engine redacted (core.RedactionObserver).
func (m *metrics) Redacted(c redact.Counts) {
	for _, k := range redact.Kinds() {
		if c[k] > 0 {
			m.redacted.WithLabelValues(k.String()).Add(float64(c[k]))
		}
	}
}

var _ core.RedactionObserver = (*metrics)(nil)

type countingPopper struct {
	m    *metrics
	next core.Popper
}

func (p countingPopper) Pop(ctx context.Context, pop core.Pop) error {
	if p.next == nil {
		return nil
	}
	err := p.next.Pop(ctx, pop)
	if err != nil {
		p.m.popsError.Inc()
	} else {
		p.m.popsOK.Inc()
	}
	return err
}

func (m *metrics) pops(next core.Popper) core.Popper { return countingPopper{m, next} }

// accessDropped exports the access-log records dropped because the queue
// was full: each one is an access that the log does not show.
func accessDropped(e *core.Engine) prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "sticky_access_dropped_total",
		Help: "Access-log records dropped because the queue to the writer was full (or the writer had stopped)."},
		func() float64 { return float64(e.AccessDropped()) })
}

// storeCollector exports the store's own health (store.Health) at every
// scrape, so an operator sees compaction debt building (L0 tables nearing
// the stall threshold, level scores above 1) before writes stall.
type storeCollector struct {
	health func() store.Health

	l0, l0Stall, lsm, vlog, compacting, hitRatio, hits, misses, diskFree *prometheus.Desc
	levelTables, levelBytes, levelScore                                  *prometheus.Desc
}

func newStoreCollector(health func() store.Health) *storeCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("sticky_store_"+name, help, labels, nil)
	}
	return &storeCollector{health: health,
		l0:          d("l0_tables", "Tables on LSM level 0 (flushed memtables not yet compacted); writes stall at sticky_store_l0_stall_tables."),
		l0Stall:     d("l0_stall_tables", "Level-0 table count at which Badger stops flushing memtables, so writes wait."),
		lsm:         d("lsm_bytes", "Size of every LSM table on every level."),
		vlog:        d("vlog_bytes", "Disk space the value-log files use."),
		compacting:  d("compactions_running", "Compaction work in progress, as the number of tables the running compactions are merging (Badger counts tables, not compactions); 0 when none runs."),
		hitRatio:    d("block_cache_hit_ratio", "Block-cache hits over lookups since the store opened (rate the _hits_total and _misses_total counters for a recent figure)."),
		hits:        d("block_cache_hits_total", "Block-cache lookups that hit."),
		misses:      d("block_cache_misses_total", "Block-cache lookups that missed (read from the table files)."),
		diskFree:    d("disk_free_bytes", "Free space on the data directory's file system; writes are refused below STICKY_MIN_FREE_MIB."),
		levelTables: d("level_tables", "Tables on each LSM level.", "level"),
		levelBytes:  d("level_bytes", "Size of each LSM level.", "level"),
		levelScore:  d("level_score", "How far each level is over its target size; Badger compacts levels above 1.", "level"),
	}
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.l0, c.l0Stall, c.lsm, c.vlog, c.compacting, c.hitRatio, c.hits, c.misses, c.diskFree, c.levelTables, c.levelBytes, c.levelScore} {
		ch <- d
	}
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	h := c.health()
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	g(c.l0, float64(h.L0Tables))
	g(c.l0Stall, float64(h.L0StallTables))
	g(c.lsm, float64(h.LSMBytes))
	g(c.vlog, float64(h.VlogBytes))
	g(c.compacting, float64(h.CompactingTables))
	g(c.hitRatio, h.BlockCacheHitRatio)
	ch <- prometheus.MustNewConstMetric(c.hits, prometheus.CounterValue, float64(h.BlockCacheHits))
	ch <- prometheus.MustNewConstMetric(c.misses, prometheus.CounterValue, float64(h.BlockCacheMisses))
	if h.DiskFreeBytes >= 0 {
		g(c.diskFree, float64(h.DiskFreeBytes))
	}
	for _, l := range h.Levels {
		lv := strconv.Itoa(l.Level)
		g(c.levelTables, float64(l.Tables), lv)
		g(c.levelBytes, float64(l.Bytes), lv)
		g(c.levelScore, l.Score, lv)
	}
}
