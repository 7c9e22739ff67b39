package adapters

import (
	"container/list"
	"crypto/sha256"
	"encoding/json"
	"hash/fnv"
	"net/http"
	"sync"

	"github.com/sticky-cc/sticky/core"
)

// deliver applies one webhook's end. Webhook systems redeliver (timeouts,
// retries) and also send later messages of the same thread or updates of
// the same ticket under the same interaction id, so:
//
//   - the first delivery is a plain End;
//   - an identical redelivery of it gets the core's own idempotent answer
//     (same body, same result, nothing written);
//   - a different delivery for an interaction that has ended (409 from a
//     plain End) is applied with Merge: it updates the interaction;
//   - a redelivery of such a later message is answered from the ledger of
//     recent deliveries without writing. The ledger is in memory: after a
//     restart such a redelivery is merged again, which writes the same
//     values (only the variables' TTL restarts).
//
// Deliveries for the same interaction are serialised, so concurrent
// redeliveries cannot both merge.
func (h *handler) deliver(r *http.Request, req core.EndRequest) (*core.EndResult, bool, error) {
	mu := &h.locks[stripe(req.CallID)]
	mu.Lock()
	defer mu.Unlock()
	key := req.CallID + "\x00" + fingerprint(req)
	if res, ok := h.deliveries.get(key); ok {
		return res, false, nil
	}
	ctx := r.Context()
	res, err := h.calls.End(ctx, req)
	merged := false
	if core.ErrorCode(err) == core.CodeConflict {
		req.Merge, merged = true, true
		res, err = h.calls.End(ctx, req)
	}
	if err != nil {
		return nil, merged, err
	}
	h.deliveries.put(key, res)
	return res, merged, nil
}

func stripe(id string) int {
	f := fnv.New32a()
	f.Write([]byte(id))
	return int(f.Sum32() % 64)
}

func fingerprint(req core.EndRequest) string {
	b, _ := json.Marshal(req) // Merge is not marshalled: it is never part of the identity
	sum := sha256.Sum256(b)
	return string(sum[:])
}

// ledger remembers the answers to the most recent deliveries (LRU).
type ledger struct {
	mu    sync.Mutex
	max   int
	order *list.List // of *entry, newest first
	byKey map[string]*list.Element
}

type entry struct {
	key string
	res core.EndResult
}

func newLedger(max int) *ledger {
	return &ledger{max: max, order: list.New(), byKey: map[string]*list.Element{}}
}

func (l *ledger) get(key string) (*core.EndResult, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	el, ok := l.byKey[key]
	if !ok {
		return nil, false
	}
	l.order.MoveToFront(el)
	res := el.Value.(*entry).res
	return &res, true
}

func (l *ledger) put(key string, res *core.EndResult) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if el, ok := l.byKey[key]; ok {
		el.Value.(*entry).res = *res
		l.order.MoveToFront(el)
		return
	}
	l.byKey[key] = l.order.PushFront(&entry{key: key, res: *res})
	for l.order.Len() > l.max {
		old := l.order.Back()
		l.order.Remove(old)
		delete(l.byKey, old.Value.(*entry).key)
	}
}
