package store

import "testing"

// Closing twice (a deferred Close after an explicit one) returns what the
// first returned; it used to panic closing a channel twice.
func TestCloseTwice(t *testing.T) {
	db, err := Open(Options{Dir: t.TempDir(), MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("a second Close: %v", err)
	}
}
