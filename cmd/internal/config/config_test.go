package config

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "sticky.yaml")
	os.WriteFile(file, []byte("http_addr: 127.0.0.1:9000\ndata_dir: /from/yaml\nlog_level: warn\nari:\n  mode: observe\n  budget: 250ms\n"), 0o600)
	cfg, err := Load("t", []string{"-config", file, "-data-dir", "/from/flag"}, env(map[string]string{
		"STICKY_DATA_DIR": "/from/env", "STICKY_LOG_LEVEL": "debug", "STICKY_API_KEYS": "a, b,,c",
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != "/from/flag" || cfg.LogLevel != "debug" || cfg.HTTPAddr != "127.0.0.1:9000" || cfg.ARI.Mode != "observe" || cfg.ARI.Budget != 250*time.Millisecond {
		t.Fatalf("precedence wrong: %+v", cfg)
	}
	if strings.Join(cfg.APIKeys, "|") != "a|b|c" {
		t.Fatalf("keys: %q", cfg.APIKeys)
	}
	if cfg.NATS.Addr != "127.0.0.1:4222" || cfg.ESL.Password != "ClueCon" {
		t.Fatalf("defaults lost: %+v", cfg)
	}
}

func TestDefaultsAreLoopback(t *testing.T) {
	cfg, err := Load("t", nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{cfg.HTTPAddr, cfg.NATS.Addr, cfg.NATS.WSAddr} {
		if !strings.HasPrefix(a, "127.0.0.1:") {
			t.Errorf("default %s is not loopback", a)
		}
	}
}

func TestBadSettingsNameTheSetting(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("http_adr: x\n"), 0o600)
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, map[string]string{"STICKY_HTTP_ADDR": "nope"}, "STICKY_HTTP_ADDR"},
		{nil, map[string]string{"STICKY_ARI_MODE": "spy"}, "STICKY_ARI_MODE"},
		{nil, map[string]string{"STICKY_SHUTDOWN_TIMEOUT": "soon"}, "STICKY_SHUTDOWN_TIMEOUT"},
		{nil, map[string]string{"STICKY_DEFAULT_REGION": "usa"}, "STICKY_DEFAULT_REGION"},
		{nil, map[string]string{"STICKY_IDENTITY_PHONE_M": "1.5"}, "STICKY_IDENTITY_PHONE_M"},
		{nil, map[string]string{"STICKY_IDENTITY_EMAIL_U": "-0.1"}, "STICKY_IDENTITY_EMAIL_U"},
		{nil, map[string]string{"STICKY_IDENTITY_RECENCY_BITS": "-1"}, "STICKY_IDENTITY_RECENCY_BITS"},
		{nil, map[string]string{"STICKY_IDENTITY_CONFIRM": "0.95"}, "STICKY_IDENTITY_REUSE"}, // reuse (0.9) below confirm
		{nil, map[string]string{"STICKY_IDENTITY_SHARED_CAP": "500"}, "STICKY_IDENTITY_SHARED_CAP"},
		{nil, map[string]string{"STICKY_IDENTITY_SHARED_CAP": "many"}, "STICKY_IDENTITY_SHARED_CAP"},
		{nil, map[string]string{"STICKY_MIN_FREE_MIB": "-1"}, "STICKY_MIN_FREE_MIB"},
		{nil, map[string]string{"STICKY_MEMORY_LIMIT_MIB": "-1"}, "STICKY_MEMORY_LIMIT_MIB"},
		{nil, map[string]string{"STICKY_MEMORY_LIMIT_MIB": "lots"}, "STICKY_MEMORY_LIMIT_MIB"},
		{nil, map[string]string{"STICKY_MIN_GO_PROCS": "-1"}, "STICKY_MIN_GO_PROCS"},
		{nil, map[string]string{"STICKY_MIN_GO_PROCS": "5000"}, "STICKY_MIN_GO_PROCS"},
		{nil, map[string]string{"STICKY_PPROF_ADDR": "0.0.0.0:6060"}, "STICKY_PPROF_ADDR"},
		{nil, map[string]string{"STICKY_PPROF_ADDR": "example.com:6060"}, "STICKY_PPROF_ADDR"},
		{nil, map[string]string{"STICKY_TICKET_PATTERN": "[TKT-("}, "STICKY_TICKET_PATTERN"},
		{nil, map[string]string{"STICKY_REDACT_PATTERNS": `ACCT-\d{6}` + "\n(M-"}, "redaction.patterns[1]"},
		{nil, map[string]string{"STICKY_REDACT_PATTERNS": ".*"}, "STICKY_REDACT_PATTERNS"},
		{nil, map[string]string{"STICKY_REDACT_PATTERNS": `[a-z ]+`}, "STICKY_REDACT_PATTERNS"},
		{nil, map[string]string{"STICKY_REDACT": "maybe"}, "STICKY_REDACT"},
		{nil, map[string]string{"STICKY_DISCLOSE_LEVEL": "high"}, "STICKY_DISCLOSE_LEVEL"},
		{nil, map[string]string{"STICKY_STORE_COMPRESSION": "lz4"}, "STICKY_STORE_COMPRESSION"},
		{nil, map[string]string{"STICKY_VERIFY_PROMPTS": " | "}, "STICKY_VERIFY_PROMPTS"},
		{nil, map[string]string{"STICKY_VERIFY_PROMPTS": strings.Repeat("ask ", 100)}, "STICKY_VERIFY_PROMPTS"},
		{[]string{"-log-format", "xml"}, nil, "log_format"},
		{[]string{"-rate-per-second", "x"}, nil, "-rate-per-second"},
		{[]string{"-config", bad}, nil, "http_adr"},
		{[]string{"-config", filepath.Join(dir, "missing.yaml")}, nil, "-config"},
	} {
		_, err := Load("t", tc.args, env(tc.env), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v %v: %v, want one line naming %s", tc.args, tc.env, err, tc.want)
		}
	}
}

func TestVerificationSettings(t *testing.T) {
	c, err := Load("t", nil, env(nil), io.Discard)
	if err != nil || c.DiscloseLevel != "reuse" || !slices.Equal(c.Prompts(), []string{DefaultVerifyPrompt}) {
		t.Fatalf("defaults: %q %q %v", c.DiscloseLevel, c.Prompts(), err)
	}
	c, err = Load("t", nil, env(map[string]string{"STICKY_DISCLOSE_LEVEL": "never", "STICKY_VERIFY_PROMPTS": "Ask for the ZIP code | Ask for the last order number"}), io.Discard)
	if err != nil || c.DiscloseLevel != "never" || !slices.Equal(c.Prompts(), []string{"Ask for the ZIP code", "Ask for the last order number"}) {
		t.Fatalf("set: %q %q %v", c.DiscloseLevel, c.Prompts(), err)
	}
}

func TestRedactionIsOnByDefaultAndTakesPatterns(t *testing.T) {
	cfg, err := Load("t", nil, env(nil), io.Discard)
	if err != nil || !cfg.Redaction.Enabled || len(cfg.Redaction.Patterns) != 0 {
		t.Fatalf("defaults: %v %+v", err, cfg.Redaction)
	}
	// one pattern per line in the environment: the comma is the pattern's
	cfg, err = Load("t", nil, env(map[string]string{"STICKY_REDACT": "false", "STICKY_REDACT_PATTERNS": "ACCT-\\d{6,8}\n\n M-\\d+ "}), io.Discard)
	if err != nil || cfg.Redaction.Enabled || strings.Join(cfg.Redaction.Patterns, "|") != `ACCT-\d{6,8}|M-\d+` {
		t.Fatalf("from the environment: %v %+v", err, cfg.Redaction)
	}
	file := filepath.Join(t.TempDir(), "sticky.yaml")
	os.WriteFile(file, []byte("redaction:\n  enabled: true\n  patterns:\n    - 'ACCT-\\d{6}'\n    - '(?i)passport\\s*[A-Z0-9]{9}'\n"), 0o600)
	cfg, err = Load("t", []string{"-config", file}, env(nil), io.Discard)
	if err != nil || !cfg.Redaction.Enabled || len(cfg.Redaction.Patterns) != 2 || cfg.Redaction.Patterns[1] != `(?i)passport\s*[A-Z0-9]{9}` {
		t.Fatalf("from YAML: %v %+v", err, cfg.Redaction)
	}
	os.WriteFile(file, []byte("redaction:\n  patterns: ['.+']\n"), 0o600)
	if _, err := Load("t", []string{"-config", file}, env(nil), io.Discard); err == nil || !strings.Contains(err.Error(), "redaction.patterns[0]") {
		t.Fatalf("a pattern matching everything: %v", err)
	}
}
