package core_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/sticky-cc/sticky/core"
)

func TestStats(t *testing.T) {
	ctx := context.Background()
	e, clk, _ := newEngine(t, monday)
	end := func(id, ref, channel, intent, status string, after time.Duration) {
		t.Helper()
		clk.Add(after)
		if _, err := e.End(ctx, core.EndRequest{CallID: id, CustomerRef: ref, Channel: channel, Intent: intent, IntentStatus: status}); err != nil {
			t.Fatal(err)
		}
	}
	// customer a: chat (open) -> email (open, a switch, a repeat) -> phone (resolved, a switch, a repeat)
	end("a1", "cust_a", "chat", "refund", "open", 0)
	end("a2", "cust_a", "email", "refund", "open", 24*time.Hour)
	end("a3", "cust_a", "phone", "refund", "resolved", 24*time.Hour)
	// customer b: two chats about different things, no switch, no repeat
	end("b1", "cust_b", "chat", "billing", "open", time.Hour)
	end("b2", "cust_b", "chat", "address", "resolved", time.Hour)
	// a start with a known caller and one with an unknown one
	if _, err := e.Start(ctx, core.StartRequest{CallID: "s1", Hints: core.Hints{CustomerRef: "cust_a"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Start(ctx, core.StartRequest{CallID: "s2", Hints: core.Hints{ANI: "+14155550199"}}); err != nil {
		t.Fatal(err)
	}
	s, err := e.Stats(ctx, monday.Add(-time.Hour), clk.Now().Add(time.Hour), 0)
	if err != nil {
		t.Fatal(err)
	}
	if s.TotalContacts != 5 || s.Contacts["chat"] != 3 || s.Contacts["email"] != 1 || s.Contacts["phone"] != 1 {
		t.Errorf("contacts %+v", s.Contacts)
	}
	if s.ChannelSwitches != 2 || s.SwitchesByPath["chat>email"] != 1 || s.SwitchesByPath["email>phone"] != 1 {
		t.Errorf("switches %d %+v", s.ChannelSwitches, s.SwitchesByPath)
	}
	if s.RepeatContacts != 2 || s.RepeatContactRate != 0.4 {
		t.Errorf("repeats %d rate %v", s.RepeatContacts, s.RepeatContactRate)
	}
	if s.SwitchToResolution.Count != 1 || s.SwitchToResolution.MedianSeconds != (24*time.Hour).Seconds() {
		t.Errorf("switch to resolution %+v", s.SwitchToResolution)
	}
	if s.CallStarts != 2 || s.IdentityLevels["very_high"] != 1 || s.IdentityLevels["low"] != 1 || s.Recommendations["reuse"] != 1 || s.Recommendations["ignore"] != 1 {
		t.Errorf("identity at start %d %+v %+v", s.CallStarts, s.IdentityLevels, s.Recommendations)
	}
	// a window that holds only the last day
	s, err = e.Stats(ctx, clk.Now().Add(-3*time.Hour), clk.Now().Add(time.Hour), 0)
	if err != nil {
		t.Fatal(err)
	}
	if s.TotalContacts != 3 || s.ChannelSwitches != 1 || s.RepeatContacts != 1 {
		t.Errorf("last day: %+v", s)
	}
}

// The periodic job's paced scan (BackgroundStats) reads the store in
// chunks of store.ScanChunk records; on a store of several chunks its
// figures must be those of the one-snapshot Stats.
func TestBackgroundStatsMatchStatsOverManyChunks(t *testing.T) {
	ctx := context.Background()
	e, clk, _ := newEngine(t, monday)
	channels := []string{"chat", "email", "phone"}
	statuses := []string{"open", "open", "resolved"}
	// 900 customers with three contacts each (2,700 interactions) and
	// 1,200 started calls: chunk edges fall inside customers' histories
	for c := range 900 {
		ref := fmt.Sprintf("cust_%04d", c)
		for i := range 3 {
			clk.Add(time.Minute)
			ch := channels[(c+i)%3]
			if _, err := e.End(ctx, core.EndRequest{CallID: fmt.Sprintf("e%d_%d", c, i), CustomerRef: ref, Channel: ch,
				Intent: "refund", IntentStatus: statuses[i]}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range 1200 {
		if _, err := e.Start(ctx, core.StartRequest{CallID: fmt.Sprintf("s%d", i), Hints: core.Hints{CustomerRef: fmt.Sprintf("cust_%04d", i%900)}}); err != nil {
			t.Fatal(err)
		}
	}
	from, to := monday.Add(-time.Hour), clk.Now().Add(time.Hour)
	want, err := e.Stats(ctx, from, to, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want.TotalContacts != 2700 || want.CallStarts != 1200 || want.ChannelSwitches == 0 || want.RepeatContacts == 0 {
		t.Fatalf("the store is not what the test means to scan: %+v", want)
	}
	got, err := e.BackgroundStats(ctx, from, to, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("paced figures differ:\n got %+v\nwant %+v", got, want)
	}
	for _, duty := range []float64{0, -0.5, 1.5} {
		if _, err := e.BackgroundStats(ctx, from, to, 0, duty); core.ErrorCode(err) != core.CodeInvalid {
			t.Errorf("duty %v: %v, want invalid", duty, err)
		}
	}
	// a cancelled job returns no figures
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := e.BackgroundStats(cctx, from, to, 0, 0.5); err == nil {
		t.Error("a cancelled scan returned figures")
	}
}
