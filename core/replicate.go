package core

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sticky-cc/sticky/core/store"
)

// Log is a replicated, totally ordered log of the engine's changes: the
// shared memory of a cluster (a JetStream stream; see adapters/cluster).
// With a Log, every change is appended before it is acknowledged, and every
// node applies the log, in order, to its own store through Engine.Apply.
// Without one (the default) the engine writes its store directly.
type Log interface {
	// Append stores entry durably and returns its sequence in the log. An
	// error means the entry may or may not have been stored; applying is
	// idempotent for the same request, so the caller's retry is safe.
	Append(ctx context.Context, entry Entry) (seq uint64, err error)
}

// Entry is one change for the log: the bytes every node applies, and
// whose personal data they carry. A log that encrypts (adapters/cluster)
// encrypts Data for those customers, and once a customer is erased it
// forgets their key, so the log's old entries about them can no longer
// be read by anyone; a node replaying them skips them (Engine.Skip).
type Entry struct {
	Data []byte
	// Subjects are the refs of the customers whose data Data may hold, as
	// the writing node knows them. Empty: Data holds no personal data.
	Subjects []string
	// Erases is the customer this entry erases: once it is applied, the
	// log forgets that customer's key.
	Erases string
}

// ErrBadEntry is returned by Apply for an entry it cannot read: written by
// a newer Sticky, or corrupt. The node must stop applying (upgrade it).
var ErrBadEntry = errors.New("unreadable log entry")

// The operations a log entry can hold.
const (
	opStart  = "start"
	opEnd    = "end"
	opErase  = "erase"
	opMerge  = "merge"
	opUnlink = "unlink"
	opSweep  = "sweep"
	opAccess = "access" // a batch of access-log records (issue 15)
	opImport = "import" // import.go: one batch of a bulk import

	opIdentify = "identify" // identify.go: an agent's decision about who a call is from
	opPop      = "pop"      // identify.go: a call was popped to an agent
)

// entryVersion starts every entry, so that a later format can be told apart.
const entryVersion = 'j'

// command is one change as the log holds it: the request as the client
// sent it, plus everything that would otherwise differ between nodes (the
// time, a fresh customer ref). Applying it is then a pure function of the
// store's state, and every node that applies the same log in the same
// order reaches the same state.
type command struct {
	Op    string    `json:"op"`
	Node  string    `json:"node"`
	Nonce uint64    `json:"nonce"`
	Now   time.Time `json:"now"`
	// Ref is the customer ref used if the change creates a customer.
	Ref   string        `json:"ref,omitempty"`
	Start *StartRequest `json:"start,omitempty"`
	End   *EndRequest   `json:"end,omitempty"`
	// Merge is EndRequest.Merge, which is never read from a body.
	Merge bool `json:"merge,omitempty"`
	// Customer, From, Kind and Value are the arguments of erase, merge and
	// unlink.
	Customer string `json:"customer,omitempty"`
	From     string `json:"from,omitempty"`
	Kind     string `json:"kind,omitempty"`
	Value    string `json:"value,omitempty"`
	// Access log (issue 15): the records of opAccess, or the anonymous
	// record opErase keeps; the retention opSweep applies to records.
	Access    []store.Access `json:"access,omitempty"`
	Retention time.Duration  `json:"access_retention,omitempty"`
	// Import is a checked batch of a bulk import (import.go).
	Import *importCommand `json:"import,omitempty"`
	// Identify and Pop are identity decisions and screen-pops (identify.go);
	// an identify's time is Now and the customer it creates Ref.
	Identify *identifyCmd `json:"identify,omitempty"`
	Pop      *popCmd      `json:"pop,omitempty"`
}

func (c *command) newRef() string { return c.Ref }

// replication is the engine's side of a cluster: what it has applied, and
// the writers on this node waiting for their entries to be applied.
type replication struct {
	log      Log
	instance string // this process; matches entries to their waiting writer
	nonce    atomic.Uint64

	mu      sync.Mutex
	waiters map[uint64]chan outcome

	applyMu sync.Mutex // one applier at a time
	state   atomic.Pointer[ApplyState]
}

type outcome struct {
	res any
	err error
}

// ApplyState is how far this node has applied the shared log.
type ApplyState struct {
	Seq    uint64 // the last entry applied (0: none)
	Digest string // a hash chained over every entry applied and its outcome
	At     time.Time
}

func newReplication(log Log) *replication {
	var b [8]byte
	_, _ = rand.Read(b[:])
	r := &replication{log: log, instance: hex.EncodeToString(b[:]), waiters: map[uint64]chan outcome{}}
	r.state.Store(&ApplyState{Digest: hex.EncodeToString(make([]byte, 32))})
	return r
}

// Clustered says whether the engine writes through a shared log.
func (e *Engine) Clustered() bool { return e.rep != nil }

// Applied is how far this node has applied the shared log.
func (e *Engine) Applied() ApplyState {
	if e.rep == nil {
		return ApplyState{}
	}
	return *e.rep.state.Load()
}

func (e *Engine) loadApplied() error {
	return e.db.View(func(t *store.Txn) error {
		seq, d, err := t.Applied()
		if err == nil {
			e.rep.state.Store(&ApplyState{Seq: seq, Digest: hex.EncodeToString(d[:])})
		}
		return err
	})
}

// Bind ties the store to the shared log with the given id, on first use, and
// refuses a store that belongs to another log or that holds data written
// outside any log (a standalone store): applying a log over either would
// give this node a memory no other node has.
func (e *Engine) Bind(memoryID string) error {
	if e.rep == nil {
		return errors.New("the engine has no shared log")
	}
	err := e.db.Update(func(t *store.Txn) error {
		have, err := t.Memory()
		if err != nil {
			return err
		}
		switch {
		case have == memoryID:
			return nil
		case have != "":
			return fmt.Errorf("the data dir belongs to the shared memory %q, not %q: point this node at its own memory, or start it on an empty data dir to join %q", have, memoryID, memoryID)
		}
		empty, err := t.Empty()
		if err != nil {
			return err
		}
		if !empty {
			return fmt.Errorf("the data dir holds a standalone store; a node joins the shared memory %q with an empty data dir and copies the memory from the cluster", memoryID)
		}
		return t.PutMemory(memoryID)
	})
	if err != nil {
		return err
	}
	return e.loadApplied()
}

// BoundMemory is the id of the shared log the store was bound to ("" if
// none).
func (e *Engine) BoundMemory() (id string, err error) {
	err = e.db.View(func(t *store.Txn) error {
		id, err = t.Memory()
		return err
	})
	return id, err
}

// replicate appends cmd to the shared log and waits until this node has
// applied it, so the writer reads its own write. The result is the one
// every node computed for the entry.
func (e *Engine) replicate(ctx context.Context, cmd *command) (any, error) {
	r := e.rep
	cmd.Node, cmd.Nonce = r.instance, r.nonce.Add(1)
	cmd.Now = e.now()
	if cmd.Op == opStart || cmd.Op == opEnd || cmd.Op == opIdentify && cmd.Identify.New {
		cmd.Ref = e.opts.NewRef()
	}
	b, err := json.Marshal(cmd)
	if err != nil {
		return nil, err
	}
	entry := Entry{Data: append([]byte{entryVersion}, b...)}
	if entry.Subjects, err = e.subjects(cmd); err != nil {
		return nil, storeErr(err)
	}
	if cmd.Op == opErase {
		// The erasure itself holds only the ref and stays readable, so
		// a node replaying the log still erases whatever it holds of
		// the customer.
		entry.Subjects, entry.Erases = nil, cmd.Customer
	}
	ch := make(chan outcome, 1)
	r.mu.Lock()
	r.waiters[cmd.Nonce] = ch
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.waiters, cmd.Nonce)
		r.mu.Unlock()
	}()
	timeout := e.opts.AppendTimeout
	if cmd.Op == opImport {
		// A batch may name hundreds of new customers, each needing a
		// data key made in the log before the batch is sealed.
		timeout = max(timeout, 30*time.Second)
	}
	actx, cancel := context.WithTimeout(ctx, timeout)
	seq, err := r.log.Append(actx, entry)
	cancel()
	if err != nil {
		e.log.Warn("shared memory append failed", "op", cmd.Op, "err", err)
		return nil, &Error{Code: CodeUnavailable, Message: "the shared memory is unavailable (" + err.Error() + "); nothing was saved, retry later"}
	}
	wait := time.NewTimer(e.opts.ApplyTimeout)
	defer wait.Stop()
	select {
	case o := <-ch:
		return o.res, o.err
	case <-ctx.Done():
	case <-wait.C:
	}
	return nil, &Error{Code: CodeUnavailable, Message: fmt.Sprintf("saved to the shared memory as entry %d but not yet applied on this node; retrying the same request returns its result", seq)}
}

func decodeCommand(entry []byte) (*command, error) {
	if len(entry) == 0 || entry[0] != entryVersion {
		return nil, fmt.Errorf("%w: unknown format", ErrBadEntry)
	}
	var c command
	if err := json.Unmarshal(entry[1:], &c); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadEntry, err)
	}
	switch c.Op {
	case opStart:
		if c.Start == nil {
			return nil, fmt.Errorf("%w: start without a request", ErrBadEntry)
		}
	case opEnd:
		if c.End == nil {
			return nil, fmt.Errorf("%w: end without a request", ErrBadEntry)
		}
		c.End.Merge = c.Merge
	case opImport:
		if c.Import == nil {
			return nil, fmt.Errorf("%w: import without rows", ErrBadEntry)
		}
	case opIdentify:
		if c.Identify == nil || c.Identify.New && c.Ref == "" {
			return nil, fmt.Errorf("%w: identify without a decision", ErrBadEntry)
		}
	case opPop:
		if c.Pop == nil {
			return nil, fmt.Errorf("%w: pop without a call", ErrBadEntry)
		}
	case opErase, opMerge, opUnlink, opSweep:
	case opAccess: // access log (issue 15)
		if len(c.Access) == 0 {
			return nil, fmt.Errorf("%w: access without records", ErrBadEntry)
		}
	default:
		return nil, fmt.Errorf("%w: unknown operation %q (written by a newer Sticky? upgrade this node)", ErrBadEntry, c.Op)
	}
	return &c, nil
}

// Apply applies the log entry seq to this node's store. The log's consumer
// calls it for every entry, in order, from one goroutine; an entry at or
// below what is already applied is skipped, so redelivery is harmless. A
// rejected change (a conflict, an unknown customer) is applied as nothing,
// on every node alike. sum is the hash of the entry as the log stores it
// (encrypted or not), chained into the digest. An error means the entry
// was not applied (the store is unavailable, or ErrBadEntry) and it must
// be applied again.
func (e *Engine) Apply(seq uint64, entry []byte, sum [32]byte) error {
	return e.apply(seq, entry, sum)
}

// Skip counts the entry seq as applied without applying it: its customers
// were all erased since it was written, so the log can no longer decrypt
// it, and the erasure later in the log removes whatever it held anyway.
func (e *Engine) Skip(seq uint64, sum [32]byte) error { return e.apply(seq, nil, sum) }

func (e *Engine) apply(seq uint64, entry []byte, sum [32]byte) error {
	r := e.rep
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	prev := r.state.Load()
	if seq <= prev.Seq {
		return nil
	}
	var d [32]byte
	old, _ := hex.DecodeString(prev.Digest)
	h := sha256.New()
	h.Write(old)
	h.Write(binary.BigEndian.AppendUint64(nil, seq))
	h.Write(sum[:])
	copy(d[:], h.Sum(nil))
	digest := d
	put := func(t *store.Txn) error { return t.PutApplied(seq, digest) }
	if entry == nil {
		if err := e.db.Update(put); err != nil {
			return err
		}
		r.state.Store(&ApplyState{Seq: seq, Digest: hex.EncodeToString(digest[:]), At: time.Now()})
		return nil
	}
	cmd, err := decodeCommand(entry)
	if err != nil {
		return fmt.Errorf("entry %d: %w", seq, err)
	}
	var res any
	var opErr error
	if cmd.Op == opSweep {
		// A sweep is many small transactions; if the node stops halfway it
		// sweeps again from the start, which finds the same records.
		if _, err := e.db.Sweep(cmd.Now); err != nil {
			return err
		}
		if cmd.Retention > 0 { // access log (issue 15)
			if _, err := e.db.SweepAccess(cmd.Now.Add(-cmd.Retention)); err != nil {
				return err
			}
		}
		err = e.db.Update(put)
	} else {
		err = e.db.Update(func(t *store.Txn) error {
			res, opErr = e.applyCommand(t, cmd)
			if opErr != nil {
				return opErr
			}
			return put(t)
		})
		if opErr != nil && err == opErr && isDecision(opErr) {
			// The change was refused: nothing of it is written, but the
			// entry counts as applied.
			err = e.db.Update(put)
		}
	}
	if err != nil {
		return err
	}
	r.state.Store(&ApplyState{Seq: seq, Digest: hex.EncodeToString(digest[:]), At: time.Now()})
	if cmd.Op == opErase && opErr == nil {
		e.scrubSoon()
	}
	if cmd.Node == r.instance {
		r.mu.Lock()
		ch := r.waiters[cmd.Nonce]
		r.mu.Unlock()
		if ch != nil {
			ch <- outcome{res, opErr}
		}
	}
	return nil
}

// subjects are the customers whose data cmd may carry, as this node's
// store knows them now: the refs it names, a fresh ref it may create, the
// customer of its call, and the holders of its identifiers.
func (e *Engine) subjects(cmd *command) ([]string, error) {
	var out []string
	add := func(refs ...string) {
		for _, r := range refs {
			if r != "" && !slices.Contains(out, r) {
				out = append(out, r)
			}
		}
	}
	var ids []store.Identifier
	var callID string
	switch cmd.Op {
	case opSweep:
		return nil, nil
	case opAccess: // access log (issue 15): the customers the records name, merged refs resolved
		err := e.db.View(func(t *store.Txn) error {
			for _, a := range cmd.Access {
				add(a.Ref)
				if c, ok, err := t.Customer(a.Ref); err != nil {
					return err
				} else if ok {
					add(c.Ref)
				}
			}
			return nil
		})
		return out, err
	case opImport: // each row's customer, and whoever holds its identifiers now
		err := e.db.View(func(t *store.Txn) error {
			for _, r := range cmd.Import.Rows {
				add(r.Ref, r.Derived)
				for _, id := range r.IDs {
					refs, err := t.Refs(id[0], id[1])
					if err != nil {
						return err
					}
					add(refs...)
				}
			}
			return nil
		})
		return out, err
	case opStart:
		add(cmd.Start.Hints.CustomerRef)
		if p, err := e.checkStart(*cmd.Start); err == nil {
			ids = p.ids
		}
		callID = cmd.Start.CallID
	case opEnd:
		add(cmd.End.CustomerRef)
		if cmd.End.Hints != nil {
			add(cmd.End.Hints.CustomerRef)
			var is issues
			ids = e.normalizeHints(&is, *cmd.End.Hints, "", "identity_hints").identifiers()
		}
		ids = append(ids, e.variableClaims(cmd.End.Variables)...)
		callID = cmd.End.CallID
	case opIdentify: // the customer named (or created), and the call's customer and candidates
		add(cmd.Identify.Ref, cmd.Ref)
		callID = cmd.Identify.CallID
	case opPop:
		callID = cmd.Pop.CallID
	default:
		add(cmd.Customer, cmd.From)
		return out, nil
	}
	err := e.db.View(func(t *store.Txn) error {
		if call, ok, err := t.Call(callID); err != nil {
			return err
		} else if ok {
			add(call.CustomerRef)
			if call.Identity != nil { // identity (issue 14): an unassigned call's candidates
				add(call.Identity.Candidates...)
			}
		}
		for _, id := range ids {
			refs, err := t.Refs(id.Kind, id.Value)
			if err != nil {
				return err
			}
			add(refs...)
		}
		return nil
	})
	if len(out) == 0 {
		// Nobody known: the change creates the customer it names.
		add(cmd.Ref)
	}
	return out, err
}

// isDecision says whether err is the engine refusing a change (the same on
// every node), rather than the store failing to make it.
func isDecision(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code != CodeUnavailable && e.Code != CodeInternal
}

// applyCommand makes the change cmd describes in t. It reads the clock and
// new refs only from cmd.
func (e *Engine) applyCommand(t *store.Txn, cmd *command) (any, error) {
	switch cmd.Op {
	case opStart:
		p, err := e.checkStart(*cmd.Start)
		if err != nil {
			return nil, err
		}
		return e.applyStart(t, &p, cmd.Now, cmd.newRef)
	case opEnd:
		p, err := e.checkEnd(*cmd.End)
		if err != nil {
			return nil, err
		}
		var res *EndResult
		var wrote bool
		p.now, p.newRef = cmd.Now, cmd.newRef
		if err := e.end(t, &p, &res, &wrote); err != nil {
			return nil, err
		}
		return &endOutcome{res, p.channel}, nil
	case opErase:
		if err := e.eraseAccess(t, cmd.Customer, cmd.Access); err != nil { // access log (issue 15)
			return nil, err
		}
		return nil, e.applyErase(t, cmd.Customer)
	case opMerge:
		return e.applyMerge(t, cmd.Customer, cmd.From, cmd.Now)
	case opUnlink:
		var is issues
		id := e.identifierOf(&is, cmd.Kind, cmd.Value)
		if err := is.err(); err != nil {
			return nil, err
		}
		return nil, e.applyUnlink(t, cmd.Customer, id, cmd.Now)
	case opAccess:
		return nil, e.applyAccess(t, cmd.Access) // access log (issue 15)
	case opImport:
		return e.applyImport(t, cmd.Import, cmd.Now)
	case opIdentify:
		c := *cmd.Identify
		c.Now, c.NewRef = cmd.Now, ""
		if c.New {
			c.NewRef = cmd.Ref
		}
		return e.applyIdentify(t, c)
	case opPop:
		return nil, e.applyPop(t, *cmd.Pop)
	}
	return nil, fmt.Errorf("%w: %q", ErrBadEntry, cmd.Op)
}

// SweepShared asks every node to sweep expired records as of now, through
// the shared log, so that all of them drop the same records.
func (e *Engine) sweepShared(ctx context.Context) error {
	_, err := e.replicate(ctx, &command{Op: opSweep, Retention: e.opts.AccessRetention})
	return err
}

// StateDigest hashes everything this node's store holds that every node
// must hold alike (it reads the whole store).
func (e *Engine) StateDigest() (string, int, error) { return e.db.StateDigest() }

// Snapshot writes a copy of this node's memory to w and returns how far
// the copy has applied the log at least. A node that joins restores it and
// applies the log from there (Restore), so the log need not keep entries
// older than the snapshot.
func (e *Engine) Snapshot(w io.Writer) (uint64, error) {
	seq := e.Applied().Seq
	return seq, e.db.WriteSnapshot(w)
}

// Restore replaces this node's memory with a snapshot of another node's,
// keeping this node's binding to the shared memory.
func (e *Engine) Restore(r io.Reader) error {
	if e.rep == nil {
		return errors.New("the engine has no shared log")
	}
	memory, err := e.BoundMemory()
	if err != nil {
		return err
	}
	e.rep.applyMu.Lock()
	defer e.rep.applyMu.Unlock()
	if err := e.db.ReplaceWith(r); err != nil {
		return err
	}
	if err := e.db.Update(func(t *store.Txn) error { return t.PutMemory(memory) }); err != nil {
		return err
	}
	return e.loadApplied()
}
