package redact_test

import (
	"strings"
	"testing"

	"github.com/sticky-cc/sticky/core/redact"
)

// testCards are the networks' published test numbers, with the grouping
// the network prints them in.
var testCards = []struct {
	number string
	groups []int
}{
	// Visa
	{"4111111111111111", []int{4, 4, 4, 4}},
	{"4012888888881881", []int{4, 4, 4, 4}},
	{"4242424242424242", []int{4, 4, 4, 4}},
	{"4000056655665556", []int{4, 4, 4, 4}},
	{"4222222222222", []int{4, 4, 5}},
	{"4000000000000000006", []int{4, 4, 4, 4, 3}},
	// Mastercard, 5-series and 2-series
	{"5555555555554444", []int{4, 4, 4, 4}},
	{"5105105105105100", []int{4, 4, 4, 4}},
	{"5200828282828210", []int{4, 4, 4, 4}},
	{"2223003122003222", []int{4, 4, 4, 4}},
	{"2221000000000009", []int{4, 4, 4, 4}},
	{"2720999999999996", []int{4, 4, 4, 4}},
	// American Express
	{"378282246310005", []int{4, 6, 5}},
	{"371449635398431", []int{4, 6, 5}},
	{"378734493671000", []int{4, 6, 5}},
	{"340000000000009", []int{4, 6, 5}},
	// Discover
	{"6011111111111117", []int{4, 4, 4, 4}},
	{"6011000990139424", []int{4, 4, 4, 4}},
	{"6011981111111113", []int{4, 4, 4, 4}},
	{"6445644564456445", []int{4, 4, 4, 4}},
	{"6500000000000002", []int{4, 4, 4, 4}},
	// JCB
	{"3530111333300000", []int{4, 4, 4, 4}},
	{"3566002020360505", []int{4, 4, 4, 4}},
	{"3566111111111113", []int{4, 4, 4, 4}},
	// Diners Club
	{"30569309025904", []int{4, 6, 4}},
	{"38520000023237", []int{4, 6, 4}},
	{"36227206271667", []int{4, 6, 4}},
	{"3056930009020004", []int{4, 4, 4, 4}},
	// UnionPay
	{"6200000000000005", []int{4, 4, 4, 4}},
	{"6205500000000000004", []int{4, 4, 4, 4, 3}},
	{"6212345678901265", []int{4, 4, 4, 4}},
	{"6250941006528599", []int{4, 4, 4, 4}},
	// Maestro
	{"6759649826438453", []int{4, 4, 4, 4}},
	{"6304000000000000", []int{4, 4, 4, 4}},
	{"5018000000000009", []int{4, 4, 4, 4}},
	{"6761000000000006", []int{4, 4, 4, 4}},
}

// luhnOK is the Luhn check, written again here so the corpus does not
// trust the code it tests.
func luhnOK(d string) bool {
	sum := 0
	for i := range len(d) {
		v := int(d[len(d)-1-i] - '0')
		if i%2 == 1 {
			if v *= 2; v > 9 {
				v -= 9
			}
		}
		sum += v
	}
	return sum%10 == 0
}

// withCheckDigit completes prefix with the digit that makes it Luhn-valid.
func withCheckDigit(prefix string) string {
	for d := '0'; d <= '9'; d++ {
		if luhnOK(prefix + string(d)) {
			return prefix + string(d)
		}
	}
	panic("unreachable")
}

func grouped(number string, sizes []int, sep string) string {
	var parts []string
	for _, n := range sizes {
		parts = append(parts, number[:n])
		number = number[n:]
	}
	return strings.Join(parts, sep)
}

// cardFormats are the ways a customer types a number.
func cardFormats(number string, sizes []int) []string {
	fours := []int{}
	for n := len(number); n > 0; n -= 4 {
		fours = append(fours, min(4, n))
	}
	out := []string{number}
	for _, sep := range []string{" ", "-", "."} {
		out = append(out, grouped(number, sizes, sep), grouped(number, fours, sep))
	}
	return out
}

// sentences put a number (%s) where customers put them.
var sentences = []string{
	"%s",
	"card %s was charged twice",
	"My card is %s.",
	"Card number: %s\nThanks, Jane",
	"charged on (%s)",
	`the card "%s", declined`,
	"paid with %s; please refund",
	"line one\n%s",
	"%s\nline two",
	"card:%s!",
	"order 12345, card %s, total $19.99",
	"Kundin zahlte mit Karte %s – bitte prüfen",
	"tab\t%s\t",
}

func TestTestCardsAreRedactedInEveryFormat(t *testing.T) {
	n := 0
	for _, tc := range testCards {
		if !luhnOK(tc.number) {
			t.Fatalf("corpus: %s is not Luhn-valid", tc.number)
		}
		want := "[card ending " + tc.number[len(tc.number)-4:] + "]"
		for _, f := range cardFormats(tc.number, tc.groups) {
			for _, sent := range sentences {
				in := strings.Replace(sent, "%s", f, 1)
				out, c := (*redact.Redactor)(nil).Redact(in)
				if exp := strings.Replace(sent, "%s", want, 1); out != exp || c[redact.Card] != 1 || c.Total() != 1 {
					t.Errorf("Redact(%q)\n = %q (%v)\nwant %q (card=1)", in, out, c, exp)
				}
				n++
			}
		}
	}
	t.Logf("%d texts", n)
}

func TestRedacted(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		// what follows a card number
		{"4111 1111 1111 1111 12/27 123", "[card ending 1111] [expiry] [cvv]"},
		{"4111111111111111, 12/2027, 123", "[card ending 1111], [expiry], [cvv]"},
		{"4111-1111-1111-1111 123", "[card ending 1111] [cvv]"},
		{"378282246310005 1234", "[card ending 0005] [cvv]"},
		{"card 4111111111111111 exp 04/28 cvv 321 thanks", "card [card ending 1111] exp [expiry] cvv [cvv] thanks"},
		{"two cards 4111 1111 1111 1111 5555 5555 5555 4444", "two cards [card ending 1111] [card ending 4444]"},
		{"ref 12345 4111 1111 1111 1111", "ref 12345 [card ending 1111]"},
		// security codes after card words
		{"cvv 123", "cvv [cvv]"},
		{"CVV: 123", "CVV: [cvv]"},
		{"cvc2=456", "cvc2=[cvv]"},
		{"the CVV is 987", "the CVV is [cvv]"},
		{"security code: 1234", "security code: [cvv]"},
		{"Security Code is 123.", "Security Code is [cvv]."},
		{"card verification value 987", "card verification value [cvv]"},
		{"card verification no. 555", "card verification no. [cvv]"},
		{"CSC (3 digits): 123", "CSC (3 digits): 123"}, // a digit in between stops the look-back
		// expiry dates after expiry words
		{"exp 12/27", "exp [expiry]"},
		{"Exp: 12/2027", "Exp: [expiry]"},
		{"expires 1/28", "expires [expiry]"},
		{"expiry date 04-29", "expiry date [expiry]"},
		{"expiration date is 11.30", "expiration date is [expiry]"},
		{"valid thru 11/30", "valid thru [expiry]"},
		{"exp. 0427 cvv2: 987", "exp. [expiry] cvv2: [cvv]"},
		// social security numbers
		{"my ssn is 123-45-6789", "my ssn is [ssn]"},
		{"123-45-6789", "[ssn]"},
		{"078-05-1120 was printed on wallets", "[ssn] was printed on wallets"},
		{"SSN: 123 45 6789", "SSN: [ssn]"},
		{"social security number 123456789", "social security number [ssn]"},
		{"soc sec 123.45.6789", "soc sec [ssn]"},
		// IBANs
		{"DE89 3704 0044 0532 0130 00", "[iban ending 3000]"},
		{"IBAN: DE89370400440532013000.", "IBAN: [iban ending 3000]."},
		{"GB82 WEST 1234 5698 7654 32 please", "[iban ending 5432] please"},
		{"gb82west12345698765432", "[iban ending 5432]"},
		{"FR14 2004 1010 0505 0001 3M02 606", "[iban ending 2606]"},
		{"NL91ABNA0417164300", "[iban ending 4300]"},
		{"NO93 8601 1117 947", "[iban ending 7947]"},
		{"BE68 5390 0754 7034", "[iban ending 7034]"},
		{"CH93 0076 2011 6238 5295 7", "[iban ending 2957]"},
		{"IT60 X054 2811 1010 0000 0123 456", "[iban ending 3456]"},
		// everything at once
		{"Card 4111 1111 1111 1111 (exp 12/27, cvv 123), SSN 123-45-6789, IBAN DE89370400440532013000",
			"Card [card ending 1111] (exp [expiry], cvv [cvv]), SSN [ssn], IBAN [iban ending 3000]"},
	} {
		out, _ := (*redact.Redactor)(nil).Redact(tc.in)
		if out != tc.want {
			t.Errorf("Redact(%q)\n = %q\nwant %q", tc.in, out, tc.want)
		}
	}
}

// lookAlikes must come back exactly as they went in.
var lookAlikes = []string{
	// Luhn-invalid 16 digits in a network's range
	"4111 1111 1111 1112", "5555555555554445", "card 4242-4242-4242-4243",
	// order numbers
	"Order #114-3941689-8772232", "order 123456789012", "ORD-2026-000123", "ORD4111111111111111",
	// phone numbers, E.164 and national
	"+1 415 555 1234", "+14155551234", "(415) 555-1234", "415-555-1234", "415.555.1234",
	"+44 20 7946 0958", "020 7946 0958", "+49 151 23456787", "0049 151 23456787", "1-800-555-0199",
	// parcel tracking numbers: UPS, FedEx, USPS
	"1Z999AA10123456784", "1Z 999 AA1 01 2345 678 4", "1Z4111111111111111",
	"FedEx 7489 8227 8310", "FedEx 449044304137821", "9612019059803563050071",
	"9400 1118 9922 3100 0000 00", "9400111899223100000000", "9205 5000 0000 0000 0000 00",
	"0307 1790 0005 2348 3741",
	// dates, times, timestamps
	"2026-12-01", "2026-12-01T10:30:00.000Z", "2026-12-01 10:30:00", "12/27/2026", "27.12.2026",
	"expires 12/27/2026", "1733050200000", "1733050200000000000", "at 10:30 on 12/27",
	// amounts
	"$1,234.56", "4,111,111.11 USD", "1 234 567,89 €", "USD 4111111.11",
	// long numbers
	"12345678901234567890", "41111111111111111115", "411111111111111118",
	// other numbers
	"192.168.100.200", "v1.22.333", "room 123", "ext 1234", "flight LH 1234", "code 123", "pin 1234",
	"your security code is 482913", "I expect 12/27", "I don't know my cvv, call me at 415 555 1234",
	"ZIP 94103-1234", "the 3 cards ending 1111",
	// not social security numbers
	"000-12-3456", "666-12-3456", "912-34-5678", "123-00-4567", "123-45-0000", "123 45 6789", "123456789",
	"ssn 000-12-3456", "AB123-45-6789",
	// not IBANs: a wrong checksum, no such country, too short, glued to a word
	"DE89 3704 0044 0532 0130 01", "XX89370400440532013000", "DE8937040044053201300", "XDE89370400440532013000",
	// placeholders themselves
	"[card ending 1111] [cvv] [expiry] [ssn] [iban ending 3000] [redacted]",
}

func TestLookAlikesStay(t *testing.T) {
	for _, s := range lookAlikes {
		if out, c := (*redact.Redactor)(nil).Redact(s); out != s || c.Total() != 0 {
			t.Errorf("Redact(%q) = %q (%v), want it unchanged", s, out, c)
		}
	}
}

// The hard look-alikes hold a Luhn-valid digit string in a network's
// range, so they stay for a reason other than luck: a "+" (a phone
// number), letters glued to it (a parcel id), a length the network does
// not issue, or grouping in fours that makes it part of a longer number.
func TestHardLookAlikesAreLuhnValid(t *testing.T) {
	for _, tc := range []struct{ text, digits string }{
		{"+4915123456787", "4915123456787"},                 // E.164, Visa-shaped 13 digits
		{"1Z4111111111111111", "4111111111111111"},          // UPS-style shipper digits after 1Z
		{"9400 4111 1111 1111 1111 00", "4111111111111111"}, // inside a 22-digit tracking number
		{"41111111111111111115", "41111111111111111115"},    // 20 digits
		{"411111111111111118", "411111111111111118"},        // 18 digits: no Visa is that long
		{"1733050200000", "1733050200000"},                  // a Unix time in ms: no network starts with 1
		{"id " + withCheckDigit("123456789012345"), withCheckDigit("123456789012345")},
		{"ref " + withCheckDigit("700000000000000"), withCheckDigit("700000000000000")},
		{"card " + withCheckDigit("4111111111111111"), withCheckDigit("4111111111111111")}, // 17 digits
	} {
		if !luhnOK(tc.digits) {
			t.Fatalf("corpus: %s is not Luhn-valid", tc.digits)
		}
		if out, c := (*redact.Redactor)(nil).Redact(tc.text); out != tc.text {
			t.Errorf("Redact(%q) = %q (%v), want it unchanged", tc.text, out, c)
		}
	}
}

func TestRedactingTwiceChangesNothing(t *testing.T) {
	var texts []string
	for _, tc := range testCards {
		for _, f := range cardFormats(tc.number, tc.groups) {
			texts = append(texts, "a "+f+" 12/27 123 b", f+"-"+f, f+" "+f, f+f)
		}
	}
	texts = append(texts, lookAlikes...)
	texts = append(texts, "4111111111111111-123-45-6789", "cvv 123 456", "exp 12/27 12/28", "ssn 123-45-6789 123-45-6789")
	for _, s := range texts {
		once, _ := (*redact.Redactor)(nil).Redact(s)
		twice, c := (*redact.Redactor)(nil).Redact(once)
		if twice != once || c.Total() != 0 {
			t.Errorf("Redact(%q) = %q, again = %q (%v)", s, once, twice, c)
		}
	}
}

func TestTextWithoutDigitsIsUnchanged(t *testing.T) {
	for _, s := range []string{"", "hello", "Customer asked about the refund — merci, à bientôt", "cvv", "exp /", "DE IBAN", "日本語のテキスト"} {
		if out, c := (*redact.Redactor)(nil).Redact(s); out != s || c.Total() != 0 {
			t.Errorf("Redact(%q) = %q", s, out)
		}
	}
}

func TestCounts(t *testing.T) {
	_, c := (*redact.Redactor)(nil).Redact("4111111111111111 and 5555 5555 5555 4444 exp 12/27 cvv 123, ssn 123-45-6789, DE89370400440532013000")
	want := redact.Counts{}
	want[redact.Card], want[redact.Expiry], want[redact.CVV], want[redact.SSN], want[redact.IBAN] = 2, 1, 1, 1, 1
	if c != want {
		t.Errorf("counts %v, want %v", c, want)
	}
	if c.Total() != 6 || c.String() != "card=2 cvv=1 expiry=1 ssn=1 iban=1 pattern=0" {
		t.Errorf("Total %d, String %q", c.Total(), c.String())
	}
	var names []string
	for _, k := range redact.Kinds() {
		names = append(names, k.String())
	}
	if strings.Join(names, ",") != "card,cvv,expiry,ssn,iban,pattern" {
		t.Errorf("kinds %v", names)
	}
}

func TestOperatorPatterns(t *testing.T) {
	r, err := redact.New(`ACCT-\d{6}`, `(?i)passport\s*#?\s*[A-Z0-9]{9}`)
	if err != nil {
		t.Fatal(err)
	}
	out, c := r.Redact("acct ACCT-123456, Passport # X12345678, card 4111111111111111")
	if out != "acct [redacted], [redacted], card [card ending 1111]" || c[redact.Pattern] != 2 || c[redact.Card] != 1 {
		t.Errorf("got %q %v", out, c)
	}
	// a pattern may match text without digits
	if out, _ := r.Redact("passport ABCDEFGHI"); out != "[redacted]" {
		t.Errorf("got %q", out)
	}
	if again, c := r.Redact(out); again != out || c.Total() != 0 {
		t.Errorf("again %q %v", again, c)
	}
}

func TestBadPatternsAreRefused(t *testing.T) {
	for _, tc := range []struct{ pattern, why string }{
		{"(", "missing closing )"},
		{"", "empty"},
		{".*", "empty string"},
		{"a*|b", "empty string"},
		{`\w+`, "wholesale"},
		{`[a-z ]+`, "wholesale"},
		{`(?s).`, "wholesale"},
		{`\S+`, "wholesale"},
		{`[^0-9]+`, "wholesale"},
	} {
		err := redact.CheckPattern(tc.pattern)
		if err == nil || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("CheckPattern(%q) = %v, want %q", tc.pattern, err, tc.why)
		}
		if _, err := redact.New(`ok-\d+`, tc.pattern); err == nil || !strings.Contains(err.Error(), "pattern 2") {
			t.Errorf("New(..., %q) = %v, want it to name pattern 2", tc.pattern, err)
		}
	}
	for _, p := range []string{`ACCT-\d{6}`, `(?i)password:\s*\S+`, `order`} {
		if err := redact.CheckPattern(p); err != nil {
			t.Errorf("CheckPattern(%q) = %v", p, err)
		}
	}
}
