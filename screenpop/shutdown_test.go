package screenpop_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/sticky-cc/sticky/screenpop"
)

// Stopping the service drains its own connection; that is not an outage and
// must not be logged as one (it was, as "disconnected from NATS;
// reconnecting", at the end of every orderly shutdown).
func TestShutdownIsNotReportedAsAnOutage(t *testing.T) {
	var logs syncBuffer
	e, _ := newEngine(t, time.Date(2026, 1, 26, 14, 0, 0, 0, time.UTC))
	svc, err := screenpop.Start(context.Background(), screenpop.Options{Calls: e, Addr: "127.0.0.1:0", WSAddr: "127.0.0.1:0",
		StoreDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	waitReady(t, svc)
	svc.Close()
	out := logs.String()
	if !strings.Contains(out, "screen-pops stopped") || strings.Contains(out, "disconnected from NATS") {
		t.Fatalf("log of an orderly stop:\n%s", out)
	}
}
