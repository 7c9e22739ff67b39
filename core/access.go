package core

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"sync/atomic"
	"time"

	"github.com/sticky-cc/sticky/core/store"
)

// The kinds of access-log record (who saw what, issue 15).
const (
	AccessPop           = "pop"            // a screen-pop delivered to an agent or a queue
	AccessContext       = "context"        // the desktop fetched a call's context
	AccessContextDenied = "context_denied" // a desktop asked for a context it was not popped
	AccessRead          = "read"           // an API read of the profile
	AccessIdentify      = "identify"       // a call was identified as the customer
	AccessMerge         = "merge"
	AccessUnlink        = "unlink"
	AccessErasure       = "erasure"
)

// Access is one record of the access log: who saw or changed a customer's
// data, when, on which node.
type Access struct {
	Time        Timestamp `json:"time"`
	CustomerRef string    `json:"customer_ref,omitempty"`
	Kind        string    `json:"kind"`
	// Actor is an agent id ("queue:<name>" for a pop to a queue), an API
	// key's name, or ActorSystem.
	Actor  string `json:"actor"`
	CallID string `json:"call_id,omitempty"`
	Node   string `json:"node,omitempty"`
}

const (
	defaultAccessQueue = 4096
	accessBatch        = 256
)

// accessLog is the bounded queue between the callers that record and the
// one goroutine (RunAccessLog) that writes.
type accessLog struct {
	q        chan store.Access
	flush    chan chan error
	running  atomic.Bool
	stopped  atomic.Bool
	dropped  atomic.Uint64
	lastWarn atomic.Int64 // unix ns of the last warning about drops
}

func newAccessLog(size int) *accessLog {
	return &accessLog{q: make(chan store.Access, size), flush: make(chan chan error)}
}

// RecordAccess queues a record for the access log and returns at once: a
// pop or a read must never wait for the disk. Empty fields are filled in:
// the time now, the actor from ctx (ActorFrom), this node. When the queue
// is full (or the writer has stopped) the record is dropped and counted
// (AccessDropped), with a warning at most once a minute.
func (e *Engine) RecordAccess(ctx context.Context, a Access) {
	if a.CustomerRef == "" {
		return
	}
	r := store.Access{ID: accessID(), Ref: a.CustomerRef, Time: a.Time.Time, Kind: a.Kind,
		Actor: a.Actor, CallID: a.CallID, Node: a.Node}
	if r.Time.IsZero() {
		r.Time = e.now()
	}
	if r.Actor == "" {
		r.Actor = ActorFrom(ctx)
	}
	if r.Node == "" {
		r.Node = e.opts.Node
	}
	l := e.acc
	if !l.stopped.Load() {
		select {
		case l.q <- r:
			return
		default:
		}
	}
	n := l.dropped.Add(1)
	now, last := time.Now().UnixNano(), l.lastWarn.Load()
	if now-last >= int64(time.Minute) && l.lastWarn.CompareAndSwap(last, now) {
		e.log.Warn("access log queue full: records dropped", "dropped_total", n, "queue", cap(l.q))
	}
}

// AccessDropped counts the records RecordAccess dropped.
func (e *Engine) AccessDropped() uint64 { return e.acc.dropped.Load() }

func accessID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// RunAccessLog writes the queued records, in batches, until ctx ends; then
// it writes what it still holds (bounded by the append timeout in a
// cluster) and returns. Standalone a batch is one transaction, not synced
// to disk: a crash loses at most the last batch. Clustered a batch is one
// entry of the shared log.
func (e *Engine) RunAccessLog(ctx context.Context) error {
	l := e.acc
	l.running.Store(true)
	defer l.running.Store(false)
	batch := make([]store.Access, 0, accessBatch)
	for {
		select {
		case <-ctx.Done():
			l.stopped.Store(true)
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.opts.AppendTimeout)
			defer cancel()
			return e.drainAccess(fctx, batch)
		case r := <-l.q:
			e.writeAccess(ctx, e.fill(append(batch[:0], r)))
		case done := <-l.flush:
			done <- e.drainAccess(ctx, batch)
		}
	}
}

// FlushAccess returns once every record queued before it was written (in
// a cluster: appended to the shared log).
func (e *Engine) FlushAccess(ctx context.Context) error {
	l := e.acc
	if !l.running.Load() {
		return e.drainAccess(ctx, nil)
	}
	done := make(chan error, 1)
	select {
	case l.flush <- done:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fill adds what is queued to batch, up to a batch.
func (e *Engine) fill(batch []store.Access) []store.Access {
	for len(batch) < accessBatch {
		select {
		case r := <-e.acc.q:
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

func (e *Engine) drainAccess(ctx context.Context, batch []store.Access) error {
	for {
		batch = e.fill(batch[:0])
		if len(batch) == 0 {
			return nil
		}
		if err := e.writeAccess(ctx, batch); err != nil {
			return err
		}
	}
}

func (e *Engine) writeAccess(ctx context.Context, batch []store.Access) error {
	var err error
	if e.rep != nil {
		err = e.appendOnly(ctx, &command{Op: opAccess, Access: batch})
	} else {
		err = e.db.Update(func(t *store.Txn) error { return e.applyAccess(t, batch) })
	}
	if err != nil {
		e.acc.dropped.Add(uint64(len(batch)))
		e.log.Warn("access log records not written", "records", len(batch), "err", err)
	}
	return err
}

// appendOnly appends cmd to the shared log without waiting for it to be
// applied here: nobody waits for an access record's outcome.
func (e *Engine) appendOnly(ctx context.Context, cmd *command) error {
	r := e.rep
	cmd.Node, cmd.Nonce = r.instance, r.nonce.Add(1)
	cmd.Now = e.now()
	b, err := json.Marshal(cmd)
	if err != nil {
		return err
	}
	// The records name customers: the log seals the entry for them, so
	// that an erasure makes it unreadable too.
	entry := Entry{Data: append([]byte{entryVersion}, b...)}
	if entry.Subjects, err = e.subjects(cmd); err != nil {
		return err
	}
	actx, cancel := context.WithTimeout(ctx, e.opts.AppendTimeout)
	defer cancel()
	_, err = r.log.Append(actx, entry)
	return err
}

// applyAccess writes a batch of records, each under the customer its ref
// stands for now (a merged ref's under the customer it was merged into).
// A record of a ref that is no customer (erased meanwhile) is left out, so
// that nothing names an erased customer again.
func (e *Engine) applyAccess(t *store.Txn, recs []store.Access) error {
	current := map[string]string{}
	for _, a := range recs {
		ref, seen := current[a.Ref]
		if !seen {
			c, ok, err := t.Customer(a.Ref)
			if err != nil {
				return err
			}
			if ok {
				ref = c.Ref
			}
			current[a.Ref] = ref
		}
		if ref == "" {
			continue
		}
		a.Ref = ref
		if err := t.PutAccess(a); err != nil {
			return err
		}
	}
	return nil
}

// erasureRecord is the anonymous record an erasure by ctx's actor keeps.
func (e *Engine) erasureRecord(ctx context.Context) []store.Access {
	return []store.Access{{ID: accessID(), Time: e.now(), Kind: AccessErasure, Actor: ActorFrom(ctx), Node: e.opts.Node}}
}

// eraseAccess deletes the access log of the customer ref stands for and
// keeps recs (erasureRecord) under no ref. It runs in the erasure's
// transaction, before the customer is gone.
func (e *Engine) eraseAccess(t *store.Txn, ref string, recs []store.Access) error {
	c, ok, err := t.Customer(ref)
	if err != nil || !ok {
		return err // the erasure itself says not found
	}
	if err := t.DeleteAccess(c.Ref); err != nil {
		return err
	}
	for _, a := range recs {
		if err := t.PutErasureRecord(a); err != nil {
			return err
		}
	}
	return nil
}

// accessCutoff is the time before which records are swept.
func (e *Engine) accessCutoff(now time.Time) time.Time { return now.Add(-e.opts.AccessRetention) }

// AccessLogPage is a page of a customer's access log, newest first.
type AccessLogPage struct {
	CustomerRef string   `json:"customer_ref"`
	Access      []Access `json:"access"`
	// NextBefore, when more records follow, is the before of the next page.
	NextBefore string `json:"next_before,omitempty"`
}

// MaxAccessPage bounds a page of the access log.
const MaxAccessPage = 1000

// AccessLog answers "who saw my data" for ref: up to limit records (<= 0:
// 100), newest first, older than before, which is an RFC 3339 time or the
// NextBefore of the previous page ("": from the newest). An unknown or
// erased ref is not found, like its profile.
func (e *Engine) AccessLog(ctx context.Context, ref, before string, limit int) (*AccessLogPage, error) {
	if err := checkRef(ref); err != nil {
		return nil, err
	}
	var is issues
	if limit <= 0 {
		limit = 100
	} else if limit > MaxAccessPage {
		is.add("must be at most 1000", "limit")
	}
	page := store.AccessPage{Limit: limit}
	if before != "" {
		if t, err := ParseTime(before); err == nil {
			page.Before = t
		} else if b, err := hex.DecodeString(before); err == nil && len(b) > 8 {
			page.After = before
		} else {
			is.add("must be an RFC 3339 time or the next_before of the previous page", "before")
		}
	}
	if err := is.err(); err != nil {
		return nil, err
	}
	var out *AccessLogPage
	err := e.db.View(func(t *store.Txn) error {
		c, ok, err := t.Customer(ref)
		if err != nil {
			return err
		}
		if !ok {
			return notFound("no customer " + quoteID(ref))
		}
		recs, more, err := t.AccessLog(c.Ref, page)
		if err != nil {
			return err
		}
		out = &AccessLogPage{CustomerRef: c.Ref, Access: make([]Access, len(recs))}
		for i, a := range recs {
			out.Access[i] = Access{Time: TS(a.Time), Kind: a.Kind, Actor: a.Actor, CallID: a.CallID, Node: a.Node}
		}
		if more && len(recs) > 0 {
			out.NextBefore = store.AccessCursor(recs[len(recs)-1])
		}
		return nil
	})
	if err != nil {
		return nil, storeErr(err)
	}
	return out, nil
}

// RecordPops wraps next so that each pop it delivers is in the access log:
// to which agent (or queue), which customer, which call.
func (e *Engine) RecordPops(next Popper) Popper { return recordingPopper{e, next} }

type recordingPopper struct {
	e    *Engine
	next Popper
}

func (p recordingPopper) Pop(ctx context.Context, pop Pop) error {
	err := p.next.Pop(ctx, pop)
	if err == nil && pop.Context != nil {
		actor := pop.Agent
		if actor == "" {
			actor = "queue:" + pop.Queue
		}
		p.e.RecordAccess(ctx, Access{CustomerRef: pop.Context.CustomerRef, Kind: AccessPop, Actor: actor, CallID: pop.CallID})
	}
	return err
}
