package api

import (
	"bytes"
	"net/http/httptest"
	"strings"
	"testing"
)

// The server must not hold keys in the clear, and a key that shares all but
// its last byte with a real one must fare exactly like a random one: no
// prefix comparison, no early exit.
func TestKeysAreHashedAndComparedWhole(t *testing.T) {
	real := "sk_live_0123456789abcdef0123456789abcdef"
	s := New(Options{Keys: []string{"other-key", real}})
	for _, p := range s.keys {
		if bytes.Contains(p.hash[:], []byte(real[:8])) || bytes.Contains(p.hash[:], []byte("other-key"[:6])) {
			t.Fatal("a key is held in the clear")
		}
	}
	try := func(k string) string {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", "Bearer "+k)
		if p := s.keyOf(r); p != nil {
			return p.name
		}
		return ""
	}
	if try(real) != "key-2" || try("other-key") != "key-1" {
		t.Fatal("configured keys not found")
	}
	for _, k := range []string{real[:len(real)-1] + "0", real[:len(real)-1], real + "f", strings.ToUpper(real), "x", ""} {
		if name := try(k); name != "" {
			t.Errorf("near-miss key %q accepted as %s", k, name)
		}
	}
}

// BenchmarkKeyCompare prints the cost of checking a key that is right, one
// that differs only in its last byte, and one that differs in its first:
// the three must cost the same (hash, then a constant-time compare with
// every configured key).
func BenchmarkKeyCompare(b *testing.B) {
	real := "sk_live_0123456789abcdef0123456789abcdef"
	s := New(Options{Keys: []string{"k1", "k2", "k3", real}})
	for name, k := range map[string]string{
		"right":      real,
		"last-byte":  real[:len(real)-1] + "0",
		"first-byte": "X" + real[1:],
	} {
		b.Run(name, func(b *testing.B) {
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set("Authorization", "Bearer "+k)
			for b.Loop() {
				s.keyOf(r)
			}
		})
	}
}
