package core

import (
	"context"
	"encoding/json"
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
		switchWindow = 7 * 24 * time.Hour
	}
	s := &Stats{
		From: TS(from), To: TS(to), Contacts: map[string]int{}, SwitchesByPath: map[string]int{},
		SwitchWindowDays: int(switchWindow / (24 * time.Hour)),
		IdentityLevels:   map[string]int{}, Recommendations: map[string]int{},
	}
	in := func(t time.Time) bool { return !t.Before(from) && t.Before(to) }
	var toResolution []time.Duration
	withIntent := 0

	type intentState struct {
		open     bool
		last     time.Time
		switched time.Time
	}
	// walk one customer's history, oldest first
	walk := func(hist []store.Interaction) {
		slices.SortFunc(hist, func(a, b store.Interaction) int { return a.EndedAt.Compare(b.EndedAt) })
		intents := map[string]*intentState{}
		for i, h := range hist {
			counted := in(h.EndedAt)
			switched := i > 0 && hist[i-1].Channel != h.Channel && h.EndedAt.Sub(hist[i-1].EndedAt) <= switchWindow
			if counted {
				s.Contacts[h.Channel]++
				s.TotalContacts++
				if switched {
					s.ChannelSwitches++
					s.SwitchesByPath[hist[i-1].Channel+">"+h.Channel]++
				}
			}
			if h.Intent == "" {
				continue
			}
			st := intents[h.Intent]
			if st == nil {
				st = &intentState{}
				intents[h.Intent] = st
			}
			live := st.open && h.EndedAt.Sub(st.last) <= e.opts.IntentWindow
			if counted {
				withIntent++
				if live {
					s.RepeatContacts++
				}
			}
			if !live {
				st.switched = time.Time{}
			}
			if switched && st.switched.IsZero() && (live || h.IntentStatus != StatusResolved) {
				st.switched = h.EndedAt
			}
			if h.IntentStatus == StatusResolved {
				if counted && !st.switched.IsZero() {
					toResolution = append(toResolution, h.EndedAt.Sub(st.switched))
				}
				st.open, st.switched = false, time.Time{}
			} else {
				st.open = true
			}
			st.last = h.EndedAt
		}
	}
	var cur string
	var hist []store.Interaction
	err := e.db.EachInteractionPaced(pace, func(ref string, h store.Interaction) error {
		if ref != cur {
			if err := ctx.Err(); err != nil {
				return err
			}
			walk(hist)
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
	walk(hist)
	err = e.db.EachCallStartPaced(pace, func(startedAt time.Time, startIdentity []byte) error {
		if !in(startedAt) || len(startIdentity) == 0 {
			return nil
		}
		var id struct{ Level, Recommendation string }
		if json.Unmarshal(startIdentity, &id) == nil && id.Level != "" {
			s.CallStarts++
			s.IdentityLevels[id.Level]++
			s.Recommendations[id.Recommendation]++
		}
		return nil
	})
	if err != nil {
		return nil, storeErr(err)
	}
	if withIntent > 0 {
		s.RepeatContactRate = round3(float64(s.RepeatContacts) / float64(withIntent))
	}
	s.SwitchToResolution = summarize(toResolution)
	return s, nil
}
