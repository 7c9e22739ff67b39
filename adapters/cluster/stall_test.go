package cluster

import (
	"testing"
	"time"
)

// The consumer is replaced only when the stream holds entries the node
// has not applied and nothing was applied for followStall; progress, or
// being level with the stream, starts the wait again.
func TestStallWatch(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	var w stallWatch
	steps := []struct {
		applied, last uint64
		at            time.Duration
		want          bool
	}{
		{0, 600, 0, false},                                     // first look
		{0, 600, followStall - time.Second, false},             // not long enough
		{0, 600, followStall, true},                            // stuck at 0 of 600
		{0, 600, followStall + time.Second, false},             // waits again after a yes
		{0, 600, 2 * followStall, true},                        // still stuck
		{10, 600, 2*followStall + time.Second, false},          // progress
		{10, 600, 3*followStall + 500*time.Millisecond, false}, // less than followStall since
		{10, 600, 3*followStall + time.Second, true},
		{600, 600, 5 * followStall, false},             // level
		{600, 700, 5*followStall + time.Second, false}, // behind, but just now
		{600, 700, 6*followStall + time.Second, true},
	}
	for i, s := range steps {
		if got := w.stalled(s.applied, s.last, at(s.at)); got != s.want {
			t.Fatalf("step %d (applied %d of %d at %v): stalled %v, want %v", i, s.applied, s.last, s.at, got, s.want)
		}
	}
}
