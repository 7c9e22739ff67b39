package daemon

import (
	"runtime/debug"

	"github.com/sticky-cc/sticky/cmd/internal/config"
)

// applyMemoryLimit sets the Go heap's soft limit from the config, unless
// GOMEMLIMIT (getenv) set one already, which Go applied at start. Without a
// limit the heap grows to twice what is live before a collection: at a
// million customers that is about 430 MiB of memtables, block cache and
// table builds live and 850 MiB of heap, which took the import's peak RSS
// over 1 GiB; with the default 640 MiB it stayed under 900 MiB for a few
// per cent more CPU in the collector. It returns the limit in force, in
// bytes (math.MaxInt64: none).
func applyMemoryLimit(cfg config.Config, getenv func(string) string) int64 {
	if getenv("GOMEMLIMIT") == "" && cfg.MemoryLimitMiB > 0 {
		debug.SetMemoryLimit(int64(cfg.MemoryLimitMiB) << 20)
	}
	return debug.SetMemoryLimit(-1)
}
