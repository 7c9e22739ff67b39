package store

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// walSyncer makes committed writes durable by fsyncing Badger's memtable
// write-ahead logs (*.mem) directly.
//
// Badger's own DB.Sync holds the database lock for reading while it
// fsyncs; the writer goroutine then queues for the lock exclusively, and
// Go's RWMutex makes every new reader (each Get of a Start) wait behind
// that writer: under load a Start stalled for as long as a disk sync took
// (the ESL bridge measured its p99 going from 2 ms to 470 ms). fsync on a
// file flushes the page cache of the file, including pages dirtied through
// Badger's shared mmap, exactly like Badger's msync, without that lock.
//
// Values are far below Badger's value threshold (1 MiB), so everything
// lives in the memtable logs; the value log is never written.
//
// Listing the directory on every group sync cost a ReadDir of a directory
// holding every table (hundreds at a million customers) on the hot path
// of every synced end. Badger numbers memtable files in sequence
// (00001.mem, 00002.mem, ...), so the syncer keeps the ones it knows open
// and lists the directory again only when the next number appears.
type walSyncer struct {
	dir   string
	mu    sync.Mutex
	files map[string]*os.File
	next  string // the memtable file Badger creates next
}

func (w *walSyncer) sync() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.files == nil || w.exists(w.next) {
		if err := w.relist(); err != nil {
			return err
		}
	}
	for _, f := range w.files {
		// A file Badger has flushed to a table and removed meanwhile
		// still syncs through its open handle, harmlessly.
		if err := f.Sync(); err != nil {
			return err
		}
	}
	return nil
}

func (w *walSyncer) exists(name string) bool {
	_, err := os.Lstat(filepath.Join(w.dir, name))
	return err == nil
}

// relist opens the memtable files that appeared, closes those that went,
// and makes the names of new ones durable.
func (w *walSyncer) relist() error {
	ents, err := os.ReadDir(w.dir)
	if err != nil {
		return err
	}
	if w.files == nil {
		w.files = map[string]*os.File{}
	}
	seen := map[string]bool{}
	maxID, added := 0, false
	for _, e := range ents {
		name := e.Name()
		id, ok := memID(name)
		if !ok {
			continue
		}
		seen[name] = true
		maxID = max(maxID, id)
		if w.files[name] != nil {
			continue
		}
		f, err := os.Open(filepath.Join(w.dir, name))
		if err != nil {
			if os.IsNotExist(err) {
				continue // flushed to a table (synced by Badger) meanwhile
			}
			return err
		}
		w.files[name] = f
		added = true
	}
	for name, f := range w.files {
		if !seen[name] {
			f.Close()
			delete(w.files, name)
		}
	}
	w.next = fmt.Sprintf("%05d.mem", maxID+1)
	if added {
		// A memtable created since the last sync: make its name durable.
		d, err := os.Open(w.dir)
		if err != nil {
			return err
		}
		err = d.Sync()
		d.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// close releases the open memtable files.
func (w *walSyncer) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for name, f := range w.files {
		f.Close()
		delete(w.files, name)
	}
}

func memID(name string) (int, bool) {
	base, ok := strings.CutSuffix(name, ".mem")
	if !ok {
		return 0, false
	}
	id, err := strconv.Atoi(base)
	return id, err == nil && id >= 0
}
