package core

import (
	"log/slog"
	"strings"
)

// PII is a phone number, email or other personal value on its way into a
// log: it logs masked (***1234, c***@example.com), never in full.
type PII string

// LogValue implements slog.LogValuer.
func (p PII) LogValue() slog.Value { return slog.StringValue(Mask(string(p))) }

// String masks too, so fmt and %v cannot leak the value either.
func (p PII) String() string { return Mask(string(p)) }

// Mask hides all but a hint of a personal value.
func Mask(s string) string {
	if s == "" {
		return ""
	}
	if at := strings.LastIndexByte(s, '@'); at > 0 {
		return s[:1] + "***" + s[at:]
	}
	r := []rune(s)
	if len(r) <= 4 {
		return "***"
	}
	return "***" + string(r[len(r)-4:])
}
