package store

import (
	"os"
	"path/filepath"
	"testing"
)

// A kill between Badger creating a memtable or value-log file and sizing
// it leaves a 0-byte file; the store must still open, with its data.
func TestOpenAfterACrashLeftEmptyLogFiles(t *testing.T) {
	for _, name := range []string{"00099.mem", "000099.vlog"} {
		t.Run(name, func(t *testing.T) { openAfterEmptyLog(t, name) })
	}
}

func openAfterEmptyLog(t *testing.T, name string) {
	dir := t.TempDir()
	db, err := Open(Options{Dir: dir, MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *Txn) error { return tx.PutCall(Call{ID: "kept", CustomerRef: "r"}) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err = Open(Options{Dir: dir, MinFreeBytes: -1})
	if err != nil {
		t.Fatalf("open after a crash left empty log files: %v", err)
	}
	defer db.Close()
	var found bool
	err = db.View(func(tx *Txn) (err error) {
		_, found, err = tx.Call("kept")
		return err
	})
	if err != nil || !found {
		t.Fatalf("the write before the crash: found=%v err=%v", found, err)
	}
	if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
		t.Errorf("%s is still there (%v)", name, err)
	}
}
