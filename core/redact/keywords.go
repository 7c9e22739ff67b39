package redact

// context is what the words before a number say it is.
type context uint8

const (
	ctxCVV context = 1 << iota
	ctxExpiry
	ctxSSN
)

var placeholder = [numKinds]string{CVV: "[cvv]", Expiry: "[expiry]", SSN: "[ssn]"}

// keywords redacts security codes, expiry dates and social security
// numbers that follow the words that name them ("cvv 123", "exp 12/27",
// "SSN: 123 45 6789").
func keywords(s string, c *Counts) string {
	ed := editor{src: s}
	for i := 0; i < len(s); {
		if !isDigit(s[i]) {
			i++
			continue
		}
		j := i
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		if i > 0 && isAlnum(s[i-1]) { // part of a word such as cvv2 or A12
			i = j
			continue
		}
		if ctx := wordsBefore(s, i); ctx != 0 {
			n, kind := 0, Kind(0)
			if ctx&ctxExpiry != 0 {
				n, kind = expiryAt(s, i, true), Expiry
			}
			if n == 0 && ctx&ctxCVV != 0 {
				if n, kind = codeAt(s, i), CVV; n != 3 && n != 4 {
					n = 0
				}
			}
			if n == 0 && ctx&ctxSSN != 0 {
				n, kind = ssnAt(s, i), SSN
			}
			if n > 0 {
				ed.replace(i, i+n, placeholder[kind])
				c[kind]++
				i += n
				continue
			}
		}
		i = j
	}
	return ed.String()
}

const (
	maxGap  = 24 // bytes of gap between a number and the words before it
	maxWord = 20
)

// wordsBefore looks back from the number at s[at:] for a card, expiry or
// SSN word, over at most three small words that may stand between them
// ("cvv is 123", "expiration date: 12/27", "ssn number 123456789"). Any
// other word, a line break, a comma, a bracket, a digit or a sentence end
// on the way stops it.
func wordsBefore(s string, at int) context {
	j := at
	var later, word [maxWord]byte
	nl := 0
	for range 4 {
		dot := false
		for j > 0 && !isAlnum(s[j-1]) {
			if at-j >= maxGap {
				return 0
			}
			switch s[j-1] {
			case ' ', '\t', ':', '=', '#', '-', '(', ')', '\'', '"', '*', '/':
			case '.':
				dot = true
			default:
				return 0
			}
			j--
		}
		if j == 0 {
			return 0
		}
		e := j
		for j > 0 && isAlnum(s[j-1]) {
			j--
			if e-j > maxWord {
				return 0
			}
		}
		n := 0
		for k := j; k < e; k++ {
			word[n] = s[k] | 0x20 // lower case; digits are unchanged by it
			n++
		}
		w := string(word[:n])
		if m := keyword(w, string(later[:nl])); m != 0 {
			return m
		}
		if !filler(w) || dot && !abbreviation(w) {
			return 0 // "changed. 123" starts a new sentence; "no. 123" does not
		}
		later, nl = word, n
	}
	return 0
}

// keyword says which kind the word w (lower case) names, given the word
// that follows it (for two-word names such as "security code").
func keyword(w, next string) context {
	switch w {
	case "cvv", "cvv2", "cvc", "cvc2", "csc", "cvn":
		return ctxCVV
	case "exp", "expiry", "expiration", "expires", "expire", "expiring":
		return ctxExpiry
	case "ssn":
		return ctxSSN
	case "security":
		if next == "code" {
			return ctxCVV
		}
	case "card":
		if next == "verification" || next == "security" {
			return ctxCVV
		}
	case "valid":
		if next == "thru" || next == "through" || next == "until" {
			return ctxExpiry
		}
	case "good":
		if next == "thru" || next == "through" {
			return ctxExpiry
		}
	case "social":
		if next == "security" {
			return ctxSSN
		}
	case "soc":
		if next == "sec" {
			return ctxSSN
		}
	}
	return 0
}

// filler are the words that may stand between a word and its number,
// and the second words of two-word names.
func filler(w string) bool {
	switch w {
	case "is", "was", "are", "be", "number", "num", "no", "nr", "code", "date", "value",
		"the", "my", "on", "of", "it", "s", "its",
		"verification", "security", "thru", "through", "until", "sec":
		return true
	}
	return false
}

// abbreviation are fillers that may end in a dot ("card verification no. 123").
func abbreviation(w string) bool { return w == "no" || w == "nr" || w == "num" }

// numberEnds reports whether a number that ends at s[j] really ends there:
// no letter or digit follows, and no separator that continues it (12/27/…,
// 1,234, 12.50).
func numberEnds(s string, j int) bool {
	if j >= len(s) {
		return true
	}
	b := s[j]
	if isAlnum(b) {
		return false
	}
	switch b {
	case '/', '-', '.', ',':
		return j+1 >= len(s) || !isDigit(s[j+1])
	}
	return true
}

// codeAt is the length of the number at s[i:] when it ends cleanly.
func codeAt(s string, i int) int {
	j := i
	for j < len(s) && isDigit(s[j]) {
		j++
	}
	if !numberEnds(s, j) {
		return 0
	}
	return j - i
}

func month(m string) bool {
	switch len(m) {
	case 1:
		return m[0] >= '1' && m[0] <= '9'
	case 2:
		return m[0] == '0' && m[1] >= '1' && m[1] <= '9' || m[0] == '1' && m[1] >= '0' && m[1] <= '2'
	}
	return false
}

// expiryAt is the length of a card expiry date at s[i:]: MM/YY, MM/YYYY or
// M/YY with '/', '-', '.' or a space, and after an expiry word also MMYY.
func expiryAt(s string, i int, afterWord bool) int {
	j := i
	for j < len(s) && isDigit(s[j]) {
		j++
	}
	n := j - i
	if n == 4 && afterWord {
		if month(s[i:i+2]) && numberEnds(s, j) {
			return 4
		}
		return 0
	}
	if n < 1 || n > 2 || !month(s[i:j]) || j+1 >= len(s) {
		return 0
	}
	sep := s[j]
	if sep != '/' && sep != '-' && sep != '.' && sep != ' ' {
		return 0
	}
	k := j + 1
	for k < len(s) && isDigit(s[k]) {
		k++
	}
	switch y := s[j+1 : k]; {
	case len(y) == 2:
	case len(y) == 4 && (y[:2] == "20" || y[:2] == "19"):
	default:
		return 0
	}
	if !numberEnds(s, k) { // a full date (12/27/2026), a time, a longer number
		return 0
	}
	return k - i
}

// ssnAt is the length of a social security number at s[i:]: AAAGGSSSS, or
// AAA-GG-SSSS with one separator ('-', ' ' or '.').
func ssnAt(s string, i int) int {
	j := i
	for j < len(s) && isDigit(s[j]) {
		j++
	}
	if j-i == 9 {
		if validSSN(s[i:i+3], s[i+3:i+5], s[i+5:i+9]) && numberEnds(s, j) {
			return 9
		}
		return 0
	}
	if j-i != 3 || j+4 >= len(s) {
		return 0
	}
	sep := s[j]
	if !isSep(sep) || !isDigit(s[j+1]) || !isDigit(s[j+2]) || s[j+3] != sep {
		return 0
	}
	k := j + 4
	m := k
	for m < len(s) && isDigit(s[m]) {
		m++
	}
	if m-k != 4 || !validSSN(s[i:j], s[j+1:j+3], s[k:m]) || !numberEnds(s, m) {
		return 0
	}
	return m - i
}
