package asterisk

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sticky-cc/sticky/screenpop"
	"github.com/sticky-cc/sticky/screenpop/screenpoptest"
)

// The whole path with the real parts: a captured Asterisk ringing call
// through the bridge, the engine on Badger and the real screen-pop service
// (embedded NATS, JetStream) to the agent's own subject, read by the agent
// with its own login; another agent does not get it.
func TestRingingPopReachesTheAgentThroughScreenpop(t *testing.T) {
	eng := newEngine(t)
	svc, _ := screenpoptest.Start(t, eng,
		screenpop.Agent{ID: "agent", Password: "agent-pw"}, screenpop.Agent{ID: "1002", Password: "other-pw"})
	client, _ := svc.Addrs()
	login := func(id, pw string) (*nats.Conn, *nats.Subscription) {
		nc, err := nats.Connect("nats://"+client, nats.UserInfo(id, pw), nats.CustomInboxPrefix(screenpop.InboxPrefix(id)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		sub, err := nc.SubscribeSync(screenpop.AgentSubject(id))
		if err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		return nc, sub
	}
	_, mine := login("agent", "agent-pw")
	_, theirs := login("1002", "other-pw")

	fake := newFake(t)
	r := run(t, Options{URL: fake.url(), Mode: ModeObserve, Calls: eng, Popper: svc})
	ws := fake.accept()
	fake.play(ws, fixture(t, "ringing.jsonl")...)

	msg, err := mine.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("the agent got no pop: %v", err)
	}
	var p struct {
		Version int    `json:"version"`
		Target  string `json:"target"`
		Call    struct {
			CallID string `json:"call_id"`
			PBX    string `json:"pbx"`
			Agent  string `json:"agent"`
			ANI    string `json:"ani"`
		} `json:"call"`
		Context struct {
			CustomerRef string `json:"customer_ref"`
			Identity    struct {
				Level string `json:"level"`
			} `json:"identity"`
			// A new caller is below the default disclosure level (reuse):
			// the pop names the customer among the candidates only.
			Withheld   bool `json:"withheld"`
			Candidates []struct {
				CustomerRef string `json:"customer_ref"`
			} `json:"candidates"`
		} `json:"context"`
	}
	if err := json.Unmarshal(msg.Data, &p); err != nil {
		t.Fatal(err)
	}
	if p.Version != 1 || p.Target != "agent" || p.Call.CallID != "ast-1795549300.3" || p.Call.PBX != "asterisk" ||
		p.Call.Agent != "agent" || p.Call.ANI != "+14155559876" || !p.Context.Withheld || len(p.Context.Candidates) != 1 || p.Context.Candidates[0].CustomerRef == "" || p.Context.Identity.Level == "" {
		t.Fatalf("pop = %s", msg.Data)
	}
	if m, err := theirs.NextMsg(200 * time.Millisecond); err == nil {
		t.Fatalf("another agent got the pop: %s", m.Data)
	}
	r.stop(t)
}
