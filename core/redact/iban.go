package redact

// ibanLengths is the length of each country's IBANs (SWIFT's IBAN
// registry); a country not listed has no IBANs.
var ibanLengths = map[[2]byte]int{
	{'A', 'D'}: 24, {'A', 'E'}: 23, {'A', 'L'}: 28, {'A', 'T'}: 20, {'A', 'Z'}: 28, {'B', 'A'}: 20,
	{'B', 'E'}: 16, {'B', 'G'}: 22, {'B', 'H'}: 22, {'B', 'I'}: 27, {'B', 'R'}: 29, {'B', 'Y'}: 28,
	{'C', 'H'}: 21, {'C', 'R'}: 22, {'C', 'Y'}: 28, {'C', 'Z'}: 24, {'D', 'E'}: 22, {'D', 'J'}: 27,
	{'D', 'K'}: 18, {'D', 'O'}: 28, {'E', 'E'}: 20, {'E', 'G'}: 29, {'E', 'S'}: 24, {'F', 'I'}: 18,
	{'F', 'K'}: 18, {'F', 'O'}: 18, {'F', 'R'}: 27, {'G', 'B'}: 22, {'G', 'E'}: 22, {'G', 'I'}: 23,
	{'G', 'L'}: 18, {'G', 'R'}: 27, {'G', 'T'}: 28, {'H', 'N'}: 28, {'H', 'R'}: 21, {'H', 'U'}: 28,
	{'I', 'E'}: 22, {'I', 'L'}: 23, {'I', 'Q'}: 23, {'I', 'S'}: 26, {'I', 'T'}: 27, {'J', 'O'}: 30,
	{'K', 'W'}: 30, {'K', 'Z'}: 20, {'L', 'B'}: 28, {'L', 'C'}: 32, {'L', 'I'}: 21, {'L', 'T'}: 20,
	{'L', 'U'}: 20, {'L', 'V'}: 21, {'L', 'Y'}: 25, {'M', 'C'}: 27, {'M', 'D'}: 24, {'M', 'E'}: 22,
	{'M', 'K'}: 19, {'M', 'N'}: 20, {'M', 'R'}: 27, {'M', 'T'}: 31, {'M', 'U'}: 30, {'N', 'I'}: 28,
	{'N', 'L'}: 18, {'N', 'O'}: 15, {'O', 'M'}: 23, {'P', 'K'}: 24, {'P', 'L'}: 28, {'P', 'S'}: 29,
	{'P', 'T'}: 25, {'Q', 'A'}: 29, {'R', 'O'}: 24, {'R', 'S'}: 22, {'R', 'U'}: 33, {'S', 'A'}: 24,
	{'S', 'C'}: 31, {'S', 'D'}: 18, {'S', 'E'}: 24, {'S', 'I'}: 19, {'S', 'K'}: 24, {'S', 'M'}: 27,
	{'S', 'O'}: 23, {'S', 'T'}: 25, {'S', 'V'}: 28, {'T', 'L'}: 23, {'T', 'N'}: 24, {'T', 'R'}: 26,
	{'U', 'A'}: 29, {'V', 'A'}: 22, {'V', 'G'}: 24, {'X', 'K'}: 20, {'Y', 'E'}: 30,
}

const maxIBAN = 34

func upper(b byte) byte {
	if b-'a' < 26 {
		return b - 'a' + 'A'
	}
	return b
}

// ibans redacts IBANs: at a word start, two letters and two digits, then
// the rest of that country's length in letters and digits, optionally in
// groups separated by single spaces, with a valid checksum.
func ibans(s string, c *Counts) string {
	ed := editor{src: s}
	for i := 2; i+1 < len(s); i++ {
		// s[i] is the first check digit
		if !isDigit(s[i]) || !isDigit(s[i+1]) || !isLetter(s[i-1]) || !isLetter(s[i-2]) ||
			i > 2 && isAlnum(s[i-3]) || i-2 < ed.last {
			continue
		}
		start := i - 2
		want := ibanLengths[[2]byte{upper(s[start]), upper(s[start+1])}]
		if want == 0 {
			continue
		}
		var chars [maxIBAN]byte
		n, j := 0, start
	scan:
		for j < len(s) && n < want {
			switch {
			case isAlnum(s[j]):
				chars[n] = upper(s[j])
				n++
				j++
			case s[j] == ' ' && n >= 4 && j+1 < len(s) && isAlnum(s[j+1]):
				j++
			default:
				break scan
			}
		}
		if n != want || j < len(s) && isAlnum(s[j]) || !mod97(chars[:n]) {
			continue
		}
		ed.replace(start, j, "[iban ending ", string(chars[n-4:n]), "]")
		c[IBAN]++
		i = j
	}
	return ed.String()
}

// mod97 is the IBAN check (ISO 7064 MOD 97-10): the first four characters
// moved to the end, letters as 10-35, the number modulo 97 is 1.
func mod97(iban []byte) bool {
	r := 0
	add := func(b byte) {
		if isDigit(b) {
			r = (r*10 + int(b-'0')) % 97
			return
		}
		r = (r*100 + int(b-'A') + 10) % 97
	}
	for _, b := range iban[4:] {
		add(b)
	}
	for _, b := range iban[:4] {
		add(b)
	}
	return r == 1
}
