package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// DefaultMinFreeBytes is the free space below which writes are refused.
// Badger writes its write-ahead log through a memory map: on a full disk a
// write into that map kills the process with SIGBUS instead of returning an
// error. Refusing writes while there is still room for a memtable flush
// turns "disk full" into a clean 503 and keeps what is already saved.
const DefaultMinFreeBytes = 256 << 20

// DiskError says why the store refuses writes; it is an ErrUnavailable.
type DiskError struct{ Problem string }

func (e *DiskError) Error() string        { return ErrUnavailable.Error() + ": " + e.Problem }
func (e *DiskError) Is(target error) bool { return target == ErrUnavailable }

// diskGuard watches the store directory: enough free space, and still
// writable (not remounted read-only, not removed). Update consults it before
// every write; a background loop and every failed commit refresh it.
type diskGuard struct {
	dir      string
	minFree  uint64
	every    time.Duration
	problem  atomic.Pointer[string] // nil: healthy
	kick     chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

func newDiskGuard(dir string, minFree uint64, every time.Duration) *diskGuard {
	g := &diskGuard{dir: dir, minFree: minFree, every: every,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	g.check()
	go g.loop()
	return g
}

func (g *diskGuard) loop() {
	defer close(g.done)
	t := time.NewTicker(g.every)
	defer t.Stop()
	for {
		select {
		case <-g.stop:
			return
		case <-t.C:
		case <-g.kick:
		}
		g.check()
	}
}

// recheck asks for a check soon (after a failed commit, say).
func (g *diskGuard) recheck() {
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

func (g *diskGuard) close() {
	g.stopOnce.Do(func() { close(g.stop) })
	<-g.done
}

// err is nil while the directory is healthy, else an ErrUnavailable that
// says what is wrong.
func (g *diskGuard) err() error {
	if p := g.problem.Load(); p != nil {
		return &DiskError{Problem: *p}
	}
	return nil
}

func (g *diskGuard) check() {
	problem := g.probe()
	if problem == "" {
		g.problem.Store(nil)
		return
	}
	g.problem.Store(&problem)
}

func (g *diskGuard) probe() string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(g.dir, &st); err != nil {
		return "cannot inspect the data directory (" + err.Error() + ")"
	}
	if st.Flags&0x1 != 0 { // ST_RDONLY
		return "the data directory is on a read-only file system"
	}
	if free := st.Bavail * uint64(st.Bsize); free < g.minFree {
		return fmt.Sprintf("the disk holding the data directory is full (%d MiB free, at least %d MiB needed)", free>>20, g.minFree>>20)
	}
	p := filepath.Join(g.dir, ".sticky-write-probe")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		if errors.Is(err, syscall.EROFS) {
			return "the data directory is on a read-only file system"
		}
		return "the data directory is not writable"
	}
	_, werr := f.Write([]byte{1})
	cerr := f.Close()
	os.Remove(p)
	if werr != nil || cerr != nil {
		return "the data directory is not writable"
	}
	return ""
}
