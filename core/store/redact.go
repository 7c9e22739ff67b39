package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"maps"
	"slices"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// pSweep keys where a text sweep got to: R<name> holds a sweepState.
const pSweep = 'R'

// TextSweep rewrites the free text the store keeps (every customer's
// variable values and recent interactions, every stored interaction's
// summary) through the caller's functions, one batch per transaction. The
// place it got to is written in the same transaction as the batch, so a
// sweep that is stopped (a cancelled context, a killed process) continues
// from there when it runs again, and counts nothing twice.
type TextSweep struct {
	// Name keys the sweep's place in the store.
	Name string
	// Variable returns a variable's new value, or false to drop the
	// variable. Summary returns an interaction summary's new text. Both
	// add what they found, by kind, to found.
	Variable func(name, value string, found map[string]int64) (string, bool)
	Summary  func(text string, found map[string]int64) string
	// Batch is how many records one transaction rewrites (256).
	Batch int
	// Progress, if set, hears about every committed batch.
	Progress func(SweepProgress)
}

// SweepProgress is how far a text sweep is, counted over all its runs.
type SweepProgress struct {
	Done, Total int64            // records visited; records in the store
	Began       int64            // Done when this run began
	Rewritten   int64            // records that changed
	Found       map[string]int64 // what the functions found, by kind
	Resumed     bool             // this run continued an earlier one
	Complete    bool
}

// SweepText runs sw until every record was visited or ctx ends (then it
// returns ctx's error, and the next run continues). A complete sweep
// forgets its place, so the next one starts from the beginning.
func (s *DB) SweepText(ctx context.Context, sw TextSweep) (SweepProgress, error) {
	if sw.Batch <= 0 {
		sw.Batch = 256
	}
	place := key(pSweep, sw.Name)
	phases := []byte{pCustomer, pInteraction}
	var st sweepState
	var p SweepProgress
	err := s.View(func(t *Txn) error {
		ok, err := t.get(place, &st)
		if err != nil {
			return err
		}
		p.Resumed, p.Began = ok, st.done
		for _, ph := range phases {
			n, err := t.countPrefix([]byte{ph})
			if err != nil {
				return err
			}
			p.Total += n
		}
		return nil
	})
	if err != nil {
		return p, err
	}
	report := func() SweepProgress {
		p.Done, p.Rewritten, p.Found = st.done, st.rewritten, maps.Clone(st.found)
		if p.Found == nil {
			p.Found = map[string]int64{}
		}
		return p
	}
	for int(st.phase) < len(phases) {
		if err := ctx.Err(); err != nil {
			return report(), err
		}
		var next sweepState
		err := s.Update(func(t *Txn) error {
			next = st.clone() // a retried transaction starts from the same counts
			n, err := t.sweepBatch(phases[next.phase], sw, &next)
			if err != nil {
				return err
			}
			if n < sw.Batch {
				next.phase, next.after = next.phase+1, nil
			}
			return t.put(place, &next)
		})
		if err != nil {
			return report(), err
		}
		st = next
		if sw.Progress != nil {
			sw.Progress(report())
		}
	}
	if err := s.Update(func(t *Txn) error { return t.del(place) }); err != nil {
		return report(), err
	}
	p.Complete = true
	return report(), nil
}

// sweepBatch rewrites up to sw.Batch records of one prefix after st.after
// and moves st on; it returns how many it visited.
func (t *Txn) sweepBatch(prefix byte, sw TextSweep, st *sweepState) (int, error) {
	type kv struct{ k, v []byte }
	var batch []kv
	o := scanOptions([]byte{prefix})
	it := t.bt.NewIterator(o)
	from := []byte{prefix}
	if st.after != nil {
		from = append(slices.Clip(st.after), 0) // the first key after it
	}
	for it.Seek(from); it.ValidForPrefix(o.Prefix) && len(batch) < sw.Batch; it.Next() {
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			it.Close()
			return 0, fmt.Errorf("%w: read: %v", ErrUnavailable, err)
		}
		batch = append(batch, kv{it.Item().KeyCopy(nil), v})
	}
	it.Close()
	for _, r := range batch {
		var changed bool
		var rec record
		switch prefix {
		case pCustomer:
			c := &Customer{}
			if err := unmarshal(r.v, c); err != nil {
				return 0, fmt.Errorf("%w: decode customer: %v", ErrUnavailable, err)
			}
			changed, rec = sweepCustomer(c, sw, st.found), c
		case pInteraction:
			h := &Interaction{}
			if err := unmarshal(r.v, h); err != nil {
				return 0, fmt.Errorf("%w: decode interaction: %v", ErrUnavailable, err)
			}
			changed, rec = sweepSummary(&h.Summary, sw, st.found), h
		}
		if changed {
			if err := t.put(r.k, rec); err != nil {
				return 0, err
			}
			st.rewritten++
		}
		st.done++
		st.after = r.k
	}
	return len(batch), nil
}

func sweepCustomer(c *Customer, sw TextSweep, found map[string]int64) bool {
	changed := false
	if sw.Variable != nil {
		vars := c.Variables[:0:0]
		for _, v := range c.Variables {
			nv, keep := sw.Variable(v.Name, v.Value, found)
			if !keep {
				changed = true
				continue
			}
			if nv != v.Value {
				v.Value, changed = nv, true
			}
			vars = append(vars, v)
		}
		c.Variables = vars
	}
	for i := range c.Recent {
		if sweepSummary(&c.Recent[i].Summary, sw, found) {
			changed = true
		}
	}
	return changed
}

func sweepSummary(s *string, sw TextSweep, found map[string]int64) bool {
	if sw.Summary == nil || *s == "" {
		return false
	}
	n := sw.Summary(*s, found)
	if n == *s {
		return false
	}
	*s = n
	return true
}

func (t *Txn) countPrefix(prefix []byte) (int64, error) {
	var n int64
	err := t.scan(prefix, func([]byte, *badger.Item) (bool, error) {
		n++
		return true, nil
	})
	return n, err
}

// sweepState is where a text sweep got to, and what it found so far.
type sweepState struct {
	phase           byte   // index into the prefixes swept
	after           []byte // the last key done in that phase
	done, rewritten int64
	found           map[string]int64
}

func (st sweepState) clone() sweepState {
	st.after = slices.Clone(st.after)
	st.found = maps.Clone(st.found)
	if st.found == nil {
		st.found = map[string]int64{}
	}
	return st
}

func (st *sweepState) encode(e *enc) {
	e.b = append(e.b, st.phase)
	e.raw(st.after)
	e.int(st.done)
	e.int(st.rewritten)
	e.b = binary.AppendUvarint(e.b, uint64(len(st.found)))
	for _, k := range slices.Sorted(maps.Keys(st.found)) {
		e.str(k)
		e.int(st.found[k])
	}
}

func (st *sweepState) decode(d *dec) {
	st.phase, st.after, st.done, st.rewritten = d.byte(), d.raw(), d.int(), d.int()
	n := d.count()
	st.found = make(map[string]int64, n)
	for range n {
		k := d.str()
		st.found[k] = d.int()
	}
}

// Compact rewrites a closed store's tables into one level, which drops
// every overwritten version of a record: after a sweep the text it
// replaced is no longer anywhere on disk, only in the new versions'
// redacted form. It opens opts.Dir itself, so the store must be closed,
// and it rewrites the whole store, so it takes as long as a backup.
func Compact(opts Options) error {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := removeEmptyLogs(opts.Dir, opts.Logger); err != nil {
		return fmt.Errorf("compact store in %q: %w", opts.Dir, err)
	}
	// One level-0 table is enough to make level 0 worth compacting, so
	// Flatten also moves a small store's tables (all in level 0, where
	// it would otherwise stop) into one level.
	//
	// No background compactors: Badger starts them in Open before it
	// knows the store's last version, so one that ran in that window
	// would merge the tables keeping every version (its discard point is
	// still 0), and Flatten, finding one level, would stop there with the
	// replaced text still in it. Flatten runs its own workers.
	bo := badger.DefaultOptions(opts.Dir).
		WithLogger(badgerLogger{opts.Logger}).
		WithNumVersionsToKeep(1).
		WithCompression(options.None).
		WithNumLevelZeroTables(1).
		WithNumCompactors(0)
	if len(opts.EncryptionKey) > 0 {
		bo = bo.WithEncryptionKey(opts.EncryptionKey).WithIndexCacheSize(64 << 20)
	}
	//
	// Managed mode, so the discard point is set here rather than read from
	// the oracle's read watermark: Open hands that watermark the store's
	// last version through a channel, and a Flatten that started before
	// its goroutine caught up kept every version (seen once in CI).
	// Compact writes nothing, so no transaction needs a timestamp.
	bdb, err := badger.OpenManaged(bo)
	if err != nil {
		return fmt.Errorf("compact store in %q: %w", opts.Dir, err)
	}
	bdb.SetDiscardTs(bdb.MaxVersion())
	if err := bdb.Flatten(1); err != nil {
		bdb.Close()
		return fmt.Errorf("compact store in %q: %w", opts.Dir, err)
	}
	return bdb.Close()
}
