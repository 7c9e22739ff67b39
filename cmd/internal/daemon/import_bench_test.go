package daemon

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sticky-cc/sticky/cmd/internal/config"
)

// BenchmarkImportMillion imports a generated CRM export of 1,000,000 rows
// (STICKY_IMPORT_BENCH_ROWS to change it) into a fresh store on disk and
// prints rows per second, the process's peak RSS and the load average.
// Target: under 2 minutes and 1 GiB on 2 cores:
//
//	go test -run '^$' -bench ImportMillion -benchtime 1x -cpu 2 ./cmd/internal/daemon/
func BenchmarkImportMillion(b *testing.B) {
	rows := 1_000_000
	if v := os.Getenv("STICKY_IMPORT_BENCH_ROWS"); v != "" {
		rows, _ = strconv.Atoi(v)
	}
	// as importCommand does: the configured soft limit of the heap
	// (GOMEMLIMIT=off measures without one)
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	limit := applyMemoryLimit(config.Defaults(), os.Getenv)
	dir := b.TempDir()
	file := filepath.Join(dir, "crm.csv")
	writeBenchCSV(b, file, rows)
	var before syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	for i := 0; i < b.N; i++ {
		data := filepath.Join(dir, fmt.Sprintf("data%d", i))
		cfg, o := importConfig(b, data, file, "-progress-every", "10s")
		var out strings.Builder
		began := time.Now()
		b.ResetTimer()
		code := runImport(context.Background(), "ari-bridge import", cfg, o, &out)
		took := time.Since(began)
		b.StopTimer()
		if code != 0 || !strings.Contains(out.String(), fmt.Sprintf("%d imported", rows)) {
			b.Fatalf("exit %d: %s", code, out.String())
		}
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		load, _ := os.ReadFile("/proc/loadavg")
		b.ReportMetric(float64(rows)/took.Seconds(), "rows/s")
		b.ReportMetric(float64(ru.Maxrss)/1024, "peak-RSS-MiB")
		// CPU time says what the import costs when the machine is shared:
		// wall time then measures the other tenants too.
		cpu := time.Duration(ru.Utime.Nano()+ru.Stime.Nano()-before.Utime.Nano()-before.Stime.Nano()) * time.Nanosecond
		fmt.Fprintf(os.Stderr, "import of %d rows: %s, %.0f rows/s, peak RSS %d MiB (targets: < 2m, < 1024 MiB; Go heap limit %s); CPU %s (%.0f%% of 2 cores); load average %s",
			rows, took.Round(time.Millisecond), float64(rows)/took.Seconds(), ru.Maxrss/1024, heapLimit(limit), cpu.Round(time.Millisecond),
			100*cpu.Seconds()/took.Seconds()/2, load)
		syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	}
}

// writeBenchCSV writes rows customers the way a CRM exports them: an id,
// a name, a national and an international number, an email, an account,
// a plan and sometimes an open intent.
func writeBenchCSV(tb testing.TB, path string, rows int) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	io.WriteString(w, "Customer ID,Full Name,Mobile,Work Phone,E-Mail Address,Account,Plan,Open Intents\n")
	plans := []string{"bronze", "silver", "gold"}
	for i := range rows {
		intent := ""
		if i%10 == 0 {
			intent = "billing_inquiry"
		}
		fmt.Fprintf(w, "C-%d,Customer %d,(%03d) 555-%04d,+1 %03d 556 %04d,customer%d@example.com,A-%d,%s,%s\n",
			i, i, 200+i/10000%800, i%10000, 200+i/10000%800, i%10000, i, i, plans[i%3], intent)
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	f.Close()
}

func heapLimit(b int64) string {
	if b == math.MaxInt64 {
		return "none"
	}
	return strconv.FormatInt(b>>20, 10) + " MiB"
}
