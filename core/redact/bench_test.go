package redact_test

import (
	"strings"
	"testing"

	"github.com/sticky-cc/sticky/core/redact"
)

// A chat summary as the adapters make them (about 200 bytes), without
// digits, with ordinary digits (an order number, a date, an amount, a
// phone number) and with a card number, security code and expiry; and a
// 4 KiB variable value (the largest the engine takes) without digits.
var benchTexts = []struct{ name, text string }{
	{"clean", "Customer: I was charged twice for the same order and would like the duplicate refunded please / Agent: I have escalated this to billing, you will get an email when the refund is on its way (six messages)"},
	{"clean-4KiB", strings.Repeat("Customer asked about the refund for the duplicate charge and will call back. ", 54)[:4096]},
	{"digits", "Customer: order 114-3941689-8772232 from 2026-12-01 was charged $129.99 twice, call me on +1 415 555 1234 / Agent: refund of 129.99 issued, arrives by 12/05 (six messages)"},
	{"dirty", "Customer: my card 4111 1111 1111 1111 exp 12/27 cvv 123 was charged twice for order 114-3941689-8772232 / Agent: I have refunded the duplicate, it shows in 3-5 days (six messages)"},
}

func BenchmarkRedact(b *testing.B) {
	for _, tc := range benchTexts {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(tc.text)))
			b.ReportAllocs()
			for b.Loop() {
				(*redact.Redactor)(nil).Redact(tc.text)
			}
		})
	}
	r, err := redact.New(`ACCT-\d{6}`)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("clean-with-pattern", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r.Redact(benchTexts[0].text)
		}
	})
}
