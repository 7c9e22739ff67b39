package redact

// group is one block of digits of a run: s[start:end].
type group struct{ start, end int }

func (g group) len() int { return g.end - g.start }

// numbers redacts card numbers (with the security code and expiry date
// that follow one) and dashed social security numbers. It reads the text
// as runs: digits in groups joined by single spaces, dashes or dots.
func numbers(s string, c *Counts) string {
	ed := editor{src: s}
	var buf [32]group
	for i := 0; i < len(s); {
		if !isDigit(s[i]) {
			i++
			continue
		}
		start := i
		groups := buf[:0]
		digits := 0
		for {
			gs := i
			for i < len(s) && isDigit(s[i]) {
				i++
			}
			groups = append(groups, group{gs, i})
			digits += i - gs
			if i+1 < len(s) && isSep(s[i]) && isDigit(s[i+1]) {
				i++
				continue
			}
			break
		}
		// glued: the run continues an identifier (1Z…, ORD…) or is a
		// phone number in E.164 (+…).
		glued := start > 0 && (isLetter(s[start-1]) || s[start-1] == '+')
		switch {
		case digits == 9 && !glued && dashedSSN(s, groups):
			ed.replace(start, i, "[ssn]")
			c[SSN]++
		case digits >= 13:
			if end := cards(s, groups, glued, &ed, c); end > i {
				i = end
			}
		}
	}
	return ed.String()
}

// dashedSSN reports a run that is exactly AAA-GG-SSSS and a possible SSN,
// not followed by a letter.
func dashedSSN(s string, g []group) bool {
	if len(g) != 3 || g[0].len() != 3 || g[1].len() != 2 || g[2].len() != 4 ||
		s[g[0].end] != '-' || s[g[1].end] != '-' {
		return false
	}
	if e := g[2].end; e < len(s) && isLetter(s[e]) {
		return false
	}
	return validSSN(s[g[0].start:g[0].end], s[g[1].start:g[1].end], s[g[2].start:g[2].end])
}

// validSSN excludes what the SSA never assigns: area 000, 666 and
// 900-999, group 00, serial 0000.
func validSSN(area, grp, serial string) bool {
	return area != "000" && area != "666" && area[0] != '9' && grp != "00" && serial != "0000"
}

// cards finds card numbers among a run's groups, leftmost and longest
// first, redacts them with what follows them and returns where the last
// redaction ended (0 if none).
func cards(s string, g []group, glued bool, ed *editor, c *Counts) int {
	// A long number in groups of four with one separator (a USPS tracking
	// number, a bank account) is one number: a card inside it only counts
	// at its start or right after another card.
	uniform := len(g) >= 2 && g[len(g)-1].len() <= 4
	for k := range len(g) - 1 {
		if g[k].len() != 4 || s[g[k].end] != s[g[0].end] {
			uniform = false
			break
		}
	}
	total := 0
	for _, x := range g {
		total += x.len()
	}
	long := uniform && total > 19

	var digits [19]byte
	last, after := 0, -1 // end of the last redaction; group index just after a card
	for a := 0; a < len(g); a++ {
		if g[a].start < last || a == 0 && glued || long && a != 0 && a != after {
			continue
		}
		// the groups a..b that hold 13 to 19 digits, longest first
		n, b := 0, a
		for b < len(g) && n+g[b].len() <= 19 {
			n += g[b].len()
			b++
		}
		for b--; b >= a && n >= 13; b-- {
			k := 0
			for x := a; x <= b; x++ {
				k += copy(digits[k:], s[g[x].start:g[x].end])
			}
			if network(digits[:k]) && luhn(digits[:k]) {
				end := g[b].end
				ed.replace(g[a].start, end, "[card ending ", string(digits[k-4:k]), "]")
				c[Card]++
				end = cardTail(s, end, isAmex(digits[:k]), ed, c)
				last, after = end, b+1
				for after < len(g) && g[after].start < end {
					after++ // the tail took these groups
				}
				a = b
				break
			}
			n -= g[b].len()
		}
	}
	return last
}

// cardTail redacts an expiry date and a security code written right after
// a card number ("4111 1111 1111 1111 12/27 123"), and returns where the
// redacted text ends.
func cardTail(s string, end int, amex bool, ed *editor, c *Counts) int {
	for range 2 {
		q := end
		for q < len(s) && q-end < 3 && tailGap(s[q]) {
			q++
		}
		if q == end || q >= len(s) || !isDigit(s[q]) {
			return end
		}
		if n := expiryAt(s, q, false); n > 0 {
			ed.replace(q, q+n, "[expiry]")
			c[Expiry]++
			end = q + n
			continue
		}
		want := 3
		if amex {
			want = 4
		}
		if n := codeAt(s, q); n == want {
			ed.replace(q, q+n, "[cvv]")
			c[CVV]++
			end = q + n
			continue
		}
		return end
	}
	return end
}

func tailGap(b byte) bool {
	switch b {
	case ' ', ',', ';', ':', '-', '/', '|', '(', ')':
		return true
	}
	return false
}

func isAmex(d []byte) bool { return len(d) == 15 && d[0] == '3' && (d[1] == '4' || d[1] == '7') }

// luhn reports whether the digits pass the Luhn check.
func luhn(d []byte) bool {
	sum := 0
	double := false
	for i := len(d) - 1; i >= 0; i-- {
		v := int(d[i] - '0')
		if double {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
		double = !double
	}
	return sum%10 == 0
}

// network reports whether the digits are in a card network's issuer range
// with a length that network issues.
func network(d []byte) bool {
	n := len(d)
	prefix := func(k int) int {
		v := 0
		for _, x := range d[:k] {
			v = v*10 + int(x-'0')
		}
		return v
	}
	p2, p3, p4 := prefix(2), prefix(3), prefix(4)
	switch {
	case d[0] == '4': // Visa
		return n == 13 || n == 16 || n == 19
	case p2 >= 51 && p2 <= 55, p4 >= 2221 && p4 <= 2720: // Mastercard
		return n == 16
	case p2 == 34, p2 == 37: // American Express
		return n == 15
	case p4 == 6011, p3 >= 644 && p3 <= 649, p2 == 65, p2 == 62, // Discover, UnionPay
		p4 >= 3528 && p4 <= 3589: // JCB
		return n >= 16
	case p3 >= 300 && p3 <= 305, p4 == 3095, p2 == 36, p2 == 38, p2 == 39: // Diners Club
		return n >= 14
	case p4 == 5018, p4 == 5020, p4 == 5038, p4 == 5893, p4 == 6304, p4 == 6759, p4 >= 6761 && p4 <= 6763: // Maestro
		return true
	}
	return false
}
