package agentmap

import "testing"

func TestDefaultRules(t *testing.T) {
	m := MustCompile(nil)
	cases := map[string]string{
		"PJSIP/1001":                   "1001",
		"PJSIP/agent":                  "agent",
		"PJSIP/1001-00000003":          "1001",
		"SIP/1001-0000002a":            "1001",
		"user/1001@example.com":        "1001",
		"user/1002":                    "1002",
		"sofia/internal/1001@10.0.0.5": "1001",
		"sofia/gateway/gw1/5551234":    "5551234",
	}
	for in, want := range cases {
		got, ok := m.Agent(in)
		if !ok || got != want {
			t.Errorf("Agent(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "Console/dsp", "DAHDI/1-1"} {
		if got, ok := m.Agent(in); ok {
			t.Errorf("Agent(%q) = %q, want no match", in, got)
		}
	}
}

func TestCustomRules(t *testing.T) {
	m, err := Compile([]Rule{{Pattern: `PJSIP/(?P<ext>1\d{3})`, Agent: "agent-${ext}"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := m.Agent("PJSIP/1001"); !ok || got != "agent-1001" {
		t.Fatalf("got %q %v", got, ok)
	}
	if _, ok := m.Agent("PJSIP/2001"); ok {
		t.Fatal("2001 must not match 1\\d{3}")
	}
	if _, err := Compile([]Rule{{Pattern: "(", Agent: "$1"}}); err == nil {
		t.Fatal("a bad pattern must be refused")
	}
	if _, err := Compile([]Rule{{Pattern: "x"}}); err == nil {
		t.Fatal("a rule without agent must be refused")
	}
}
