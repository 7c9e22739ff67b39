// Package redact finds what must not be stored in free text (payment card
// numbers, card security codes and expiry dates, US social security
// numbers, IBANs and an operator's own patterns) and replaces it with a
// placeholder that keeps what an agent needs, such as "[card ending 1111]".
//
// The placeholders are exactly:
//
//	card number         [card ending NNNN]   (its last four digits)
//	CVV, CVC, CID       [cvv]                (the code only; "cvv 123" becomes "cvv [cvv]")
//	card expiry date    [expiry]             (the date only; "exp 12/27" becomes "exp [expiry]")
//	social security no. [ssn]
//	IBAN                [iban ending XXXX]   (its last four characters, upper case)
//	operator pattern    [redacted]
//
// What counts as each kind:
//
//   - A card number is 13 to 19 digits, written together or in groups
//     separated by single spaces, dashes or dots, that passes the Luhn check
//     and lies in a network's range with a length that network issues:
//     Visa (4; 13, 16 or 19 digits), Mastercard (51-55 and 2221-2720; 16),
//     American Express (34, 37; 15), Discover (6011, 644-649, 65; 16-19),
//     JCB (3528-3589; 16-19), Diners Club (300-305, 3095, 36, 38, 39; 14-19),
//     UnionPay (62; 16-19) and Maestro (5018, 5020, 5038, 5893, 6304, 6759,
//     6761-6763; 13-19). A number glued to letters or to a "+" on its left
//     (1Z… parcel numbers, ORD4…, +4915…) is part of an identifier or a phone
//     number and stays. A long number written in groups of four (a USPS
//     tracking number, 9400 1118 …) is one number: only a card at its start,
//     or right after another card, counts.
//   - A security code is 3 or 4 digits after a card word (cvv, cvv2, cvc,
//     cvc2, csc, cvn, "security code", "card verification", "card security"),
//     or right after a card number (3 digits, 4 after an American Express).
//   - An expiry date is MM/YY, MM/YYYY, M/YY (also with - . or a space) after
//     an expiry word (exp, expiry, expiration, expires, expire, expiring,
//     "valid thru", "valid through", "valid until", "good thru") or right
//     after a card number; after an expiry word MMYY counts too. A full date
//     such as 12/27/2026 is not an expiry.
//   - A social security number is AAA-GG-SSSS, or AAA GG SSSS or AAAGGSSSS
//     after ssn, "social security" or "soc sec"; never with the SSA's
//     unassigned parts: area 000, 666 or 900-999, group 00, serial 0000.
//   - An IBAN is a country code, two check digits and the account part, with
//     or without single spaces, exactly as long as that country's IBANs, with
//     a valid mod-97 checksum.
//
// Up to three small words (is, was, number, code, date, …) may stand
// between a word and its number ("cvv is 123", "expiration date: 12/27"),
// but no other word, line break, comma, sentence end, digit or bracket.
//
// Text without digits costs one scan for a digit and comes back unchanged
// (unless an operator pattern matches it).
package redact

import (
	"fmt"
	"regexp"
	"strings"
)

// Kind is what was redacted.
type Kind int

// The kinds, in the order Counts lists them.
const (
	Card Kind = iota
	CVV
	Expiry
	SSN
	IBAN
	Pattern
	numKinds
)

var kindNames = [numKinds]string{"card", "cvv", "expiry", "ssn", "iban", "pattern"}

func (k Kind) String() string {
	if k < 0 || k >= numKinds {
		return fmt.Sprintf("Kind(%d)", int(k))
	}
	return kindNames[k]
}

// Kinds lists every kind, for metrics and reports.
func Kinds() []Kind {
	out := make([]Kind, numKinds)
	for i := range out {
		out[i] = Kind(i)
	}
	return out
}

// Counts says how many of each kind were redacted; index it with a Kind.
type Counts [numKinds]int

// Total is the number of redactions of every kind.
func (c Counts) Total() int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

// Add adds o to c.
func (c *Counts) Add(o Counts) {
	for i, v := range o {
		c[i] += v
	}
}

// String lists the counts as "card=1 cvv=0 …".
func (c Counts) String() string {
	var b strings.Builder
	for i, v := range c {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%d", Kind(i), v)
	}
	return b.String()
}

// Redactor redacts text with the built-in kinds and an operator's
// patterns. It is safe for concurrent use. A nil *Redactor redacts the
// built-in kinds only.
type Redactor struct {
	patterns []*regexp.Regexp
}

// New returns a Redactor with the operator's extra patterns (regular
// expressions, RE2 syntax), each checked by CheckPattern.
func New(patterns ...string) (*Redactor, error) {
	r := &Redactor{}
	for i, p := range patterns {
		if err := CheckPattern(p); err != nil {
			return nil, fmt.Errorf("pattern %d: %w", i+1, err)
		}
		r.patterns = append(r.patterns, regexp.MustCompile(p))
	}
	return r, nil
}

// maxPasses bounds the passes when operator patterns keep matching their
// own output; the built-in kinds always settle (each pass that changes
// anything removes digits).
const maxPasses = 8

// Redact returns s with everything found replaced, and how much of each
// kind was found. Redacting the result again changes nothing.
func (r *Redactor) Redact(s string) (string, Counts) {
	var c Counts
	var patterns []*regexp.Regexp
	if r != nil {
		patterns = r.patterns
	}
	if len(patterns) == 0 && !hasDigit(s) {
		return s, c
	}
	// A replacement can leave text that a pass reads differently (two
	// numbers that were apart now border a placeholder), so passes repeat
	// until one changes nothing: that is what makes redacting idempotent.
	for pass := 0; ; pass++ {
		before := c.Total()
		if hasDigit(s) {
			s = ibans(s, &c)
			s = numbers(s, &c)
			s = keywords(s, &c)
		}
		builtin := c.Total() != before
		for _, re := range patterns {
			s = replacePattern(re, s, &c)
		}
		if c.Total() == before || !builtin && pass >= maxPasses {
			return s, c
		}
	}
}

// String is Redact without the counts.
func (r *Redactor) String(s string) string {
	out, _ := r.Redact(s)
	return out
}

// hasDigit reports whether s holds an ASCII digit, eight bytes at a time.
func hasDigit(s string) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(s); i += 8 {
		b := s[i : i+8] // one bounds check; the loads below become one
		w := uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
			uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
		// A byte is a digit when it is >= '0' and <= '9': add to each
		// 7-bit lane so that its high bit says so, with no carries
		// across lanes (bytes >= 0x80 are masked out first).
		low := w &^ hi
		geZero := (low + (0x80-'0')*lo) & hi // lane >= '0'
		gtNine := (low + (0x7f-'9')*lo) & hi // lane > '9'
		if geZero&^gtNine&^(w&hi) != 0 {
			return true
		}
	}
	for ; i < len(s); i++ {
		if isDigit(s[i]) {
			return true
		}
	}
	return false
}

func isDigit(c byte) bool  { return c-'0' < 10 }
func isLetter(c byte) bool { return (c|0x20)-'a' < 26 }
func isAlnum(c byte) bool  { return isDigit(c) || isLetter(c) }
func isSep(c byte) bool    { return c == ' ' || c == '-' || c == '.' }

// editor builds a changed copy of src, allocating only once something is
// replaced. Replacements come in order and do not overlap.
type editor struct {
	src  string
	b    strings.Builder
	last int
}

func (e *editor) replace(start, end int, parts ...string) {
	if e.b.Cap() == 0 {
		e.b.Grow(len(e.src) + 32)
	}
	e.b.WriteString(e.src[e.last:start])
	for _, p := range parts {
		e.b.WriteString(p)
	}
	e.last = end
}

func (e *editor) String() string {
	if e.b.Cap() == 0 {
		return e.src
	}
	e.b.WriteString(e.src[e.last:])
	return e.b.String()
}

func replacePattern(re *regexp.Regexp, s string, c *Counts) string {
	locs := re.FindAllStringIndex(s, -1)
	if len(locs) == 0 {
		return s
	}
	ed := editor{src: s}
	for _, l := range locs {
		if l[0] == l[1] {
			continue // CheckPattern refuses patterns that match nothing, but be safe
		}
		ed.replace(l[0], l[1], "[redacted]")
		c[Pattern]++
	}
	return ed.String()
}
