package redact

import "testing"

// hasDigit reads eight bytes at a time: every byte value, at every
// position of a word and in the tail, must be judged as a byte loop would.
func TestHasDigitAgreesWithAByteLoop(t *testing.T) {
	for n := 1; n <= 19; n++ {
		for pos := range n {
			for b := range 256 {
				s := []byte("abcdefghijklmnopqrs"[:n])
				s[pos] = byte(b)
				want := b >= '0' && b <= '9'
				if got := hasDigit(string(s)); got != want {
					t.Fatalf("hasDigit(%q) = %v", s, got)
				}
			}
		}
	}
}
