package core

import (
	"strings"
	"time"

	"github.com/sticky-cc/sticky/core/store"
)

// Blocked values are placeholders people type when they have no real
// identifier to give (an agent filling a mandatory field, a test call, a
// carrier with no caller id). Many unrelated customers share them, so they
// never count as evidence and are never linked to anyone: one would glue
// unrelated profiles together.

// placeholderLocalParts are email local parts that name nobody.
var placeholderLocalParts = map[string]bool{
	"noreply": true, "no-reply": true, "no_reply": true, "donotreply": true, "do-not-reply": true,
	"do_not_reply": true, "none": true, "noemail": true, "no-email": true, "no_email": true,
	"nomail": true, "no-mail": true, "null": true, "nobody": true, "unknown": true, "na": true,
	"n.a": true, "test": true, "example": true, "email": true, "mailer-daemon": true, "postmaster": true,
}

// placeholderDomains are the domains reserved for documentation and
// invalid names (RFC 2606, RFC 6761): no customer receives mail there.
// ".test" stays usable: it is what test suites use, and nobody types it
// into a customer form.
var placeholderDomains = []string{"example.com", "example.net", "example.org", "example", "invalid", "localhost"}

// BlockedEmail reports whether a normalised email address is a placeholder.
func BlockedEmail(email string) bool {
	at := strings.LastIndexByte(email, '@')
	if at < 0 {
		return false
	}
	local, domain := email[:at], email[at+1:]
	if i := strings.IndexByte(local, '+'); i > 0 {
		local = local[:i] // noreply+bounce@...
	}
	if placeholderLocalParts[local] {
		return true
	}
	for _, d := range placeholderDomains {
		if domain == d || strings.HasSuffix(domain, "."+d) {
			return true
		}
	}
	return false
}

// BlockedPhone reports whether a normalised (E.164) number is a
// placeholder: North America's fictional 555-0100 to 555-0199 range, or a
// number whose last seven digits are one repeated digit or a plain run
// (0000000, 1234567), as in 0000000000 and 4151234567.
func BlockedPhone(e164 string) bool {
	if len(e164) == 12 && strings.HasPrefix(e164, "+1") && e164[5:8] == "555" && e164[8:10] == "01" {
		return true
	}
	return len(e164) >= 8 && placeholderDigits(e164[len(e164)-7:])
}

// placeholderDigits: at least 7 digits, all the same or counting up or
// down by one. Separators are skipped; anything else is not a placeholder.
func placeholderDigits(raw string) bool {
	var d []byte
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case c >= '0' && c <= '9':
			d = append(d, c)
		case c == ' ' || c == '-' || c == '.' || c == '(' || c == ')' || c == '+':
		default:
			return false
		}
	}
	if len(d) < 7 {
		return false
	}
	same, up, down := true, true, true
	for i := 1; i < len(d); i++ {
		same = same && d[i] == d[0]
		up = up && d[i] == '0'+(d[i-1]-'0'+1)%10
		down = down && d[i] == '0'+(d[i-1]-'0'+9)%10
	}
	return same || up || down
}

// blocked reports a placeholder identifier of any kind.
func blocked(id store.Identifier) bool {
	switch id.Kind {
	case KindEmail:
		return BlockedEmail(id.Value)
	case KindPhone:
		return BlockedPhone(id.Value)
	}
	return placeholderDigits(id.Value) && len(id.Value) >= 7
}

// Attestation maps what a PBX reports about a call's caller id to the
// attestation hint: attest is the STIR/SHAKEN attestation level (A, B, C),
// verify the verification result, in Asterisk's words (STIR_SHAKEN(0,
// verify_result): "Verification succeeded", "Signature verification
// failed", ...) or as a SIP verstat parameter (TN-Validation-Passed,
// TN-Validation-Failed, No-TN-Validation; carriers append -A, -B or -C).
// A failed verification wins over any level; nothing known gives "".
func Attestation(attest, verify string) string {
	v := strings.ToLower(strings.TrimSpace(verify))
	switch {
	case strings.Contains(v, "fail"), strings.Contains(v, "mismatch"), strings.Contains(v, "invalid"):
		return AttestationFailed
	}
	a := strings.ToUpper(strings.TrimSpace(attest))
	if a == "" && strings.HasPrefix(v, "tn-validation-passed-") {
		a = strings.ToUpper(v[len("tn-validation-passed-"):])
	}
	switch a {
	case AttestationFull, AttestationPartial, AttestationGateway:
		return a
	}
	return ""
}

// normAttestation validates the attestation hint of a request.
func normAttestation(s string) (string, bool) {
	switch t := strings.TrimSpace(s); strings.ToUpper(t) {
	case "":
		return "", true
	case "A", "B", "C":
		return strings.ToUpper(t), true
	case "FAILED", "F":
		return AttestationFailed, true
	}
	return "", false
}

// touchSeen records that id was confirmed on c at now: a number stays
// fresh while its customer uses it (see Model.StaleAfter).
func touchSeen(c *store.Customer, id store.Identifier, now time.Time) {
	for i := range c.Seen {
		if c.Seen[i].Kind == id.Kind && c.Seen[i].Value == id.Value {
			if now.After(c.Seen[i].At) {
				c.Seen[i].At = now
			}
			return
		}
	}
	c.Seen = append(c.Seen, store.Seen{Kind: id.Kind, Value: id.Value, At: now})
}
