package store

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// removeEmptyLogs deletes the empty (0-byte) memtable and value-log files a
// crash can leave in dir, before Badger opens it.
//
// Badger creates such a file first and sizes it after; killed in between,
// it leaves a 0-byte file, and its Open then fails with "while opening
// memtables ... Create a new file" until someone deletes it
// (dgraph-io/badger#2207, fix proposed in #2331, not released in v4.9.6).
// The crash test met this after 1 of 20 kills. An empty file holds no
// writes, so removing it loses nothing.
func removeEmptyLogs(dir string, log *slog.Logger) error {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list %q: %w", dir, err)
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !(strings.HasSuffix(name, ".mem") || strings.HasSuffix(name, ".vlog")) {
			continue
		}
		info, err := e.Info()
		if err != nil || info.Size() != 0 {
			continue
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("remove the empty %s left by a crash: %w", name, err)
		}
		log.Warn("removed an empty log file left by a crash", "file", name)
	}
	return nil
}
