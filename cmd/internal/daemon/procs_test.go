package daemon

import (
	"runtime"
	"testing"

	"github.com/sticky-cc/sticky/cmd/internal/config"
)

// The minimum raises GOMAXPROCS, never lowers it, and leaves a GOMAXPROCS
// from the environment alone.
func TestApplyMinProcs(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(before) })
	none := func(string) string { return "" }
	cfg := config.Defaults()

	runtime.GOMAXPROCS(2)
	if got := applyMinProcs(cfg, none); got != 8 || runtime.GOMAXPROCS(0) != 8 {
		t.Fatalf("default on 2: %d in force, GOMAXPROCS %d; want 8", got, runtime.GOMAXPROCS(0))
	}
	runtime.GOMAXPROCS(2)
	if got := applyMinProcs(cfg, func(k string) string {
		if k == "GOMAXPROCS" {
			return "2"
		}
		return ""
	}); got != 2 || runtime.GOMAXPROCS(0) != 2 {
		t.Fatalf("with GOMAXPROCS=2 set: %d in force, GOMAXPROCS %d; want 2 kept", got, runtime.GOMAXPROCS(0))
	}
	runtime.GOMAXPROCS(12)
	if got := applyMinProcs(cfg, none); got != 12 || runtime.GOMAXPROCS(0) != 12 {
		t.Fatalf("12 already: %d in force, GOMAXPROCS %d; want 12 kept", got, runtime.GOMAXPROCS(0))
	}
	cfg.MinGoProcs = 0
	runtime.GOMAXPROCS(2)
	if got := applyMinProcs(cfg, none); got != 2 {
		t.Fatalf("0: %d in force, want Go's 2 kept", got)
	}
}
