package redact

import (
	"errors"
	"regexp"
)

// ordinaryText is what an operator's pattern must leave mostly alone: a
// pattern that covers half of any of these would redact everything.
var ordinaryText = []string{
	"Customer called about the refund for order 12345 and will call back tomorrow.",
	"Hello, I was charged twice on my January invoice. Thanks, Jane",
	"the quick brown fox jumps over the lazy dog",
	"Agent: I have escalated this to billing; you will hear from us by Friday.",
}

// CheckPattern says why an operator's pattern cannot be used: it does not
// compile, it matches the empty string (so it would match everywhere), or
// it matches ordinary text wholesale (half or more of a sample sentence).
func CheckPattern(p string) error {
	if p == "" {
		return errors.New("is empty")
	}
	re, err := regexp.Compile(p)
	if err != nil {
		return err
	}
	if re.MatchString("") {
		return errors.New("matches the empty string, so it would redact everything")
	}
	for _, s := range ordinaryText {
		covered := 0
		for _, l := range re.FindAllStringIndex(s, -1) {
			covered += l[1] - l[0]
		}
		if 2*covered >= len(s) {
			return errors.New("matches ordinary text wholesale (" + `"` + s + `"` + "), so it would redact everything")
		}
	}
	return nil
}
