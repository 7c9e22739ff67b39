package core_test

import (
	"context"
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
