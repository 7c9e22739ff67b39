package store

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// Badger's cache-size warning is logged at debug level: it comes from how
// Badger charges uncompressed blocks, and no setting silences it. Other
// Badger warnings stay warnings.
func TestBadgerCacheWarningIsNotAnOperatorWarning(t *testing.T) {
	var buf bytes.Buffer
	l := badgerLogger{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	l.Warningf("%s might be too small. Metrics: %s\n", "Block cache", "hit: 1 miss: 9")
	l.Warningf("Cache life expectancy (in seconds): %+v\n", "histogram")
	l.Warningf("Truncate Needed. File %s size: %d Endoffset: %d", "000001.vlog", 10, 20)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "level=DEBUG") || !strings.Contains(lines[1], "level=DEBUG") || !strings.Contains(lines[2], "level=WARN") {
		t.Fatalf("log:\n%s", buf.String())
	}
}
