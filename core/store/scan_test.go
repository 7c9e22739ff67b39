package store

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// A paced scan reads in chunks of ScanChunk records, one read transaction
// each; the records must come out as one unpaced scan gives them, none
// lost or repeated at a chunk's edge, even while writes land between the
// chunks.
func TestPacedScanSeesEveryRecordOnceAcrossChunks(t *testing.T) {
	db := tempDB(t)
	base := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	const customers, each = 250, 10 // 2,500 interactions: two full chunks and a part
	for c := range customers {
		err := db.Update(func(tx *Txn) error {
			for i := range each {
				ref := fmt.Sprintf("cust_%03d", c)
				id := fmt.Sprintf("call_%03d_%d", c, i)
				if err := tx.PutInteraction(ref, Interaction{CallID: id, Channel: "chat", EndedAt: base.Add(time.Duration(i) * time.Minute)}); err != nil {
					return err
				}
				if err := tx.PutCall(Call{ID: id, CustomerRef: ref, StartedAt: base}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var want []string
	if err := db.EachInteraction(func(ref string, h Interaction) error { want = append(want, ref+"/"+h.CallID); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(want) != customers*each {
		t.Fatalf("the unpaced scan saw %d interactions, not %d", len(want), customers*each)
	}

	paces := 0
	var got []string
	err := db.EachInteractionPaced(func() error {
		paces++
		// a write between chunks, after every key already read: a
		// customer sorting last, which the scan may or may not see
		return db.Update(func(tx *Txn) error {
			return tx.PutInteraction("cust_zzz", Interaction{CallID: fmt.Sprintf("late_%d", paces), Channel: "email", EndedAt: base})
		})
	}, func(ref string, h Interaction) error {
		got = append(got, ref+"/"+h.CallID)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if paces != 2 {
		t.Errorf("paced %d times for %d records in chunks of %d, want 2", paces, len(want), ScanChunk)
	}
	seen := map[string]bool{}
	for _, k := range got {
		if seen[k] {
			t.Errorf("%s seen twice", k)
		}
		seen[k] = true
	}
	for i, k := range want {
		if i >= len(got) || got[i] != k {
			t.Fatalf("paced scan differs from the unpaced one at %d: %v", i, k)
		}
	}

	calls := 0
	if err := db.EachCallStartPaced(func() error { return nil }, func(time.Time, []byte) error { calls++; return nil }); err != nil || calls != customers*each {
		t.Errorf("paced call scan: %d calls, %v", calls, err)
	}

	// a pace that fails stops the scan with its error, after one chunk
	stop := errors.New("stop")
	n := 0
	err = db.EachCallStartPaced(func() error { return stop }, func(time.Time, []byte) error { n++; return nil })
	if !errors.Is(err, stop) || n != ScanChunk {
		t.Errorf("a failing pace: %v after %d calls, want stop after %d", err, n, ScanChunk)
	}
}
