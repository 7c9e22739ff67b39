package core

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits from the API contract.
const (
	MaxIDLen          = 128
	MaxHintLen        = 128
	MaxVarNameLen     = 64
	MaxVarValueBytes  = 4 << 10
	MaxVariables      = 100
	MaxExternalIDs    = 20
	MaxChannelLen     = 32
	MaxIntentLen      = 128
	maxTTLSeconds     = 90 * 24 * 3600
	defaultTTLSeconds = 30 * 24 * 3600
)

// Intent statuses.
const (
	StatusOpen      = "open"
	StatusResolved  = "resolved"
	StatusAbandoned = "abandoned"
)

// invisible reports runes that must not appear in ids: control characters,
// invisible formatting (zero-width, bidi overrides) and line separators.
func invisible(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Zl, r) ||
		unicode.Is(unicode.Zp, r) || r == utf8.RuneError
}

// checkText validates a short identifier-like string; empty is allowed
// unless required.
func checkText(is *issues, s string, max int, required bool, path ...any) {
	switch {
	case s == "" && required:
		is.add("is required", path...)
	case !utf8.ValidString(s):
		is.add("must be valid UTF-8", path...)
	case utf8.RuneCountInString(s) > max:
		is.add("must be at most "+itoa(max)+" characters", path...)
	case strings.IndexFunc(s, invisible) >= 0:
		is.add("must not contain control or invisible formatting characters", path...)
	case s != "" && strings.TrimSpace(s) == "":
		is.add("must not be blank", path...)
	}
}

// validName reports whether s is a variable or external-id name.
func validName(s string) bool {
	if len(s) == 0 || len(s) > MaxVarNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// normChannel lower-cases a channel name and checks its shape.
func normChannel(s string) (string, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" || len(s) > MaxChannelLen {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return "", false
		}
	}
	return s, true
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	neg := n < 0
	if neg {
		n = -n
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}
