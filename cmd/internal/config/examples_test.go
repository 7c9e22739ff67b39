package config_test

// These tests check the example configuration files in configs/: each
// loads through the bridges' own loader, and together they name every
// setting. They live beside the loader, which is internal to cmd/.

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sticky-cc/sticky/adapters/agentmap"
	"github.com/sticky-cc/sticky/cmd/internal/config"
)

// load reads an example as the bridge would, with env as the environment.
// The examples name container paths (/etc/sticky/...); the agents file is
// pointed at the copy beside this test through the environment, as an
// operator running outside the container would.
func load(t *testing.T, name, file string, env map[string]string) config.Config {
	t.Helper()
	file = filepath.Join(configsDir, file)
	if env == nil {
		env = map[string]string{}
	}
	if _, ok := env["STICKY_AGENTS_FILE"]; !ok {
		env["STICKY_AGENTS_FILE"] = filepath.Join(configsDir, "agents.example.yaml")
	}
	cfg, err := config.Load(name, []string{"-config", file}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return cfg
}

func check[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

const configsDir = "../../../configs"

// common are the settings both examples share.
func common(t *testing.T, c config.Config) {
	t.Helper()
	check(t, "data_dir", c.DataDir, "/data")
	check(t, "http_addr", c.HTTPAddr, "0.0.0.0:8080")
	check(t, "api_keys", len(c.APIKeys), 0)
	check(t, "rate_per_second", c.RatePerSecond, 500)
	check(t, "default_region", c.DefaultRegion, "US")
	check(t, "encryption_key_file", c.EncryptionKeyFile, "")
	check(t, "log_format", c.LogFormat, "json")
	check(t, "log_level", c.LogLevel, "info")
	check(t, "shutdown_timeout", c.ShutdownTimeout, 15*time.Second)
	check(t, "variable_ttl", c.VariableTTL, 30*24*time.Hour)
	check(t, "intent_window", c.IntentWindow, 30*24*time.Hour)
	check(t, "access_retention", c.AccessRetention, 365*24*time.Hour)
	check(t, "disclose_level", c.DiscloseLevel, "reuse")
	check(t, "verify_prompts", c.VerifyPrompts, config.DefaultVerifyPrompt)
	check(t, "stats_window", c.StatsWindow, 24*time.Hour)
	check(t, "stats_every", c.StatsEvery, 5*time.Minute)
	check(t, "min_free_mib", c.MinFreeMiB, 256)
	check(t, "memory_limit_mib", c.MemoryLimitMiB, 640)
	check(t, "min_go_procs", c.MinGoProcs, 8)
	check(t, "pprof_addr", c.PprofAddr, "")
	// the documented values are the defaults
	check(t, "identity", fmt.Sprintf("%+v", c.Identity), fmt.Sprintf("%+v", config.Defaults().Identity))
	check(t, "adapters", fmt.Sprintf("%+v", c.Adapters), fmt.Sprintf("%+v", config.Defaults().Adapters))
	check(t, "redaction", fmt.Sprintf("%+v", c.Redaction), fmt.Sprintf("%+v", config.Defaults().Redaction))
	check(t, "nats.url", c.NATS.URL, "")
	check(t, "nats.addr", c.NATS.Addr, "127.0.0.1:4222")
	check(t, "nats.ws_addr", c.NATS.WSAddr, "0.0.0.0:4223")
	check(t, "nats.pop_retention", c.NATS.PopRetention, 15*time.Minute)
	check(t, "nats.agents_file", c.NATS.AgentsFile, filepath.Join(configsDir, "agents.example.yaml"))
	if len(c.NATS.Agents) != 3 || c.NATS.Agents[0].ID != "1001" || c.NATS.Agents[0].Password == "" ||
		strings.Join(c.NATS.Agents[0].Queues, ",") != "support,billing" {
		t.Errorf("agents from agents.example.yaml: %+v", c.NATS.Agents)
	}
}

func TestARIBridgeExampleLoads(t *testing.T) {
	c := load(t, "ari-bridge", "ari-bridge.yaml", nil)
	common(t, c)
	check(t, "ari.url", c.ARI.URL, "http://127.0.0.1:8088/ari")
	check(t, "ari.ws_url", c.ARI.WSURL, "")
	check(t, "ari.user", c.ARI.User, "sticky")
	check(t, "ari.password", c.ARI.Password, "")
	check(t, "ari.app", c.ARI.App, "sticky")
	check(t, "ari.mode", c.ARI.Mode, "both")
	check(t, "ari.budget", c.ARI.Budget, 300*time.Millisecond)
	if len(c.ARI.Agents) != 1 || c.ARI.Agents[0].Agent != "$1" {
		t.Errorf("ari.agents = %+v", c.ARI.Agents)
	}
	// the other bridge's section is the same in both files
	check(t, "esl section as in esl-bridge.yaml", reflect.DeepEqual(c.ESL, load(t, "esl-bridge", "esl-bridge.yaml", nil).ESL), true)
}

func TestESLBridgeExampleLoads(t *testing.T) {
	c := load(t, "esl-bridge", "esl-bridge.yaml", nil)
	common(t, c)
	check(t, "esl.addr", c.ESL.Addr, "127.0.0.1:8021")
	check(t, "esl.password", c.ESL.Password, "change-me-not-ClueCon")
	check(t, "esl.listen_addr", c.ESL.ListenAddr, "")
	check(t, "esl.budget", c.ESL.Budget, 300*time.Millisecond)
	if len(c.ESL.Agents) != 1 || c.ESL.Agents[0].Agent != "$1" {
		t.Errorf("esl.agents = %+v", c.ESL.Agents)
	}
	check(t, "ari section as in ari-bridge.yaml", reflect.DeepEqual(c.ARI, load(t, "ari-bridge", "ari-bridge.yaml", nil).ARI), true)
}

// The Compose file overrides the files through the environment; those
// variables must win over what the files say.
func TestComposeEnvironmentOverridesTheExamples(t *testing.T) {
	env := map[string]string{
		"STICKY_API_KEYS":     "k1, k2",
		"STICKY_NATS_URL":     "nats://nats1:4222,nats://nats2:4222,nats://nats3:4222",
		"STICKY_CLUSTER":      "demo",
		"STICKY_ARI_PASSWORD": "from-env",
		"STICKY_ESL_PASSWORD": "also-from-env",
	}
	a := load(t, "ari-bridge", "ari-bridge.yaml", env)
	check(t, "api keys", strings.Join(a.APIKeys, ","), "k1,k2")
	check(t, "nats url", a.NATS.URL, "nats://nats1:4222,nats://nats2:4222,nats://nats3:4222")
	check(t, "cluster", a.Cluster.Name, "demo")
	check(t, "ari password", a.ARI.Password, "from-env")
	e := load(t, "esl-bridge", "esl-bridge.yaml", env)
	check(t, "esl password", e.ESL.Password, "also-from-env")
}

// The agents rules in the examples must be valid regular expressions that
// map the usual endpoints to the agent ids of agents.example.yaml.
func TestExampleAgentRulesMatchTheExampleAgents(t *testing.T) {
	for _, tc := range []struct {
		file, endpoint string
		rules          func(config.Config) []config.AgentRule
	}{
		{"ari-bridge.yaml", "PJSIP/1001-0000002a", func(c config.Config) []config.AgentRule { return c.ARI.Agents }},
		{"esl-bridge.yaml", "sofia/internal/1002@10.0.0.5", func(c config.Config) []config.AgentRule { return c.ESL.Agents }},
		{"esl-bridge.yaml", "user/1003@sticky.local", func(c config.Config) []config.AgentRule { return c.ESL.Agents }},
	} {
		c := load(t, "bridge", tc.file, nil)
		agent, ok := expand(t, tc.rules(c), tc.endpoint)
		if !ok {
			t.Errorf("%s: no rule matches %s", tc.file, tc.endpoint)
			continue
		}
		found := false
		for _, a := range c.NATS.Agents {
			found = found || a.ID == agent
		}
		if !found {
			t.Errorf("%s: %s maps to agent %q, which agents.example.yaml does not have", tc.file, tc.endpoint, agent)
		}
	}
}

// expand maps an endpoint with the bridges' own agent-rule matcher.
func expand(t *testing.T, rules []config.AgentRule, endpoint string) (string, bool) {
	t.Helper()
	var rs []agentmap.Rule
	for _, r := range rules {
		rs = append(rs, agentmap.Rule{Pattern: r.Pattern, Agent: r.Agent})
	}
	m, err := agentmap.Compile(rs)
	if err != nil {
		t.Fatal(err)
	}
	return m.Agent(endpoint)
}

// keys lists every YAML key path of a type: "nats.agents_file",
// "ari.agents.pattern", with slices of structs descended into.
func keys(t reflect.Type, prefix string, out map[string]bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || name == "" {
			continue
		}
		path := prefix + name
		out[path] = true
		ft := f.Type
		if ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft != reflect.TypeFor[time.Duration]() {
			keys(ft, path+".", out)
		}
	}
}

// present lists the key paths a YAML document holds (lists descended into).
func present(n *yaml.Node, prefix string, out map[string]bool) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			present(c, prefix, out)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			path := prefix + n.Content[i].Value
			out[path] = true
			present(n.Content[i+1], path+".", out)
		}
	}
}

// TestExamplesNameEverySetting keeps the examples complete: a setting
// added to config.Config without being documented here fails this test.
// Agent logins ({id, password, queues}) live in agents.example.yaml.
func TestExamplesNameEverySetting(t *testing.T) {
	want := map[string]bool{}
	keys(reflect.TypeFor[config.Config](), "", want)
	agentKeys := map[string]bool{}
	keys(reflect.TypeFor[config.Agent](), "nats.agents.", agentKeys)
	if len(want) < 40 {
		t.Fatalf("found only %d settings in config.Config: is the reflection walk broken? %v", len(want), want)
	}
	for _, file := range []string{"ari-bridge.yaml", "esl-bridge.yaml"} {
		b, err := os.ReadFile(filepath.Join(configsDir, file))
		if err != nil {
			t.Fatal(err)
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		have := map[string]bool{}
		present(&doc, "", have)
		// the agents list is in its own file
		ab, err := os.ReadFile(filepath.Join(configsDir, "agents.example.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var agents yaml.Node
		if err := yaml.Unmarshal(ab, &agents); err != nil {
			t.Fatalf("agents.example.yaml: %v", err)
		}
		present(&agents, "nats.agents.", have)
		var missing []string
		for k := range want {
			if !have[k] {
				missing = append(missing, k)
			}
		}
		sort.Strings(missing)
		if len(missing) > 0 {
			t.Errorf("%s does not name these settings of config.Config: %s", file, strings.Join(missing, ", "))
		}
		// and every key in the file is a real setting (Load's KnownFields
		// checks that too; this names them all at once)
		for k := range have {
			if !want[k] && !agentKeys[k] {
				t.Errorf("%s: %s is not a setting", file, k)
			}
		}
	}
}
