package daemon

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sticky-cc/sticky/core"
)

// statsCollector exports the cross-channel figures of the last window as
// metrics. They come from a scan of the store, so a goroutine recomputes
// them periodically and scrapes read the latest result.
type statsCollector struct {
	engine *core.Engine
	window time.Duration
	every  time.Duration
	log    *slog.Logger

	mu     sync.Mutex
	latest *core.Stats

	contacts, switches, repeats, repeatRate, toResolution, levels, recs *prometheus.Desc
}

func newStatsCollector(e *core.Engine, window, every time.Duration, log *slog.Logger) *statsCollector {
	l := prometheus.Labels{"window": window.String()}
	return &statsCollector{engine: e, window: window, every: every, log: log,
		contacts:     prometheus.NewDesc("sticky_window_contacts", "Contacts that ended in the window, by channel.", []string{"channel"}, l),
		switches:     prometheus.NewDesc("sticky_window_channel_switches", "Contacts on another channel than the customer's previous one.", []string{"path"}, l),
		repeats:      prometheus.NewDesc("sticky_window_repeat_contacts", "Contacts that raised an intent still unresolved.", nil, l),
		repeatRate:   prometheus.NewDesc("sticky_window_repeat_contact_rate", "Repeat contacts over contacts with an intent.", nil, l),
		toResolution: prometheus.NewDesc("sticky_window_switch_to_resolution_seconds", "Time from a channel switch to the intent's resolution.", []string{"quantile"}, l),
		levels:       prometheus.NewDesc("sticky_window_start_identity_level", "Call starts by identity level.", []string{"level"}, l),
		recs:         prometheus.NewDesc("sticky_window_start_recommendation", "Call starts by recommendation.", []string{"recommendation"}, l),
	}
}

func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.contacts, c.switches, c.repeats, c.repeatRate, c.toResolution, c.levels, c.recs} {
		ch <- d
	}
}

func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	s := c.latest
	c.mu.Unlock()
	if s == nil {
		return
	}
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for k, v := range s.Contacts {
		g(c.contacts, float64(v), k)
	}
	for k, v := range s.SwitchesByPath {
		g(c.switches, float64(v), k)
	}
	g(c.repeats, float64(s.RepeatContacts))
	g(c.repeatRate, s.RepeatContactRate)
	g(c.toResolution, s.SwitchToResolution.MedianSeconds, "0.5")
	g(c.toResolution, s.SwitchToResolution.P90Seconds, "0.9")
	for k, v := range s.IdentityLevels {
		g(c.levels, float64(v), k)
	}
	for k, v := range s.Recommendations {
		g(c.recs, float64(v), k)
	}
}

// statsDuty is the share of one core the periodic scan may take (issue
// 17): at a million customers on two cores, an unpaced scan every five
// minutes took a core for tens of seconds and pushed the starts' p99 into
// seconds. Paced, the same scan takes about ten times as long.
const statsDuty = 0.1

func (c *statsCollector) run(ctx context.Context) error {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		now := time.Now().UTC()
		began := time.Now()
		s, err := c.engine.BackgroundStats(ctx, now.Add(-c.window), now, 0, statsDuty)
		if err != nil {
			if ctx.Err() == nil {
				c.log.Warn("computing statistics failed", "err", err)
			}
		} else {
			c.mu.Lock()
			c.latest = s
			c.mu.Unlock()
			c.log.Debug("statistics computed", "took", time.Since(began), "contacts", s.TotalContacts)
		}
		t.Reset(c.every)
	}
}
