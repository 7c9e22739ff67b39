package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/sticky-cc/sticky/core/api"
)

const (
	keysSetting     = "STICKY_API_KEYS (api_keys)"
	keysFileSetting = "STICKY_API_KEYS_FILE (api_keys_file)"
)

// fileKey is one entry of the API keys file.
type fileKey struct {
	Name   string   `yaml:"name"`
	Key    string   `yaml:"key"`
	SHA256 string   `yaml:"sha256"`
	Bcrypt string   `yaml:"bcrypt"` // refused, with the reason
	Scopes []string `yaml:"scopes"`
}

// loadKeys turns api_keys entries and the keys file into c.Keys. Problems
// name the setting and the entry's position or name, never the secret.
func (c *Config) loadKeys() error {
	c.Keys = nil
	for i, entry := range c.APIKeys {
		k, err := parseKeyEntry(entry, i+1)
		if err != nil {
			return &Error{keysSetting, fmt.Sprintf("entry %d: %v", i+1, err)}
		}
		c.Keys = append(c.Keys, k)
	}
	fromEnv := len(c.Keys)
	if c.APIKeysFile != "" {
		b, err := os.ReadFile(c.APIKeysFile)
		if err != nil {
			return &Error{keysFileSetting, err.Error()}
		}
		var list []fileKey
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&list); err != nil && !errors.Is(err, io.EOF) {
			return &Error{keysFileSetting, yamlProblem(err)}
		}
		for i, fk := range list {
			k, err := fk.key()
			if err != nil {
				return &Error{keysFileSetting, fmt.Sprintf("entry %d (name %q): %v", i+1, fk.Name, err)}
			}
			c.Keys = append(c.Keys, k)
		}
	}
	names := map[string]bool{}
	hashes := map[[32]byte]string{}
	for i, k := range c.Keys {
		setting := keysSetting
		if i >= fromEnv {
			setting = keysFileSetting
		}
		if names[k.Name] {
			return &Error{setting, fmt.Sprintf("two keys are named %q; names must be unique (they say which key did what)", k.Name)}
		}
		names[k.Name] = true
		h := k.Hash()
		if other, dup := hashes[h]; dup {
			return &Error{setting, fmt.Sprintf("keys %q and %q have the same secret; give each its own", other, k.Name)}
		}
		hashes[h] = k.Name
	}
	return nil
}

// parseKeyEntry reads one api_keys entry: a plain key, which holds every
// scope and is named key-<n> by its position, or name:scope+scope:secret.
// Any ':' makes an entry the named form, so a plain key cannot hold one
// (the secret of the named form may).
func parseKeyEntry(entry string, n int) (api.Key, error) {
	entry = strings.TrimSpace(entry)
	if !strings.Contains(entry, ":") {
		k := api.Key{Name: fmt.Sprintf("key-%d", n), Secret: entry}
		return k, k.Validate()
	}
	parts := strings.SplitN(entry, ":", 3)
	if len(parts) < 3 {
		return api.Key{}, errors.New("has one ':'; write name:scope+scope:secret, or a plain key without ':'")
	}
	k := api.Key{Name: strings.TrimSpace(parts[0]), Secret: strings.TrimSpace(parts[2])}
	scopes, err := parseScopes(strings.Split(parts[1], "+"))
	if err != nil {
		return api.Key{}, fmt.Errorf("key %q: %v", k.Name, err)
	}
	k.Scopes = scopes
	if err := k.Validate(); err != nil {
		return api.Key{}, fmt.Errorf("key %q: %v", k.Name, err)
	}
	return k, nil
}

func parseScopes(list []string) ([]api.Scope, error) {
	var out []api.Scope
	for _, s := range list {
		if strings.TrimSpace(s) == "" {
			continue
		}
		sc, err := api.ParseScope(s)
		if err != nil {
			return nil, err
		}
		out = append(out, sc)
	}
	if len(out) == 0 {
		return nil, errors.New("names no scope; give at least one of ingest, calls, read, admin")
	}
	return out, nil
}

func (fk fileKey) key() (api.Key, error) {
	if fk.Bcrypt != "" || strings.HasPrefix(fk.SHA256, "$2") {
		// bcrypt is slow by design and would run for every configured key
		// on every request: any wrong key would make the server pay it.
		return api.Key{}, errors.New("bcrypt is not accepted for API keys; give sha256 (printf %s \"$KEY\" | sha256sum): keys are long random strings, for which a fast hash is as safe")
	}
	if strings.TrimSpace(fk.Name) == "" {
		return api.Key{}, errors.New("needs a name")
	}
	scopes, err := parseScopes(fk.Scopes)
	if err != nil {
		return api.Key{}, err
	}
	k := api.Key{Name: strings.TrimSpace(fk.Name), Scopes: scopes, Secret: fk.Key, SHA256: fk.SHA256}
	return k, k.Validate()
}
