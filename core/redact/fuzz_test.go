package redact_test

import (
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/sticky-cc/sticky/core/redact"
)

// networks are the issuer ranges again, as a table (prefix range and the
// lengths issued), so the fuzz target checks the output independently of
// the code under test.
var networks = []struct {
	lo, hi   int // prefix range, inclusive; the prefix has as many digits as lo
	min, max int
	only     []int
}{
	{4, 4, 0, 0, []int{13, 16, 19}}, // Visa
	{51, 55, 16, 16, nil},           // Mastercard
	{2221, 2720, 16, 16, nil},       // Mastercard 2-series
	{34, 34, 15, 15, nil},           // Amex
	{37, 37, 15, 15, nil},           //
	{6011, 6011, 16, 19, nil},       // Discover
	{644, 649, 16, 19, nil},         //
	{65, 65, 16, 19, nil},           //
	{3528, 3589, 16, 19, nil},       // JCB
	{300, 305, 14, 19, nil},         // Diners
	{3095, 3095, 14, 19, nil},       //
	{36, 36, 14, 19, nil},           //
	{38, 39, 14, 19, nil},           //
	{62, 62, 16, 19, nil},           // UnionPay
	{5018, 5018, 13, 19, nil},       // Maestro
	{5020, 5020, 13, 19, nil},       //
	{5038, 5038, 13, 19, nil},       //
	{5893, 5893, 13, 19, nil},       //
	{6304, 6304, 13, 19, nil},       //
	{6759, 6759, 13, 19, nil},       //
	{6761, 6763, 13, 19, nil},       //
}

func isCard(d string) bool {
	if len(d) < 13 || len(d) > 19 || !luhnOK(d) {
		return false
	}
	for _, n := range networks {
		w := len(strconv.Itoa(n.lo))
		p, _ := strconv.Atoi(d[:w])
		if p < n.lo || p > n.hi {
			continue
		}
		if n.only != nil {
			for _, l := range n.only {
				if len(d) == l {
					return true
				}
			}
			return false
		}
		return len(d) >= n.min && len(d) <= n.max
	}
	return false
}

func digit(b byte) bool { return b >= '0' && b <= '9' }

// cardIn returns a card number standing on its own in s: a whole run of
// digit groups (joined by single spaces, dashes or dots) or one group of
// a run, unless the run is glued to a letter or a "+" on its left.
func cardIn(s string) string {
	for i := 0; i < len(s); {
		if !digit(s[i]) {
			i++
			continue
		}
		start := i
		var groups []string
		for {
			g := i
			for i < len(s) && digit(s[i]) {
				i++
			}
			groups = append(groups, s[g:i])
			if i+1 < len(s) && strings.IndexByte(" -.", s[i]) >= 0 && digit(s[i+1]) {
				i++
				continue
			}
			break
		}
		glued := start > 0 && (s[start-1] == '+' || (s[start-1]|0x20) >= 'a' && (s[start-1]|0x20) <= 'z')
		if !glued && isCard(strings.Join(groups, "")) {
			return s[start:i]
		}
		for k, g := range groups {
			if (k > 0 || !glued) && isCard(g) {
				return g
			}
		}
	}
	return ""
}

func FuzzRedact(f *testing.F) {
	for _, tc := range testCards {
		for _, fm := range cardFormats(tc.number, tc.groups) {
			f.Add("card " + fm + " exp 12/27 cvv 123")
		}
	}
	for _, s := range lookAlikes {
		f.Add(s)
	}
	f.Add("SSN 123-45-6789, IBAN DE89 3704 0044 0532 0130 00, security code: 1234")
	f.Add("4111111111111111-123-45-6789")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		out, c := (*redact.Redactor)(nil).Redact(s)
		if card := cardIn(out); card != "" {
			t.Fatalf("Redact(%q) = %q still holds the card number %q", s, out, card)
		}
		again, c2 := (*redact.Redactor)(nil).Redact(out)
		if again != out || c2.Total() != 0 {
			t.Fatalf("Redact(%q) = %q, but again = %q (%v)", s, out, again, c2)
		}
		if strings.IndexFunc(s, func(r rune) bool { return r >= '0' && r <= '9' }) < 0 && (out != s || c.Total() != 0) {
			t.Fatalf("text without digits changed: %q -> %q", s, out)
		}
		if out == s && c.Total() != 0 || out != s && c.Total() == 0 {
			t.Fatalf("counts %v for %q -> %q", c, s, out)
		}
		if utf8.ValidString(s) && !utf8.ValidString(out) {
			t.Fatalf("valid UTF-8 %q became invalid %q", s, out)
		}
	})
}
