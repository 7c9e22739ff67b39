package daemon

import (
	"runtime/debug"
	"testing"

	"github.com/sticky-cc/sticky/cmd/internal/config"
)

// The configured soft limit applies unless GOMEMLIMIT set one; 0 leaves
// the limit alone.
func TestApplyMemoryLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	cfg := config.Defaults()
	none := func(string) string { return "" }

	if got := applyMemoryLimit(cfg, none); got != 640<<20 {
		t.Fatalf("default: limit %d, want 640 MiB", got)
	}
	cfg.MemoryLimitMiB = 100
	if got := applyMemoryLimit(cfg, func(k string) string {
		if k == "GOMEMLIMIT" {
			return "2GiB"
		}
		return ""
	}); got != 640<<20 {
		t.Fatalf("with GOMEMLIMIT set: limit %d, want the one in force (640 MiB) kept", got)
	}
	if got := applyMemoryLimit(cfg, none); got != 100<<20 {
		t.Fatalf("100 MiB: limit %d", got)
	}
	cfg.MemoryLimitMiB = 0
	if got := applyMemoryLimit(cfg, none); got != 100<<20 {
		t.Fatalf("0 changed the limit to %d", got)
	}
}
