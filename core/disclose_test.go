package core_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sticky-cc/sticky/core"
)

func TestDisclosesAtTheLevel(t *testing.T) {
	for _, tc := range []struct {
		level string
		want  map[string]bool // recommendation: discloses
	}{
		{"", map[string]bool{core.RecommendReuse: true, core.RecommendConfirm: false, core.RecommendIgnore: false, "": false}},
		{core.DiscloseReuse, map[string]bool{core.RecommendReuse: true, core.RecommendConfirm: false, core.RecommendIgnore: false}},
		{core.DiscloseConfirm, map[string]bool{core.RecommendReuse: true, core.RecommendConfirm: true, core.RecommendIgnore: false}},
		{core.DiscloseIgnore, map[string]bool{core.RecommendReuse: true, core.RecommendConfirm: true, core.RecommendIgnore: true}},
		{core.DiscloseAll, map[string]bool{core.RecommendReuse: true, core.RecommendConfirm: true, core.RecommendIgnore: true, "": true}},
		{core.DiscloseNever, map[string]bool{core.RecommendReuse: false, core.RecommendConfirm: false, core.RecommendIgnore: false}},
	} {
		e, _, _ := accessEngine(t, t.TempDir(), &clock{t: monday}, core.Options{DiscloseLevel: tc.level})
		for rec, want := range tc.want {
			if got := e.Discloses(core.Identity{Recommendation: rec}); got != want {
				t.Errorf("level %q, recommendation %q: discloses %v, want %v", tc.level, rec, got, want)
			}
		}
	}
	if err := core.CheckDiscloseLevel("high"); err == nil || !strings.Contains(err.Error(), "reuse") {
		t.Errorf("high: %v", err)
	}
}

// seedShared gives two customers one phone line, each with a name and a
// history the pop must not carry.
func seedShared(t *testing.T, e *core.Engine, clk *clock) {
	t.Helper()
	for _, s := range []struct{ ref, name, summary string }{
		{"cust_kim", "Kim Park", "Kim asked about the gold plan"},
		{"cust_lee", "Lee Park", "Lee disputed invoice 4471"},
	} {
		if _, err := e.End(context.Background(), core.EndRequest{CallID: "seed_" + s.ref, CustomerRef: s.ref, Channel: "phone",
			Hints: &core.Hints{ANI: "+14155550003"}, Variables: map[string]string{"name": s.name, "summary": s.summary, "zip": "94110"}}); err != nil {
			t.Fatal(err)
		}
		clk.Add(time.Hour)
	}
}

func TestWithheldUntilIdentifiedAndOnlyToThePoppedAgent(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: monday}
	e, _, _ := accessEngine(t, t.TempDir(), clk, core.Options{})
	seedShared(t, e, clk)
	res, err := e.Start(ctx, core.StartRequest{CallID: "c1", Hints: core.Hints{ANI: "+14155550003"}})
	if err != nil || res.Identity.Recommendation != core.RecommendConfirm {
		t.Fatalf("start: %+v %v", res, err)
	}
	w := e.Withhold(ctx, res)
	if w == nil {
		t.Fatal("a confirm pop is not withheld at the default level")
	}
	b, _ := json.Marshal(w)
	for _, secret := range []string{"gold plan", "invoice 4471", "94110", "history", "variables", "open_intents", "headline"} {
		if strings.Contains(string(b), secret) {
			t.Errorf("withheld context holds %q: %s", secret, b)
		}
	}
	names := map[string]string{}
	for _, c := range w.Candidates {
		names[c.CustomerRef] = c.Name
	}
	if !w.Withheld || len(w.Candidates) != 2 || names["cust_kim"] != "Kim Park" || names["cust_lee"] != "Lee Park" || len(w.Identity.Explanation) == 0 {
		t.Errorf("withheld = %s", b)
	}

	// not popped to bob: refused, in both candidates' access logs
	if _, err := e.Disclose(ctx, "c1", "bob"); core.ErrorCode(err) != core.CodeForbidden {
		t.Fatalf("bob: %v, want forbidden", err)
	}
	for _, ref := range []string{"cust_kim", "cust_lee"} {
		if got := accessOf(t, e, ref); !slices.ContainsFunc(got, func(a core.Access) bool {
			return a.Kind == core.AccessContextDenied && a.Actor == "bob" && a.CallID == "c1"
		}) {
			t.Errorf("%s's access log: %+v", ref, got)
		}
	}
	if err := e.Popped(ctx, "c1", "alice"); err != nil {
		t.Fatal(err)
	}
	// popped, but nobody said who it is yet
	if _, err := e.Disclose(ctx, "c1", "alice"); core.ErrorCode(err) != core.CodeConflict {
		t.Fatalf("before identify: %v, want conflict", err)
	}
	if _, err := e.Identify(ctx, core.IdentifyRequest{CallID: "c1", CustomerRef: "cust_lee", Agent: "alice", By: "nats:alice"}); err != nil {
		t.Fatal(err)
	}
	cc, err := e.Disclose(ctx, "c1", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if cc.CustomerRef != "cust_lee" || cc.Name != "Lee Park" || len(cc.History) != 1 || cc.History[0].Summary != "Lee disputed invoice 4471" ||
		cc.Identity.Recommendation != core.RecommendConfirm {
		t.Errorf("context = %+v", cc)
	}
	if got := accessOf(t, e, "cust_lee"); !slices.ContainsFunc(got, func(a core.Access) bool {
		return a.Kind == core.AccessContext && a.Actor == "alice" && a.CallID == "c1"
	}) {
		t.Errorf("lee's access log has no context record: %+v", got)
	}
	if _, err := e.Disclose(ctx, "nope", "alice"); core.ErrorCode(err) != core.CodeNotFound {
		t.Errorf("unknown call: %v", err)
	}
}

// At level never even a reused customer is verified first; at the default
// a reused customer's context may be fetched at once (the pop had it).
func TestReusedCallerAtEveryLevel(t *testing.T) {
	ctx := context.Background()
	for _, level := range []string{core.DiscloseReuse, core.DiscloseNever} {
		clk := &clock{t: monday}
		e, _, _ := accessEngine(t, t.TempDir(), clk, core.Options{DiscloseLevel: level})
		endFor(t, e, "seed", "cust_ann", "ann@example.test")
		res, err := e.Start(ctx, core.StartRequest{CallID: "c1", Hints: core.Hints{ExternalIDs: map[string]string{"email": "ann@example.test"}}})
		if err != nil || res.Identity.Recommendation != core.RecommendReuse {
			t.Fatalf("%s: start %+v %v", level, res, err)
		}
		w := e.Withhold(ctx, res)
		if (w != nil) != (level == core.DiscloseNever) {
			t.Fatalf("%s: withheld %+v", level, w)
		}
		if err := e.Popped(ctx, "c1", "alice"); err != nil {
			t.Fatal(err)
		}
		_, err = e.Disclose(ctx, "c1", "alice")
		if level == core.DiscloseReuse && err != nil {
			t.Fatalf("reuse: %v", err)
		}
		if level == core.DiscloseNever {
			if core.ErrorCode(err) != core.CodeConflict || w.Candidates[0].CustomerRef != "cust_ann" {
				t.Fatalf("never: %v, candidates %+v", err, w.Candidates)
			}
			if _, err := e.Identify(ctx, core.IdentifyRequest{CallID: "c1", CustomerRef: "cust_ann", Agent: "alice"}); err != nil {
				t.Fatal(err)
			}
			if cc, err := e.Disclose(ctx, "c1", "alice"); err != nil || cc.CustomerRef != "cust_ann" {
				t.Fatalf("never, identified: %+v %v", cc, err)
			}
		}
	}
}

func TestParseDisclose(t *testing.T) {
	if id, err := core.ParseDisclose([]byte(`{"call_id":"c1"}`)); err != nil || id != "c1" {
		t.Errorf("%q %v", id, err)
	}
	for _, bad := range []string{`{}`, `{"call_id":"c1","customer_ref":"x"}`, `[]`, `{"call_id":1}`} {
		if _, err := core.ParseDisclose([]byte(bad)); core.ErrorCode(err) != core.CodeInvalid {
			t.Errorf("%s: %v", bad, err)
		}
	}
}
