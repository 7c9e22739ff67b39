package core_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/sticky-cc/sticky/core"
)

func TestPIIIsMaskedInLogs(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("call", "ani", core.PII("+14155551234"), "email", core.PII("customer@example.com"), "short", core.PII("123"))
	out := buf.String()
	for _, leak := range []string{"4155551234", "customer@", "123\""} {
		if strings.Contains(out, leak) {
			t.Fatalf("log leaks %q: %s", leak, out)
		}
	}
	if !strings.Contains(out, "***1234") || !strings.Contains(out, "c***@example.com") {
		t.Fatalf("masked values missing: %s", out)
	}
}
