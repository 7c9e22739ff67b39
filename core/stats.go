package core

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/sticky-cc/sticky/core/store"
)

// Stats are the cross-channel figures a contact center steers by, over a
// window of time.
type Stats struct {
	From Timestamp `json:"from"`
	To   Timestamp `json:"to"`
	// Contacts counts interactions that ended in the window, per channel.
	Contacts      map[string]int `json:"contacts"`
	TotalContacts int            `json:"total_contacts"`
	// ChannelSwitches counts contacts on another channel than the
	// customer's previous contact, when that was within SwitchWindowDays.
	ChannelSwitches  int            `json:"channel_switches"`
	SwitchesByPath   map[string]int `json:"switches_by_path"` // "chat>phone"
	SwitchWindowDays int            `json:"switch_window_days"`
	// RepeatContacts counts contacts that raised an intent still unresolved
	// from an earlier contact; the rate is over contacts with an intent.
	RepeatContacts    int     `json:"repeat_contacts"`
	RepeatContactRate float64 `json:"repeat_contact_rate"`
	// SwitchToResolution is the time from the first channel switch on an
	// open intent to its resolution, for intents resolved in the window.
	SwitchToResolution Durations `json:"switch_to_resolution"`
	// IdentityLevels and Recommendations are counted at call start.
	IdentityLevels  map[string]int `json:"identity_levels"`
	Recommendations map[string]int `json:"recommendations"`
	CallStarts      int            `json:"call_starts"`
}

// Durations summarises a set of durations in seconds.
type Durations struct {
	Count         int     `json:"count"`
	MedianSeconds float64 `json:"median_seconds"`
	P90Seconds    float64 `json:"p90_seconds"`
}

func summarize(d []time.Duration) Durations {
	if len(d) == 0 {
		return Durations{}
	}
	slices.Sort(d)
	at := func(p float64) float64 { return d[min(len(d)-1, int(float64(len(d))*p))].Seconds() }
	return Durations{Count: len(d), MedianSeconds: at(0.5), P90Seconds: at(0.9)}
}

// Stats computes the figures for interactions that ended, and calls that
// started, in [from, to). switchWindow bounds how far back the previous
// contact may be for a channel change to count as a switch (default 7 days).
// It reads the whole store in one snapshot, as fast as it can: callers
// should cache the answer, and a periodic job should use BackgroundStats.
func (e *Engine) Stats(ctx context.Context, from, to time.Time, switchWindow time.Duration) (*Stats, error) {
	return e.stats(ctx, from, to, switchWindow, nil)
}

// BackgroundStats is Stats for a job that recomputes the figures while
// calls ring (issue 17): it reads the store in chunks and, after each,
// rests long enough that the scan takes about duty of one core (0 < duty
// <= 1; 1 reads in chunks without resting). At a million customers an unpaced scan took a core
// for tens of seconds every few minutes and was the starts' worst tail.
// The figures are those of the store as the scan passed each record.
func (e *Engine) BackgroundStats(ctx context.Context, from, to time.Time, switchWindow time.Duration, duty float64) (*Stats, error) {
	if !(duty > 0 && duty <= 1) {
		return nil, invalid("invalid request", Issue{Path: []any{"duty"}, Message: "must be in (0, 1]"})
	}
	return e.stats(ctx, from, to, switchWindow, dutyPace(ctx, duty))
}

// dutyPace returns a pace that sleeps after each chunk for as long as the
// chunk took times (1-duty)/duty. Wall time is at least the CPU time a
// chunk used, so the scan's share of a core is at most about duty.
func dutyPace(ctx context.Context, duty float64) store.Pace {
	last := time.Now()
	return func() error {
		rest := time.Duration(float64(time.Since(last)) * (1 - duty) / duty)
		if rest > 0 {
			t := time.NewTimer(rest)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		} else if err := ctx.Err(); err != nil {
			return err
		}
		last = time.Now()
		return nil
	}
}

func (e *Engine) stats(ctx context.Context, from, to time.Time, switchWindow time.Duration, pace store.Pace) (*Stats, error) {
	if !to.After(from) {
		return nil, invalid("invalid request", Issue{Path: []any{"to"}, Message: "must be after from"})
	}
	if switchWindow <= 0 {
		switchWindow = defaultSwitchWindow
	}
	if switchWindow == defaultSwitchWindow {
		// a paced pass builds the index when the store has none; Stats
		// (unpaced) reads the records until one has
		ok := pace != nil
		if ok {
			if err := e.indexStats(ctx, pace); err != nil {
				return nil, err
			}
		} else {
			var err error
			if ok, err = e.statsIndexed(); err != nil {
				return nil, storeErr(err)
			}
		}
		if ok {
			return e.statsFromIndex(from, to, pace)
		}
	}
	return e.statsFromRecords(ctx, from, to, switchWindow, pace)
}

// tallied adds up the figures of Stats from what each contact and call
// start in the window counts.
type tallied struct {
	s            *Stats
	withIntent   int
	toResolution []time.Duration
}

func newTallied(from, to time.Time, switchWindow time.Duration) *tallied {
	return &tallied{s: &Stats{
		From: TS(from), To: TS(to), Contacts: map[string]int{}, SwitchesByPath: map[string]int{},
		SwitchWindowDays: int(switchWindow / (24 * time.Hour)),
		IdentityLevels:   map[string]int{}, Recommendations: map[string]int{},
	}}
}

func (a *tallied) contact(cl contactClass) {
	s := a.s
	s.Contacts[cl.Channel]++
	s.TotalContacts++
	if cl.From != "" {
		s.ChannelSwitches++
		s.SwitchesByPath[cl.From+">"+cl.Channel]++
	}
	if cl.Intent {
		a.withIntent++
		if cl.Repeat {
			s.RepeatContacts++
		}
	}
	if cl.Resolved {
		a.toResolution = append(a.toResolution, cl.ToResolution)
	}
}

func (a *tallied) start(st startSummary) {
	a.s.CallStarts++
	a.s.IdentityLevels[st.Level]++
	a.s.Recommendations[st.Recommendation]++
}

func (a *tallied) done() *Stats {
	if a.withIntent > 0 {
		a.s.RepeatContactRate = round3(float64(a.s.RepeatContacts) / float64(a.withIntent))
	}
	a.s.SwitchToResolution = summarize(a.toResolution)
	return a.s
}

// statsFromIndex reads the figures from the statistics index: one key per
// contact and call start in the window.
func (e *Engine) statsFromIndex(from, to time.Time, pace store.Pace) (*Stats, error) {
	a := newTallied(from, to, defaultSwitchWindow)
	err := e.db.EachContactPaced(from, to, pace, func(b []byte) error {
		var cl contactClass
		if err := cl.decode(b); err != nil {
			return fmt.Errorf("%w: statistics index: %v", store.ErrUnavailable, err)
		}
		a.contact(cl)
		return nil
	})
	if err == nil {
		err = e.db.EachCallStartIndexedPaced(from, to, pace, func(b []byte) error {
			var st startSummary
			if err := st.decode(b); err != nil {
				return fmt.Errorf("%w: statistics index: %v", store.ErrUnavailable, err)
			}
			a.start(st)
			return nil
		})
	}
	if err != nil {
		return nil, storeErr(err)
	}
	return a.done(), nil
}

// statsFromRecords computes the figures from the records themselves: every
// interaction and call in the store.
func (e *Engine) statsFromRecords(ctx context.Context, from, to time.Time, switchWindow time.Duration, pace store.Pace) (*Stats, error) {
	a := newTallied(from, to, switchWindow)
	in := func(t time.Time) bool { return !t.Before(from) && t.Before(to) }
	// walk one customer's history
	walkAll := func(hist []store.Interaction) {
		oldestFirst(hist)
		var w walk
		for _, h := range hist {
			cl := w.step(h, switchWindow, e.opts.IntentWindow)
			if in(h.EndedAt) {
				a.contact(cl)
			}
		}
	}
	var cur string
	var hist []store.Interaction
	err := e.db.EachInteractionPaced(pace, func(ref string, h store.Interaction) error {
		if ref != cur {
			if err := ctx.Err(); err != nil {
				return err
			}
			walkAll(hist)
			cur, hist = ref, hist[:0]
		}
		if h.EndedAt.Before(to) {
			hist = append(hist, h)
		}
		return nil
	})
	if err != nil {
		return nil, storeErr(err)
	}
	walkAll(hist)
	err = e.db.EachCallStartPaced(pace, func(startedAt time.Time, startIdentity []byte) error {
		if !in(startedAt) {
			return nil
		}
		if st, ok := summarizeStart(startIdentity); ok {
			a.start(st)
		}
		return nil
	})
	if err != nil {
		return nil, storeErr(err)
	}
	return a.done(), nil
}
