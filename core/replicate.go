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
	Append(ctx context.Context, entry []byte) (seq uint64, err error)
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
	opImport = "import" // import.go: one batch of a bulk import
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
	// Import is a checked batch of a bulk import (import.go).
	Import *importCommand `json:"import,omitempty"`
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
	if cmd.Op == opStart || cmd.Op == opEnd {
		cmd.Ref = e.opts.NewRef()
	}
	b, err := json.Marshal(cmd)
	if err != nil {
		return nil, err
	}
	entry := append([]byte{entryVersion}, b...)
	ch := make(chan outcome, 1)
	r.mu.Lock()
	r.waiters[cmd.Nonce] = ch
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.waiters, cmd.Nonce)
		r.mu.Unlock()
	}()
	actx, cancel := context.WithTimeout(ctx, e.opts.AppendTimeout)
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
	case opErase, opMerge, opUnlink, opSweep:
	default:
		return nil, fmt.Errorf("%w: unknown operation %q (written by a newer Sticky? upgrade this node)", ErrBadEntry, c.Op)
	}
	return &c, nil
}

// Apply applies the log entry seq to this node's store. The log's consumer
// calls it for every entry, in order, from one goroutine; an entry at or
// below what is already applied is skipped, so redelivery is harmless. A
// rejected change (a conflict, an unknown customer) is applied as nothing,
// on every node alike. An error means the entry was not applied (the store
// is unavailable, or ErrBadEntry) and it must be applied again.
func (e *Engine) Apply(seq uint64, entry []byte) error {
	r := e.rep
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	prev := r.state.Load()
	if seq <= prev.Seq {
		return nil
	}
	cmd, err := decodeCommand(entry)
	if err != nil {
		return fmt.Errorf("entry %d: %w", seq, err)
	}
	var res any
	var opErr error
	chain := func(failed bool) [32]byte {
		var d [32]byte
		old, _ := hex.DecodeString(prev.Digest)
		h := sha256.New()
		h.Write(old)
		h.Write(binary.BigEndian.AppendUint64(nil, seq))
		sum := sha256.Sum256(entry)
		h.Write(sum[:])
		if failed {
			h.Write([]byte{byte(ErrorCode(opErr))})
		}
		copy(d[:], h.Sum(nil))
		return d
	}
	digest := chain(false)
	if cmd.Op == opSweep {
		// A sweep is many small transactions; if the node stops halfway it
		// sweeps again from the start, which finds the same records.
		if _, err := e.db.Sweep(cmd.Now); err != nil {
			return err
		}
		err = e.db.Update(func(t *store.Txn) error { return t.PutApplied(seq, digest) })
	} else {
		err = e.db.Update(func(t *store.Txn) error {
			res, opErr = e.applyCommand(t, cmd)
			if opErr != nil {
				return opErr
			}
			return t.PutApplied(seq, digest)
		})
		if opErr != nil && err == opErr && isDecision(opErr) {
			// The change was refused: nothing of it is written, but the
			// entry counts as applied, with its outcome in the digest.
			digest = chain(true)
			err = e.db.Update(func(t *store.Txn) error { return t.PutApplied(seq, digest) })
		}
	}
	if err != nil {
		return err
	}
	r.state.Store(&ApplyState{Seq: seq, Digest: hex.EncodeToString(digest[:]), At: time.Now()})
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
	case opImport:
		return e.applyImport(t, cmd.Import, cmd.Now)
	}
	return nil, fmt.Errorf("%w: %q", ErrBadEntry, cmd.Op)
}

// SweepShared asks every node to sweep expired records as of now, through
// the shared log, so that all of them drop the same records.
func (e *Engine) sweepShared(ctx context.Context) error {
	_, err := e.replicate(ctx, &command{Op: opSweep})
	return err
}

// StateDigest hashes everything this node's store holds that every node
// must hold alike (it reads the whole store).
func (e *Engine) StateDigest() (string, int, error) { return e.db.StateDigest() }
