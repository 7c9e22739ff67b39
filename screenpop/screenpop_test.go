package screenpop_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sticky-cc/sticky/screenpop"
)

func TestToken(t *testing.T) {
	for in, want := range map[string]string{
		"1001":                   "1001",
		"1714566897.18":          "1714566897_18",
		"PJSIP/1001-0000a":       "PJSIP/1001-0000a",
		"a b\tc":                 "a_b_c",
		"*":                      "_",
		">":                      "_",
		"x.>":                    "x__",
		"":                       "_",
		"$SYS":                   "_SYS",
		"in\x00valid":            "in_valid",
		strings.Repeat("a", 300): strings.Repeat("a", 128),
	} {
		if got := screenpop.Token(in); got != want {
			t.Errorf("Token(%q) = %q, want %q", in, got, want)
		}
	}
	if got := screenpop.AgentSubject("sip.1001"); got != "sticky.screenpop.agent.sip_1001" {
		t.Errorf("AgentSubject = %q", got)
	}
}

// A desktop that connects after the phone started ringing still gets the
// pop, with the call facts and the whole start context.
func TestLateDesktopGetsPopFromStream(t *testing.T) {
	e, clk := newEngine(t, time.Date(2026, 1, 26, 14, 0, 0, 0, time.UTC))
	seedJane(t, e, clk)
	cnt := &counter{n: map[string]int{}}
	svc := startService(t, screenpop.Options{Calls: e, Count: cnt.Count})
	waitReady(t, svc)

	pop := ring(t, e, "call1", "alice")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := svc.Pop(ctx, pop); err != nil {
		t.Fatal(err)
	}

	nc, _ := connectAgent(t, svc, "alice", "alice-secret")
	got := readPops(t, nc, screenpop.AgentSubject("alice"), 1)[0]
	if got.Version != 1 || got.Type != "screenpop" || got.Target != "agent" {
		t.Errorf("envelope = %+v", got)
	}
	if got.Call.CallID != "call1" || got.Call.PBXCallID != "1714566897.call1" || got.Call.Agent != "alice" ||
		got.Call.Queue != "billing" || got.Call.ANI != "+14155551234" || got.Call.DNIS != "8005550100" || got.Call.PBX != "asterisk" {
		t.Errorf("call = %+v", got.Call)
	}
	if got.Customer.Name != "Jane Doe" || got.Customer.Ref != pop.Context.CustomerRef {
		t.Errorf("customer = %+v", got.Customer)
	}
	c := got.Context
	if c == nil || c.CustomerRef != pop.Context.CustomerRef || len(c.History) != 2 || c.History[0].Channel != "email" ||
		c.History[1].Channel != "chat" || len(c.OpenIntents) != 1 || c.OpenIntents[0].AttemptCount != 2 {
		t.Fatalf("context = %+v", c)
	}
	if c.Identity.Level != pop.Context.Identity.Level || c.Identity.Confidence == 0 {
		t.Errorf("identity = %+v", c.Identity)
	}
	// The queue's agents and call followers get their copies too.
	q := readPops(t, nc, screenpop.QueueSubject("billing"), 1)[0]
	if q.Target != "queue" || q.Call.CallID != "call1" {
		t.Errorf("queue copy = %+v", q)
	}
	if cnt.Get("pop_published") != 1 {
		t.Errorf("pop_published = %d", cnt.Get("pop_published"))
	}
}

// The same PBX leg popping the same agent twice (Dial and ChannelStateChange
// both fire) is stored once.
func TestDuplicatePopStoredOnce(t *testing.T) {
	e, clk := newEngine(t, time.Date(2026, 1, 26, 14, 0, 0, 0, time.UTC))
	seedJane(t, e, clk)
	cnt := &counter{n: map[string]int{}}
	svc := startService(t, screenpop.Options{Calls: e, Count: cnt.Count})
	waitReady(t, svc)
	pop := ring(t, e, "call1", "alice")
	pop.Queue = ""
	ctx := context.Background()
	for range 3 {
		if err := svc.Pop(ctx, pop); err != nil {
			t.Fatal(err)
		}
	}
	// A different agent for the same call is a different pop.
	other := pop
	other.Agent = "bob"
	if err := svc.Pop(ctx, other); err != nil {
		t.Fatal(err)
	}

	nc := adminConn(t, svc)
	js, _ := jetstream.New(nc)
	st, err := js.Stream(ctx, screenpop.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(screenpop.SubjectPrefix+".>"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{
		screenpop.AgentSubject("alice"): 1,
		screenpop.AgentSubject("bob"):   1,
		screenpop.CallSubject("call1"):  2,
	}
	if len(info.State.Subjects) != len(want) {
		t.Errorf("subjects = %v, want %v", info.State.Subjects, want)
	}
	for subj, n := range want {
		if info.State.Subjects[subj] != n {
			t.Errorf("%s holds %d pops, want %d (all: %v)", subj, info.State.Subjects[subj], n, info.State.Subjects)
		}
	}
	if cnt.Get("pop_duplicate") != 4 { // 2 repeats x (agent + call copy)
		t.Errorf("pop_duplicate = %d, want 4", cnt.Get("pop_duplicate"))
	}
	if info.Config.MaxAge != screenpop.DefaultRetention || info.Config.Duplicates != screenpop.DefaultRetention {
		t.Errorf("retention %v / duplicates %v", info.Config.MaxAge, info.Config.Duplicates)
	}
}

// adminConn logs in with the full-access integrator login that
// startService configures on the embedded server.
func adminConn(t testing.TB, svc *screenpop.Service) *nats.Conn {
	t.Helper()
	client, _ := svc.Addrs()
	nc, err := nats.Connect("nats://"+client, nats.UserInfo("integrator", "integrator-secret"))
	if err != nil {
		t.Fatalf("integrator login: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// An agent sees only its own pops and its queues': it cannot subscribe to
// another agent's subject, read them through the stream, listen on another
// inbox, or publish pops.
func TestAgentCannotReadAnotherAgentsPops(t *testing.T) {
	e, clk := newEngine(t, time.Date(2026, 1, 26, 14, 0, 0, 0, time.UTC))
	seedJane(t, e, clk)
	svc := startService(t, screenpop.Options{Calls: e})
	waitReady(t, svc)
	if err := svc.Pop(context.Background(), ring(t, e, "call1", "alice")); err != nil {
		t.Fatal(err)
	}

	bob, errs := connectAgent(t, svc, "bob", "bob-secret")
	expectViolation := func(what string) {
		t.Helper()
		select {
		case err := <-errs:
			if !errors.Is(err, nats.ErrPermissionViolation) && !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
				t.Errorf("%s: error %v, want a permissions violation", what, err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("%s: no permissions violation reported", what)
		}
	}

	// Live subject of another agent, another agent's inbox, everything.
	for _, subj := range []string{screenpop.AgentSubject("alice"), screenpop.InboxPrefix("alice") + ".>", "_INBOX.>", ">", screenpop.QueueSubject("billing")} {
		sub, err := bob.SubscribeSync(subj)
		if err != nil {
			t.Fatal(err)
		}
		_ = bob.Flush()
		expectViolation("subscribe " + subj)
		if _, err := sub.NextMsg(200 * time.Millisecond); err == nil {
			t.Errorf("bob received a message on %s", subj)
		}
	}

	// The stream, filtered to alice's subject or not filtered at all.
	js, _ := jetstream.New(bob)
	for _, filter := range [][]string{{screenpop.AgentSubject("alice")}, nil, {screenpop.SubjectPrefix + ".>"}} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		cons, err := js.OrderedConsumer(ctx, screenpop.StreamName, jetstream.OrderedConsumerConfig{FilterSubjects: filter})
		if err == nil {
			if m, err := cons.Next(jetstream.FetchMaxWait(500 * time.Millisecond)); err == nil {
				t.Errorf("bob read %s through the stream with filter %v", m.Subject(), filter)
			}
		}
		cancel()
		expectViolation("consumer on " + strings.Join(filter, ","))
	}

	// A create request on bob's own filter subject whose body asks for
	// alice's subject (or several) is refused by the server.
	for _, cfg := range []string{
		`{"stream_name":"STICKY_POPS","config":{"name":"sneak1","filter_subject":"` + screenpop.AgentSubject("alice") + `","deliver_policy":"all","ack_policy":"none"}}`,
		`{"stream_name":"STICKY_POPS","config":{"name":"sneak2","filter_subjects":["` + screenpop.AgentSubject("bob") + `","` + screenpop.AgentSubject("alice") + `"],"deliver_policy":"all","ack_policy":"none"}}`,
		`{"stream_name":"STICKY_POPS","config":{"name":"sneak3","deliver_policy":"all","ack_policy":"none"}}`,
	} {
		name := strings.Split(strings.Split(cfg, `"name":"`)[1], `"`)[0]
		subj := "$JS.API.CONSUMER.CREATE." + screenpop.StreamName + "." + name + "." + screenpop.AgentSubject("bob")
		m, err := bob.Request(subj, []byte(cfg), 2*time.Second)
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		if !strings.Contains(string(m.Data), `"error"`) {
			t.Errorf("create %s accepted: %s", name, m.Data)
		}
	}

	// The same request for bob's own subject works, so the refusals above
	// are about the filter.
	ok := `{"stream_name":"STICKY_POPS","config":{"name":"own1","filter_subject":"` + screenpop.AgentSubject("bob") + `","deliver_policy":"all","ack_policy":"none","inactive_threshold":5000000000}}`
	if m, err := bob.Request("$JS.API.CONSUMER.CREATE."+screenpop.StreamName+".own1."+screenpop.AgentSubject("bob"), []byte(ok), 2*time.Second); err != nil {
		t.Errorf("own consumer: %v", err)
	} else if strings.Contains(string(m.Data), `"error"`) {
		t.Errorf("own consumer refused: %s", m.Data)
	}

	// Publishing a pop is the bridge's alone.
	if err := bob.Publish(screenpop.AgentSubject("bob"), []byte(`{"version":1}`)); err != nil {
		t.Fatal(err)
	}
	_ = bob.Flush()
	expectViolation("publish a pop")

	// Bob's own subject works, through the stream, so the permissions are
	// not simply denying everything.
	if err := svc.Pop(context.Background(), ring(t, e, "call2", "bob")); err != nil {
		t.Fatal(err)
	}
	own := readPops(t, bob, screenpop.AgentSubject("bob"), 1)
	if own[0].Call.CallID != "call2" || own[0].Call.Agent != "bob" {
		t.Errorf("bob's own pop = %+v", own[0].Call)
	}
	// A wrong password is refused.
	client, _ := svc.Addrs()
	if nc, err := nats.Connect("nats://"+client, nats.UserInfo("bob", "alice-secret")); err == nil {
		nc.Close()
		t.Error("bob logged in with alice's password")
	}
}

// Start does not wait for an unreachable external NATS; pops wait for it
// until their context ends.
func TestUnreachableExternalNATS(t *testing.T) {
	e, _ := newEngine(t, time.Date(2026, 1, 26, 14, 0, 0, 0, time.UTC))
	ln := closedPort(t)
	svc := startService(t, screenpop.Options{Calls: e, URL: "nats://" + ln})
	if ok, why := svc.Ready(); ok || why == "" {
		t.Errorf("Ready = %v %q, want not ready with a reason", ok, why)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := svc.Pop(ctx, ring(t, e, "call1", "alice"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Pop = %v, want the deadline", err)
	}
	if c, ws := svc.Addrs(); c != "" || ws != "" {
		t.Errorf("Addrs with an external NATS = %q %q", c, ws)
	}
}
