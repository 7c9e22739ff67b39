// Package store keeps Sticky's customers, identifiers, variables, history and
// calls in Badger. It owns the key layout; the engine in package core owns the rules.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// ErrUnavailable wraps every failure to read or write the underlying store
// (disk full, read-only directory, closed database), so callers can answer
// "try again later" instead of pretending a write happened.
var ErrUnavailable = errors.New("store unavailable")

// Options configures Open.
type Options struct {
	Dir string
	// InMemory keeps everything in memory (tests and benchmarks only).
	InMemory bool
	// LowMemory shrinks Badger's memtables and block cache (tests that
	// run several stores in one process, under the race detector).
	LowMemory bool
	// Compression of the store's table blocks: "snappy" (the default
	// when empty), "zstd" or "none". Tables keep the compression they
	// were written with, so a store may be reopened with another. Tests
	// that grep the files for erased or redacted data use "none": a
	// compressed block would hide the text either way.
	Compression string
	// EncryptionKey turns on Badger's encryption at rest (16, 24 or 32 bytes).
	EncryptionKey []byte
	Logger        *slog.Logger
	// MaxConflictRetries bounds how often Update re-runs a transaction that
	// lost an optimistic-concurrency race. Default 16.
	MaxConflictRetries int
	// MinFreeBytes: writes are refused (ErrUnavailable) while the disk has
	// less free space than this. Default DefaultMinFreeBytes; negative: no
	// check.
	MinFreeBytes int64
	// DiskCheckEvery is how often the directory's free space and
	// writability are checked. Default 1s.
	DiskCheckEvery time.Duration
}

// DB is an open store.
type DB struct {
	bdb     *badger.DB
	log     *slog.Logger
	retries int
	syncer  syncer
	guard   *diskGuard // nil in memory
	drainer *builderDrainer
	readers readers // open transactions, for Scrub

	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating if needed) the store in opts.Dir.
func Open(opts Options) (*DB, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Compression != "" && !slices.Contains(Compressions, opts.Compression) {
		return nil, fmt.Errorf("store compression %q: must be one of %s", opts.Compression, strings.Join(Compressions, ", "))
	}
	bo := badger.DefaultOptions(opts.Dir).
		WithLogger(badgerLogger{opts.Logger}).
		WithNumVersionsToKeep(1).
		// Writes reach the memtable WAL (an mmap'd file) before Commit
		// returns, so they survive a process kill; Sync makes them survive
		// power loss too, and End calls it (grouped) before answering.
		WithSyncWrites(false).
		// Badger's metrics on (issue 17): Health reads its count of tables
		// in running compactions, which Badger keeps only with them.
		WithMetricsEnabled(true).
		// Issue 17, measured at a million customers on two cores: the
		// tail went where compactions wrote. Snappy blocks halve the
		// store (2.4 GiB to 1 GiB), so compactions copy and msync half
		// the bytes and the page cache holds the whole store in half the
		// memory. Compaction's share of the CPU stayed about the same
		// (compressing instead of copying), which these figures do not
		// separate.
		// Decompressed blocks are kept in a 64 MiB block cache.
		WithCompression(compressionOf(opts.Compression)).
		WithBlockCacheSize(64 << 20).
		// Three 32 MiB memtables instead of five of 64 MiB: each one is
		// an arena in the Go heap, and flushing one builds a table of its
		// size in memory first.
		WithMemTableSize(32 << 20).
		WithNumMemtables(3).
		// Tables of 4 MiB on every level (Badger grows them 2x a level,
		// to 64 MiB at L6): a compaction builds each output table in
		// memory before writing it, and writes it in one msync, so big
		// tables meant hundreds of MiB of heap and long bursts of writes
		// that synced ends queued behind.
		WithBaseTableSize(4 << 20).
		WithNumCompactors(2)
	bo.TableSizeMultiplier = 1
	if opts.InMemory {
		bo = bo.WithInMemory(true).WithDir("").WithValueDir("")
	}
	if opts.LowMemory {
		bo = bo.WithMemTableSize(8 << 20).WithBlockCacheSize(8 << 20).WithNumMemtables(2)
	}
	if len(opts.EncryptionKey) > 0 {
		bo = bo.WithEncryptionKey(opts.EncryptionKey).WithIndexCacheSize(64 << 20)
	}
	if !opts.InMemory {
		if err := removeEmptyLogs(opts.Dir, opts.Logger); err != nil {
			return nil, fmt.Errorf("open store in %q: %w", opts.Dir, err)
		}
	}
	bdb, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("open store in %q: %w", opts.Dir, err)
	}
	s := &DB{bdb: bdb, log: opts.Logger, retries: opts.MaxConflictRetries}
	if s.retries <= 0 {
		s.retries = 16
	}
	s.syncer.init(bdb)
	if p := builderPool(bdb); p != nil {
		s.drainer = startBuilderDrainer(p, builderDrainEvery)
	} else {
		opts.Logger.Warn("this Badger keeps its table builders' buffers where the store cannot release them; the heap may hold hundreds of MiB more")
	}
	if !opts.InMemory {
		s.syncer.wal = &walSyncer{dir: opts.Dir}
	}
	if !opts.InMemory && opts.MinFreeBytes >= 0 {
		if opts.MinFreeBytes == 0 {
			opts.MinFreeBytes = DefaultMinFreeBytes
		}
		if opts.DiskCheckEvery <= 0 {
			opts.DiskCheckEvery = time.Second
		}
		s.guard = newDiskGuard(opts.Dir, uint64(opts.MinFreeBytes), opts.DiskCheckEvery)
		if err := s.guard.err(); err != nil {
			opts.Logger.Warn("the store opened but refuses writes until this is fixed", "problem", err)
		}
	}
	if err := s.markEmptyIndexed(); err != nil {
		opts.Logger.Warn("could not mark the new store's expiry index; its first sweep reads every record", "err", err)
	}
	return s, nil
}

// Close flushes and closes the store. Closing it again returns what the
// first Close returned.
func (s *DB) Close() error {
	s.closeOnce.Do(func() {
		s.drainer.close()
		if s.guard != nil {
			s.guard.close()
		}
		if s.syncer.wal != nil {
			s.syncer.wal.close()
		}
		s.closeErr = s.bdb.Close()
	})
	return s.closeErr
}

// Writable says whether writes are accepted now, and if not, why.
func (s *DB) Writable() error {
	if s.bdb.IsClosed() {
		return fmt.Errorf("%w: the store is closed", ErrUnavailable)
	}
	if s.guard != nil {
		return s.guard.err()
	}
	return nil
}

// Badger exposes the underlying database for backup and restore.
func (s *DB) Badger() *badger.DB { return s.bdb }

// View runs fn in a read-only transaction.
func (s *DB) View(fn func(*Txn) error) error {
	defer s.readers.leave(s.readers.enter())
	return s.bdb.View(func(bt *badger.Txn) error { return fn(&Txn{bt: bt}) })
}

// Update runs fn in a read-write transaction and commits it, re-running fn
// from scratch when Badger reports a conflict with a concurrent writer. fn
// must therefore have no side effects outside the transaction.
func (s *DB) Update(fn func(*Txn) error) error {
	var err error
	for range s.retries {
		err = s.update(fn)
		if !errors.Is(err, badger.ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("%w: too much contention: %v", ErrUnavailable, err)
}

func (s *DB) update(fn func(*Txn) error) error {
	if s.guard != nil {
		if err := s.guard.err(); err != nil {
			return err
		}
	}
	defer s.readers.leave(s.readers.enter())
	bt := s.bdb.NewTransaction(true)
	defer bt.Discard()
	t := &Txn{bt: bt, writes: true}
	if err := fn(t); err != nil {
		return err
	}
	if err := bt.Commit(); err != nil {
		if errors.Is(err, badger.ErrConflict) {
			return err
		}
		if s.guard != nil {
			s.guard.recheck()
		}
		return fmt.Errorf("%w: commit: %v", ErrUnavailable, err)
	}
	return nil
}

// Sync makes every committed write durable on disk. Concurrent callers share
// one fsync (group commit), so many writers pay for few syncs.
func (s *DB) Sync() error { return s.syncer.sync() }

// RunGC runs Badger's value-log garbage collection until ctx ends.
func (s *DB) RunGC(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for s.bdb.RunValueLogGC(0.5) == nil {
			}
		}
	}
}

// syncer coalesces concurrent Sync calls: whoever finds no sync running
// becomes the leader and syncs on behalf of everyone registered so far.
type syncer struct {
	db        *badger.DB
	wal       *walSyncer // nil: Badger's own Sync (in memory)
	mu        sync.Mutex
	cond      *sync.Cond
	requested uint64
	done      uint64
	running   bool
	errGen    uint64
	err       error
}

func (y *syncer) init(db *badger.DB) {
	y.db = db
	y.cond = sync.NewCond(&y.mu)
}

func (y *syncer) sync() error {
	y.mu.Lock()
	defer y.mu.Unlock()
	y.requested++
	mine := y.requested
	for y.done < mine {
		if y.running {
			y.cond.Wait()
			continue
		}
		y.running = true
		target := y.requested
		y.mu.Unlock()
		var err error
		if y.wal != nil {
			err = y.wal.sync()
		} else {
			err = y.db.Sync()
		}
		y.mu.Lock()
		y.running = false
		y.done = target
		if err != nil {
			y.errGen, y.err = target, err
		}
		y.cond.Broadcast()
	}
	if y.err != nil && y.errGen >= mine {
		return fmt.Errorf("%w: sync: %v", ErrUnavailable, y.err)
	}
	return nil
}

type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) { b.l.Error("badger: " + fmt.Sprintf(f, a...)) }
func (b badgerLogger) Warningf(f string, a ...any) {
	// Badger's minute-by-minute "Block cache might be too small" (and the
	// histogram after it) is about its own accounting, not the cache size:
	// with uncompressed tables a cached block is a slice of the table's
	// mmap, and Badger charges it the slice's capacity, which runs to the
	// end of the table (megabytes per 4 KiB block). Raising the size does
	// not silence it, so it is kept out of the operator's warnings.
	if strings.Contains(f, "might be too small") || strings.HasPrefix(f, "Cache life expectancy") {
		b.l.Debug("badger: " + strings.TrimSpace(fmt.Sprintf(f, a...)))
		return
	}
	b.l.Warn("badger: " + fmt.Sprintf(f, a...))
}
func (b badgerLogger) Infof(string, ...any)  {}
func (b badgerLogger) Debugf(string, ...any) {}

// Compressions are the values Options.Compression takes.
var Compressions = []string{"snappy", "zstd", "none"}

func compressionOf(name string) options.CompressionType {
	switch name {
	case "none":
		return options.None
	case "zstd":
		return options.ZSTD
	}
	return options.Snappy
}
