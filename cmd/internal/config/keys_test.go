package config

import (
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sticky-cc/sticky/core/api"
)

func TestAPIKeyEntries(t *testing.T) {
	cfg, err := Load("t", nil, env(map[string]string{
		"STICKY_API_KEYS": "plain-one, chat:ingest:s3cret:with:colons , pbx:calls+READ:pbx-secret,plain-two",
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := []api.Key{
		{Name: "key-1", Secret: "plain-one"},
		{Name: "chat", Scopes: []api.Scope{api.ScopeIngest}, Secret: "s3cret:with:colons"},
		{Name: "pbx", Scopes: []api.Scope{api.ScopeCalls, api.ScopeRead}, Secret: "pbx-secret"},
		{Name: "key-4", Secret: "plain-two"},
	}
	if len(cfg.Keys) != len(want) {
		t.Fatalf("keys = %+v", cfg.Keys)
	}
	for i, k := range cfg.Keys {
		w := want[i]
		if k.Name != w.Name || k.Secret != w.Secret || !slices.Equal(k.Scopes, w.Scopes) || k.SHA256 != "" {
			t.Errorf("key %d = %+v, want %+v", i, k, w)
		}
	}
}

// The example keys file loads, its sha256 entry is the hash of the demo
// secret its comment names, and it adds to STICKY_API_KEYS.
func TestAPIKeysFile(t *testing.T) {
	cfg, err := Load("t", nil, env(map[string]string{
		"STICKY_API_KEYS":      "plain-key",
		"STICKY_API_KEYS_FILE": filepath.Join("..", "..", "..", "configs", "api-keys.example.yaml"),
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, k := range cfg.Keys {
		got = append(got, k.Name+"="+scopes(k.Scopes))
	}
	if strings.Join(got, " ") != "key-1= chat-platform=ingest asterisk-dialplan=calls crm-lookup=read dpo=read+admin" {
		t.Fatalf("keys: %v", got)
	}
	if cfg.Keys[1].Hash() != sha256.Sum256([]byte("demo-ingest-key-change-me-0123456789")) || cfg.Keys[1].Secret != "" {
		t.Errorf("chat-platform's sha256 is not the demo secret's")
	}
}

func scopes(s []api.Scope) string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = string(v)
	}
	return strings.Join(out, "+")
}

// Bad keys stop the start with one line naming the setting and the entry,
// and never the secret.
func TestBadAPIKeysNameTheSetting(t *testing.T) {
	dir := t.TempDir()
	file := func(body string) string {
		f, err := os.CreateTemp(dir, "keys-*.yaml")
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(body)
		f.Close()
		return f.Name()
	}
	const secret = "TOPSECRET-value"
	for _, tc := range []struct {
		name, keys, file, want string
	}{
		{"unknown scope", "chat:ingest+write:" + secret, "", `entry 1: key "chat": unknown scope "write"`},
		{"no scopes", "chat::" + secret, "", "names no scope"},
		{"empty secret", "a," + "chat:ingest:", "", `entry 2: key "chat": the secret is empty`},
		{"one colon", "chat:" + secret, "", "has one ':'"},
		{"bad name", "the chat:ingest:" + secret, "", `name "the chat"`},
		{"duplicate name", "chat:ingest:" + secret + ",chat:calls:other", "", `two keys are named "chat"`},
		{"generated name taken", "key-2:read:" + secret + ",plain", "", `two keys are named "key-2"`},
		{"same secret twice", "a:read:" + secret + ",b:admin:" + secret, "", `keys "a" and "b" have the same secret`},
		{"file: unknown scope", "", "- {name: chat, key: " + secret + ", scopes: [ingest, everything]}", `STICKY_API_KEYS_FILE (api_keys_file): entry 1 (name "chat"): unknown scope "everything"`},
		{"file: no scopes", "", "- {name: chat, key: " + secret + "}", "names no scope"},
		{"file: no name", "", "- {key: " + secret + ", scopes: [read]}", "needs a name"},
		{"file: empty secret", "", "- {name: chat, scopes: [read]}", "the secret is empty"},
		{"file: key and hash", "", "- {name: chat, key: " + secret + ", sha256: " + strings.Repeat("ab", 32) + ", scopes: [read]}", "not both"},
		{"file: bad hash", "", "- {name: chat, sha256: " + secret + ", scopes: [read]}", "64 hex digits"},
		{"file: bcrypt", "", "- {name: chat, bcrypt: \"$2a$12$" + secret + "\", scopes: [read]}", "bcrypt is not accepted"},
		{"file: unknown field", "", "- {name: chat, secret: " + secret + ", scopes: [read]}", "field secret not found"},
		{"file: not a list", "", "name: chat\n", "STICKY_API_KEYS_FILE"},
		{"file and env share a name", "chat:read:other", "- {name: chat, key: " + secret + ", scopes: [read]}", `STICKY_API_KEYS_FILE (api_keys_file): two keys are named "chat"`},
		{"missing file", "", filepath.Join(dir, "missing.yaml"), "STICKY_API_KEYS_FILE (api_keys_file): open"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := map[string]string{"STICKY_API_KEYS": tc.keys}
			switch {
			case strings.HasSuffix(tc.file, "missing.yaml"):
				e["STICKY_API_KEYS_FILE"] = tc.file
			case tc.file != "":
				e["STICKY_API_KEYS_FILE"] = file(tc.file)
			}
			_, err := Load("t", nil, env(e), io.Discard)
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			setting := "STICKY_API_KEYS (api_keys)"
			if tc.file != "" && !strings.Contains(tc.want, "STICKY_API_KEYS (") {
				setting = "STICKY_API_KEYS_FILE (api_keys_file)"
			}
			if !strings.Contains(msg, tc.want) || !strings.Contains(msg, setting) || strings.Contains(msg, "\n") {
				t.Errorf("%v\nwant one line naming %s and %q", msg, setting, tc.want)
			}
			if strings.Contains(msg, "TOPSECRET") {
				t.Errorf("the error shows the secret: %v", msg)
			}
		})
	}
}
