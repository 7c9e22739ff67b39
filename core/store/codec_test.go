package store

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestCodecRoundTrip(t *testing.T) {
	now := time.Date(2026, 2, 6, 15, 30, 0, 123456789, time.UTC)
	cases := []record{
		&Customer{Ref: "cust_1", CreatedAt: now, UpdatedAt: now, LastContactAt: now, LastChannel: "chat",
			Identifiers: []Identifier{{Kind: "phone", Value: "+14155551234", LinkedAt: now, Source: "phone"}, {Kind: "email", Value: "a@b.c"}},
			Intents:     []Intent{{Name: "refund", Status: "open", AttemptCount: 3, FirstRaisedAt: now, LastContactAt: now, LastChannel: "email"}},
			Variables:   []Variable{{Name: "a", Value: "b", Source: "chat", SetAt: now, ExpiresAt: now}},
			Recent:      []Interaction{{CallID: "c", Channel: "chat", EndedAt: now}}},
		&Customer{Ref: "empty"},
		&Variable{Name: "summary", Value: "ünïcode\nlines", Source: "email", SetAt: now, ExpiresAt: now.Add(time.Hour)},
		&Interaction{CallID: "c", Channel: "phone", StartedAt: now, EndedAt: now, Intent: "i", IntentStatus: "open", Summary: "s", DNIS: "5551000"},
		&Call{ID: "c", CustomerRef: "r", Channel: "phone", StartedAt: now, Identifiers: []Identifier{{Kind: "phone", Value: "+1"}},
			StartFingerprint: "fp", StartIdentity: []byte(`{"a":1}`), Ended: true, EndedAt: now, EndFingerprint: "e", EndResult: []byte(`{}`), ExpiresAt: now},
		&refList{"a", "b"},
	}
	for _, want := range cases {
		got := reflect.New(reflect.TypeOf(want).Elem()).Interface().(record)
		if err := unmarshal(marshal(want), got); err != nil {
			t.Fatalf("%T: %v", want, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%T round trip:\n got %+v\nwant %+v", want, got, want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(marshal(&Customer{Ref: "x", Identifiers: []Identifier{{Kind: "k"}}, Intents: []Intent{{Name: "n"}}}))
	f.Add(marshal(&Call{ID: "c", StartIdentity: []byte("{}")}))
	f.Add([]byte{1, 255, 255, 255, 255, 15})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, r := range []record{&Customer{}, &Call{}, &Variable{}, &Interaction{}, &refList{}} {
			_ = unmarshal(b, r) // must not panic or allocate without bound
		}
	})
}

// Calls written before MergeFingerprints existed end after ExpiresAt.
func TestCallWithoutMergeFingerprintsDecodes(t *testing.T) {
	c := &Call{ID: "c", CustomerRef: "r", Ended: true, EndFingerprint: "fp", EndResult: []byte("{}")}
	b := marshal(c)
	old := b[:len(b)-2] // the empty list is one byte (its count), the absent identity one more
	var got Call
	if err := unmarshal(old, &got); err != nil || got.ID != "c" || got.EndFingerprint != "fp" || got.MergeFingerprints != nil {
		t.Fatalf("old record: %+v %v", got, err)
	}
	c.MergeFingerprints = []string{"a", "b"}
	got = Call{}
	if err := unmarshal(marshal(c), &got); err != nil || len(got.MergeFingerprints) != 2 || got.MergeFingerprints[1] != "b" {
		t.Fatalf("new record: %+v %v", got, err)
	}
}

func TestWALSyncFindsTheMemtableLogs(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(Options{Dir: dir, MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *Txn) error { return tx.PutCall(Call{ID: "c", CustomerRef: "r"}) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Sync(); err != nil {
		t.Fatal(err)
	}
	w := db.syncer.wal
	if len(w.files) == 0 {
		t.Fatal("no memtable log was synced")
	}
	// The next memtable file (as Badger numbers them) is found without
	// listing the directory on every sync, and synced from then on.
	next := filepath.Join(dir, w.next)
	if err := os.WriteFile(next, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(next)
	before := len(w.files)
	if err := db.Sync(); err != nil {
		t.Fatal(err)
	}
	if len(w.files) != before+1 || w.files[filepath.Base(next)] == nil {
		t.Fatalf("the new memtable file %s is not synced: %v", filepath.Base(next), w.files)
	}
}
