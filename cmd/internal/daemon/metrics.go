package daemon

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/core/redact"
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
