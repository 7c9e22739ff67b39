package store

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// indexKeys lists the expiry index's keys as "nanoseconds record-key".
func indexKeys(t *testing.T, db *DB) []string {
	t.Helper()
	var out []string
	err := db.View(func(tx *Txn) error {
		return tx.scan(expiryPrefix, func(k []byte, _ *badger.Item) (bool, error) {
			sec, rec, ok := parseExpiryKey(k)
			if !ok {
				return false, fmt.Errorf("malformed index key %q", k)
			}
			out = append(out, fmt.Sprintf("%d %s", sec, rec))
			return true, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// unindex makes db a store written before the expiry index: no index
// keys and no mark.
func unindex(t *testing.T, db *DB) {
	t.Helper()
	if err := db.bdb.DropPrefix(expiryPrefix, keyExpiryIndexed); err != nil {
		t.Fatal(err)
	}
	if n := len(indexKeys(t, db)); n != 0 {
		t.Fatalf("%d index keys left", n)
	}
	if ok, err := db.expiryIndexed(); err != nil || ok {
		t.Fatalf("still marked indexed: %v %v", ok, err)
	}
}

func TestNewStoreIsIndexedAnOldOneIsNot(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(Options{Dir: dir, MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := db.expiryIndexed(); err != nil || !ok {
		t.Fatalf("a new store is not marked indexed: %v %v", ok, err)
	}
	if err := db.Update(func(tx *Txn) error { return tx.PutCustomer(Customer{Ref: "cust_a"}) }); err != nil {
		t.Fatal(err)
	}
	unindex(t, db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// reopened with records in it, it stays unindexed until a sweep
	// got through it
	db, err = Open(Options{Dir: dir, MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if ok, err := db.expiryIndexed(); err != nil || ok {
		t.Fatalf("a store holding records was marked indexed at open: %v %v", ok, err)
	}
	if _, err := db.Sweep(time.Now()); err != nil {
		t.Fatal(err)
	}
	if ok, err := db.expiryIndexed(); err != nil || !ok {
		t.Fatalf("not marked indexed after a full sweep: %v %v", ok, err)
	}
}

// A write keeps one index key per record when it read the record first,
// and moves or drops it as the earliest expiry moves.
func TestIndexFollowsTheEarliestExpiry(t *testing.T) {
	db := tempDB(t)
	at := time.Date(2026, 12, 4, 12, 0, 0, 500, time.UTC)
	sec := at.UnixNano()
	update := func(fn func(*Customer)) {
		t.Helper()
		err := db.Update(func(tx *Txn) error {
			c, _, err := tx.Customer("cust_a")
			if err != nil {
				return err
			}
			c.Ref = "cust_a"
			fn(&c)
			return tx.PutCustomer(c)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	want := func(keys ...string) {
		t.Helper()
		if got := indexKeys(t, db); !slices.Equal(got, keys) {
			t.Fatalf("index %q, want %q", got, keys)
		}
	}
	update(func(c *Customer) { c.Variables = []Variable{{Name: "a", ExpiresAt: at.Add(time.Hour)}} })
	want(fmt.Sprintf("%d Ccust_a", sec+int64(time.Hour)))
	update(func(c *Customer) { c.Variables = append(c.Variables, Variable{Name: "b", ExpiresAt: at}) })
	want(fmt.Sprintf("%d Ccust_a", sec))
	update(func(c *Customer) { c.LastChannel = "chat" }) // expiry unchanged
	want(fmt.Sprintf("%d Ccust_a", sec))
	update(func(c *Customer) { c.Variables = nil })
	want()

	// a call deleted after a read takes its key along
	if err := db.Update(func(tx *Txn) error { return tx.PutCall(Call{ID: "call_1", CustomerRef: "cust_a", ExpiresAt: at}) }); err != nil {
		t.Fatal(err)
	}
	want(fmt.Sprintf("%d Kcall_1", sec))
	if err := db.Update(func(tx *Txn) error {
		if _, _, err := tx.Call("call_1"); err != nil {
			return err
		}
		return tx.DeleteCall("cust_a", "call_1")
	}); err != nil {
		t.Fatal(err)
	}
	want()
}

// The paced indexed sweep lists the due keys in chunks, then deletes in
// batches, with pace between them; stopped by its pace it deleted
// nothing, and the next sweep does it all.
func TestSweepDuePaced(t *testing.T) {
	db, now, expired, live := sweepFixture(t)
	if n := len(indexKeys(t, db)); n != expired+live+1 {
		t.Fatalf("%d index keys, want %d", n, expired+live+1)
	}
	stop := errors.New("stop")
	paces := 0
	n, err := db.SweepPaced(now, func() error { paces++; return stop })
	if !errors.Is(err, stop) || n != 0 || paces != 1 {
		t.Fatalf("stopped sweep: n=%d err=%v paces=%d, want 0, stop, 1", n, err, paces)
	}
	if got := countCalls(t, db); got != expired+live {
		t.Fatalf("stopped sweep left %d calls, want all %d", got, expired+live)
	}

	paces = 0
	n, err = db.SweepPaced(now, func() error { paces++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if n != expired+1 {
		t.Fatalf("swept %d, want the %d expired calls and 1 variable", n, expired)
	}
	if min := expired/ScanChunk + expired/sweepBatch; paces < min {
		t.Fatalf("pace called %d times, want at least %d", paces, min)
	}
	if got := countCalls(t, db); got != live {
		t.Fatalf("%d calls left, want the %d live ones", got, live)
	}
	var c Customer
	if err := db.View(func(tx *Txn) error { var err error; c, _, err = tx.Customer("cust_a"); return err }); err != nil {
		t.Fatal(err)
	}
	if len(c.Variables) != 1 || c.Variables[0].Name != "kept" {
		t.Fatalf("variables after the sweep: %+v", c.Variables)
	}
	// what is left in the index is what is still to expire
	if n := len(indexKeys(t, db)); n != live+1 {
		t.Fatalf("%d index keys after the sweep, want %d", n, live+1)
	}
}

// The model: what the store should hold after every sweep.
type sweepModel struct {
	vars  map[string]map[string]time.Time // ref -> name -> expiry
	calls map[string]time.Time            // id -> expiry
}

func (m *sweepModel) sweep(now time.Time) int {
	n := 0
	for _, vs := range m.vars {
		for name, at := range vs {
			if !at.IsZero() && at.Before(now) {
				delete(vs, name)
				n++
			}
		}
	}
	for id, at := range m.calls {
		if !at.IsZero() && at.Before(now) {
			delete(m.calls, id)
			n++
		}
	}
	return n
}

// Random writes, rewrites (read first or blind), deletes and sweeps: the
// indexed sweep deletes exactly what a sweep reading every record would,
// whether the store started indexed or was indexed by its first sweep.
func TestSweepIndexMatchesModel(t *testing.T) {
	for _, old := range []bool{false, true} {
		t.Run(fmt.Sprintf("unindexed=%v", old), func(t *testing.T) {
			for seed := range uint64(4) {
				sweepAgainstModel(t, seed, old)
			}
		})
	}
}

func sweepAgainstModel(t *testing.T, seed uint64, old bool) {
	db := tempDB(t)
	r := rand.New(rand.NewPCG(seed, 17))
	m := sweepModel{vars: map[string]map[string]time.Time{}, calls: map[string]time.Time{}}
	now := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	// expiries within the next ~20 minutes, some with sub-second parts,
	// some none
	expiry := func() time.Time {
		if r.IntN(5) == 0 {
			return time.Time{}
		}
		return now.Add(time.Duration(r.Int64N(int64(20 * time.Minute))))
	}
	for step := range 600 {
		ref := fmt.Sprintf("cust_%02d", r.IntN(30))
		id := fmt.Sprintf("call_%03d", r.IntN(120))
		var err error
		switch op := r.IntN(10); {
		case op < 4: // set a variable, reading the customer first
			name, at := fmt.Sprintf("v%d", r.IntN(4)), expiry()
			err = db.Update(func(tx *Txn) error {
				c, _, err := tx.Customer(ref)
				if err != nil {
					return err
				}
				c.Ref = ref
				c.Variables = slices.DeleteFunc(c.Variables, func(v Variable) bool { return v.Name == name })
				c.Variables = append(c.Variables, Variable{Name: name, Value: "x", ExpiresAt: at})
				return tx.PutCustomer(c)
			})
			if m.vars[ref] == nil {
				m.vars[ref] = map[string]time.Time{}
			}
			m.vars[ref][name] = at
		case op < 5: // a blind rewrite of the whole customer
			at := expiry()
			err = db.Update(func(tx *Txn) error {
				return tx.PutCustomer(Customer{Ref: ref, Variables: []Variable{{Name: "v0", Value: "y", ExpiresAt: at}}})
			})
			m.vars[ref] = map[string]time.Time{"v0": at}
		case op < 8: // a call, written again or new
			at := expiry()
			err = db.Update(func(tx *Txn) error {
				if r.IntN(2) == 0 {
					if _, _, err := tx.Call(id); err != nil {
						return err
					}
				}
				return tx.PutCall(Call{ID: id, CustomerRef: ref, ExpiresAt: at})
			})
			m.calls[id] = at
		case op < 9: // an erased customer
			err = db.Update(func(tx *Txn) error {
				if r.IntN(2) == 0 {
					if _, _, err := tx.Customer(ref); err != nil {
						return err
					}
				}
				return tx.DeleteCustomer(ref)
			})
			delete(m.vars, ref)
		default: // time passes, the sweep runs
			if old && step < 300 {
				unindex(t, db) // as if an older Sticky wrote all so far
			}
			now = now.Add(time.Duration(r.Int64N(int64(3 * time.Minute))))
			want := m.sweep(now)
			n, err := db.SweepPaced(now, func() error { return nil })
			if err != nil {
				t.Fatal(err)
			}
			if n != want {
				t.Fatalf("seed %d step %d: swept %d, want %d", seed, step, n, want)
			}
			checkModel(t, db, &m, seed, step)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// in the end everything expires
	now = now.Add(time.Hour)
	want := m.sweep(now)
	if n, err := db.Sweep(now); err != nil || n != want {
		t.Fatalf("seed %d: last sweep %d %v, want %d", seed, n, err, want)
	}
	checkModel(t, db, &m, seed, -1)
	if keys := indexKeys(t, db); len(keys) != 0 {
		t.Fatalf("seed %d: index keys left after everything expired: %q", seed, keys)
	}
}

func checkModel(t *testing.T, db *DB, m *sweepModel, seed uint64, step int) {
	t.Helper()
	err := db.View(func(tx *Txn) error {
		for _, ref := range slices.Sorted(maps.Keys(m.vars)) {
			c, ok, err := tx.Customer(ref)
			if err != nil {
				return err
			}
			got := map[string]time.Time{}
			for _, v := range c.Variables {
				got[v.Name] = v.ExpiresAt
			}
			if !ok && len(m.vars[ref]) > 0 || !maps.EqualFunc(got, m.vars[ref], time.Time.Equal) {
				return fmt.Errorf("%s: variables %v, want %v", ref, got, m.vars[ref])
			}
		}
		for id, at := range m.calls {
			c, ok, err := tx.Call(id)
			if err != nil {
				return err
			}
			if !ok || !c.ExpiresAt.Equal(at) {
				return fmt.Errorf("call %s: %v %v, want %v", id, ok, c.ExpiresAt, at)
			}
		}
		n := 0
		if err := tx.scan([]byte{pCall}, func([]byte, *badger.Item) (bool, error) { n++; return true, nil }); err != nil {
			return err
		}
		if n != len(m.calls) {
			return fmt.Errorf("%d calls in the store, want %d", n, len(m.calls))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("seed %d step %d: %v", seed, step, err)
	}
}
