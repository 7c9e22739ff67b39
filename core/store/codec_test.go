package store

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
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
		// The sweep's projections must not panic either, and must agree
		// with a full decode wherever that succeeds.
		at, err := callExpiry(b)
		var c Call
		started, ident, serr := callStart(b)
		if unmarshal(b, &c) == nil {
			if err != nil || !at.Equal(c.ExpiresAt) {
				t.Errorf("callExpiry %v %v, the decoder %v", at, err, c.ExpiresAt)
			}
			if serr != nil || !started.Equal(c.StartedAt) || string(ident) != string(c.StartIdentity) {
				t.Errorf("callStart %v %q %v, the decoder %v %q", started, ident, serr, c.StartedAt, c.StartIdentity)
			}
		}
		now := time.Unix(1_800_000_000, 0)
		expired := func(t time.Time) bool { return !t.IsZero() && t.Before(now) }
		found, err := customerVarExpiring(b, expired)
		var cu Customer
		if unmarshal(b, &cu) == nil {
			want := slices.ContainsFunc(cu.Variables, func(v Variable) bool { return expired(v.ExpiresAt) })
			if err != nil || found != want {
				t.Errorf("customerVarExpiring %v %v, the decoder %v", found, err, want)
			}
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

// The sweep's projections read the same expiry times as the full
// decoders, for records with every field set, with none, and for calls
// written before the later fields existed.
func TestExpiryProjectionsMatchTheDecoders(t *testing.T) {
	at := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	ids := []Identifier{{Kind: "ani", Value: "+14155550100", LinkedAt: at, Source: "call"}, {Kind: "email", Value: "a@example.test"}}
	calls := []*Call{
		{},
		{ID: "c1", CustomerRef: "r", Channel: "voice", StartedAt: at, Identifiers: ids, DNIS: "+18005550100",
			StartFingerprint: "sf", StartIdentity: []byte(`{"level":"high"}`), Ended: true, EndedAt: at.Add(time.Minute),
			EndFingerprint: "ef", EndResult: []byte(`{"x":1}`), ExpiresAt: at.Add(30 * 24 * time.Hour),
			MergeFingerprints: []string{"m1", "m2"}},
		{ID: "c2", ExpiresAt: at},
	}
	for i, c := range calls {
		b := marshal(c)
		for _, rec := range [][]byte{b, b[:len(b)-2]} { // the second as written before MergeFingerprints
			got, err := callExpiry(rec)
			if err != nil || !got.Equal(c.ExpiresAt) {
				t.Errorf("call %d: projection gives %v %v, want %v", i, got, err, c.ExpiresAt)
			}
			started, ident, err := callStart(rec)
			if err != nil || !started.Equal(c.StartedAt) || string(ident) != string(c.StartIdentity) {
				t.Errorf("call %d: start projection gives %v %q %v", i, started, ident, err)
			}
		}
	}
	vars := func(exp ...time.Time) []Variable {
		var vs []Variable
		for j, e := range exp {
			vs = append(vs, Variable{Name: fmt.Sprint("v", j), Value: "x", Source: "chat", SetAt: at, ExpiresAt: e})
		}
		return vs
	}
	now := at.Add(time.Hour)
	expired := func(t time.Time) bool { return !t.IsZero() && t.Before(now) }
	customers := []*Customer{
		{},
		{Ref: "r", CreatedAt: at, UpdatedAt: at, LastContactAt: at, LastChannel: "chat", Identifiers: ids,
			Intents:   []Intent{{Name: "refund", Status: "open", AttemptCount: 2, FirstRaisedAt: at, LastContactAt: at, LastChannel: "chat"}},
			Variables: vars(time.Time{}, now.Add(time.Hour)), Recent: []Interaction{{CallID: "c1", Summary: "s"}}},
		{Ref: "r2", Variables: vars(now.Add(time.Hour), at)},
		{Ref: "r3", Variables: vars(time.Time{})},
	}
	for i, c := range customers {
		want := slices.ContainsFunc(c.Variables, func(v Variable) bool { return expired(v.ExpiresAt) })
		got, err := customerVarExpiring(marshal(c), expired)
		if err != nil || got != want {
			t.Errorf("customer %d: projection gives %v %v, want %v", i, got, err, want)
		}
	}
	if _, err := callExpiry([]byte{codecVersion, 200}); err == nil {
		t.Error("a truncated call record gives no error")
	}
}
