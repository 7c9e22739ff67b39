package daemon

import (
	"runtime"

	"github.com/sticky-cc/sticky/cmd/internal/config"
)

// applyMinProcs raises GOMAXPROCS to the configured minimum, unless the
// GOMAXPROCS environment variable (getenv) chose a number, and returns the
// number in force.
//
// Issue 17, measured on two cores: after each memtable flush Badger
// compacts L0 into L5 and L5 into L6, and every compaction runs its key
// ranges and table builds in goroutines of their own, which are busy for
// hundreds of milliseconds each. With two Go processors they held both for
// seconds at a time, Go's scheduler gives them 10 ms slices, and the
// requests due meanwhile queued behind them: the mixed load's p99 was
// 107-141 ms at 100,000 customers, every slow request inside such an
// episode. With more processors than cores the kernel's scheduler shares
// the cores between their threads, and a request woken from the network
// runs within its much shorter slices: 26 ms at 8 processors. Go's own
// default (the cores the process may use) stands where it is at least the
// minimum. The bridges apply it; the import does not, as its figures
// (issue 16) were measured with Go's default.
func applyMinProcs(cfg config.Config, getenv func(string) string) int {
	n := runtime.GOMAXPROCS(0)
	if getenv("GOMAXPROCS") == "" && cfg.MinGoProcs > n {
		runtime.GOMAXPROCS(cfg.MinGoProcs)
		n = cfg.MinGoProcs
	}
	return n
}
