package store

import (
	"expvar"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/dgraph-io/badger/v4/y"
)

// Health is what Badger says about itself at one moment: how much is on
// each level of the LSM tree, how far compaction is behind, how the block
// cache fares and how much disk is left. A store falling behind shows it
// here first (L0 tables piling up towards NumLevelZeroTablesStall, level
// scores above 1) before writes stall and reads slow down.
type Health struct {
	// Levels are the LSM levels, L0 first.
	Levels []LevelHealth
	// L0Tables is the number of tables on level 0. Flushed memtables land
	// there; past L0StallTables, writes wait for compaction.
	L0Tables      int
	L0StallTables int
	// LSMBytes is the size of every table on every level.
	LSMBytes int64
	// VlogBytes is the disk space the value-log files use (their allocated
	// blocks: Badger sizes an open value log at twice its limit, sparsely).
	VlogBytes int64
	// CompactingTables is the number of tables the running compactions
	// are merging (Badger counts tables, not compactions); 0 when none runs.
	CompactingTables int64
	// Block cache lookups since the store opened. HitRatio is hits over
	// lookups, 0 before the first.
	BlockCacheHits, BlockCacheMisses uint64
	BlockCacheHitRatio               float64
	// DiskFreeBytes is the space left for this user on the data directory's
	// file system; -1 in memory or when it cannot be read.
	DiskFreeBytes int64
}

// LevelHealth is one level of the LSM tree.
type LevelHealth struct {
	Level  int
	Tables int
	Bytes  int64
	// TargetBytes is the size Badger aims for at this level; Score is how
	// far over its target the level is (compaction runs above 1).
	TargetBytes int64
	Score       float64
}

// compactingTables is Badger's own process-wide count of tables in running
// compactions (maintained while its metrics are enabled, see Open).
var compactingTables = func() *expvar.Int {
	v, _ := expvar.Get(y.BADGER_METRIC_PREFIX + "compaction_current_num_lsm").(*expvar.Int)
	return v
}()

// Health reads the store's figures. It takes a few level locks and reads
// the data directory's listing, so it is cheap enough for every scrape.
func (s *DB) Health() Health {
	o := s.bdb.Opts()
	h := Health{L0StallTables: o.NumLevelZeroTablesStall, DiskFreeBytes: -1}
	for _, l := range s.bdb.Levels() {
		h.Levels = append(h.Levels, LevelHealth{Level: l.Level, Tables: l.NumTables, Bytes: l.Size, TargetBytes: l.TargetSize, Score: l.Score})
		h.LSMBytes += l.Size
		if l.Level == 0 {
			h.L0Tables = l.NumTables
		}
	}
	if compactingTables != nil {
		h.CompactingTables = compactingTables.Value()
	}
	if m := s.bdb.BlockCacheMetrics(); m != nil {
		h.BlockCacheHits, h.BlockCacheMisses = m.Hits(), m.Misses()
		if n := h.BlockCacheHits + h.BlockCacheMisses; n > 0 {
			h.BlockCacheHitRatio = float64(h.BlockCacheHits) / float64(n)
		}
	}
	if o.InMemory {
		return h
	}
	h.VlogBytes = allocated(o.ValueDir, ".vlog")
	var st syscall.Statfs_t
	if err := syscall.Statfs(o.Dir, &st); err == nil {
		h.DiskFreeBytes = int64(st.Bavail) * st.Bsize
	}
	return h
}

// allocated is the disk space used by the files in dir whose names end in
// suffix: blocks, not lengths, since Badger preallocates its logs sparsely.
func allocated(dir, suffix string) int64 {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var n int64
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), suffix) {
			continue
		}
		fi, err := os.Stat(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // removed meanwhile (value-log GC)
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			n += st.Blocks * 512
		} else {
			n += fi.Size()
		}
	}
	return n
}
