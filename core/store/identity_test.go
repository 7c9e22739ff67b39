package store

import (
	"reflect"
	"testing"
	"time"
)

func TestIdentityStateRoundTrip(t *testing.T) {
	now := time.Date(2026, 2, 6, 15, 30, 0, 123456789, time.UTC)
	cases := []record{
		&Customer{Ref: "cust_1", Identifiers: []Identifier{{Kind: "phone", Value: "+14155551234", LinkedAt: now}},
			Seen: []Seen{{Kind: "phone", Value: "+14155551234", At: now}}},
		&Call{ID: "c", Identity: &CallIdentity{}},
		&Call{ID: "c", Ended: true, MergeFingerprints: []string{"m"}, Identity: &CallIdentity{
			Candidates: []string{"a", "b"}, Attestation: "C", PoppedTo: []string{"1001"},
			Decisions: []Decision{{At: now, By: "key:ab", Agent: "1001", Ref: "a", Not: true,
				Unlinked: []Identifier{{Kind: "phone", Value: "+1", LinkedAt: now, Source: "phone"}},
				Seen:     []Seen{{Kind: "phone", Value: "+1", At: now}}}, {At: now, Ref: "b", New: true}},
			Pending: []PendingEnd{{Request: []byte(`{"call_id":"c"}`), Fingerprint: "fp"}, {Request: []byte(`{}`), Fingerprint: "f2", Merge: true}},
		}},
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

// Customers written before Seen existed end after their recent history.
func TestCustomerWithoutSeenDecodes(t *testing.T) {
	c := &Customer{Ref: "r", Identifiers: []Identifier{{Kind: "email", Value: "a@b.c"}}}
	b := marshal(c)
	var got Customer
	if err := unmarshal(b[:len(b)-1], &got); err != nil || got.Ref != "r" || len(got.Identifiers) != 1 || got.Seen != nil {
		t.Fatalf("old record: %+v %v", got, err)
	}
}

func TestUnlinkCallDropsOnlyTheLink(t *testing.T) {
	db, err := Open(Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *Txn) error {
		if err := tx.PutCall(Call{ID: "c1"}); err != nil { // unassigned
			return err
		}
		if err := tx.UnlinkCall("", "c1"); err != nil {
			return err
		}
		return tx.PutCall(Call{ID: "c1", CustomerRef: "r"})
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = db.View(func(tx *Txn) error {
		if ids, _ := tx.CallIDs(""); len(ids) != 0 {
			t.Errorf("unassigned calls still list %v", ids)
		}
		if ids, _ := tx.CallIDs("r"); len(ids) != 1 || ids[0] != "c1" {
			t.Errorf("calls of r: %v", ids)
		}
		if c, ok, _ := tx.Call("c1"); !ok || c.CustomerRef != "r" {
			t.Errorf("call: %+v %v", c, ok)
		}
		return nil
	})
}
