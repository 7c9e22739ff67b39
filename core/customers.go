package core

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/sticky-cc/sticky/core/store"
)

// Profile is everything Sticky holds about one customer.
type Profile struct {
	CustomerRef   string                  `json:"customer_ref"`
	CreatedAt     Timestamp               `json:"created_at"`
	LastContactAt Timestamp               `json:"last_contact_at"`
	Identifiers   []IdentifierView        `json:"identifiers"`
	Variables     map[string]VariableView `json:"variables"`
	Intents       []IntentView            `json:"intents"`
	OpenIntents   []OpenIntent            `json:"open_intents"`
	History       []HistoryItem           `json:"history"`
	Headline      string                  `json:"headline"`
}

// IdentifierView is a linked identifier.
type IdentifierView struct {
	Kind     string    `json:"kind"`
	Value    string    `json:"value"`
	LinkedAt Timestamp `json:"linked_at"`
	Source   string    `json:"source,omitempty"`
}

// IntentView is any intent, resolved or not; expired ones say so.
type IntentView struct {
	Intent        string    `json:"intent"`
	Status        string    `json:"status"`
	AttemptCount  int       `json:"attempt_count"`
	FirstRaisedAt Timestamp `json:"first_raised_at"`
	LastContactAt Timestamp `json:"last_contact_at"`
}

func checkRef(ref string) error {
	var is issues
	checkText(&is, ref, MaxIDLen, true, "customer_ref")
	return is.err()
}

// Customer returns the profile of ref with up to historyLimit interactions
// (<= 0: the engine's default).
func (e *Engine) Customer(ctx context.Context, ref string, historyLimit int) (*Profile, error) {
	if err := checkRef(ref); err != nil {
		return nil, err
	}
	if historyLimit <= 0 {
		historyLimit = e.opts.HistoryLimit
	}
	var p *Profile
	err := e.db.View(func(t *store.Txn) error {
		c, ok, err := t.Customer(ref)
		if err != nil {
			return err
		}
		if !ok {
			return notFound("no customer " + quoteID(ref))
		}
		now := e.now()
		hist := c.Recent
		if historyLimit > len(c.Recent) {
			var err error
			if hist, err = t.History(c.Ref, historyLimit); err != nil {
				return err
			}
		}
		hist = hist[:min(len(hist), historyLimit)]
		p = &Profile{
			CustomerRef: c.Ref, CreatedAt: TS(c.CreatedAt), LastContactAt: TS(c.LastContactAt),
			Identifiers: []IdentifierView{}, Intents: []IntentView{},
			Variables: variableViews(c.Variables, now), OpenIntents: e.openIntents(c, now),
			History: historyItems(hist), Headline: e.headline(hist, now),
		}
		for _, id := range c.Identifiers {
			p.Identifiers = append(p.Identifiers, IdentifierView{id.Kind, id.Value, TS(id.LinkedAt), id.Source})
		}
		for _, in := range c.Intents {
			st := in.Status
			if st != StatusResolved && !e.intentLive(in, now) {
				st = "expired"
			}
			p.Intents = append(p.Intents, IntentView{in.Name, st, in.AttemptCount, TS(in.FirstRaisedAt), TS(in.LastContactAt)})
		}
		return nil
	})
	if err != nil {
		return nil, storeErr(err)
	}
	return p, nil
}

// DeleteCustomer erases a customer and every index entry and call record
// that points at them (right to erasure). The erasure is synced to disk.
func (e *Engine) DeleteCustomer(ctx context.Context, ref string) error {
	if err := checkRef(ref); err != nil {
		return err
	}
	erased := e.erasureRecord(ctx) // access log (issue 15)
	if e.rep != nil {
		_, err := e.replicate(ctx, &command{Op: opErase, Customer: ref, Access: erased})
		return err
	}
	err := e.db.Update(func(t *store.Txn) error {
		if err := e.eraseAccess(t, ref, erased); err != nil { // access log (issue 15)
			return err
		}
		return e.applyErase(t, ref)
	})
	if err == nil {
		err = e.db.Sync()
	}
	if err == nil {
		e.scrubSoon()
	}
	return storeErr(err)
}

func (e *Engine) applyErase(t *store.Txn, ref string) error {
	c, ok, err := t.Customer(ref)
	if err != nil {
		return err
	}
	if !ok {
		return notFound("no customer " + quoteID(ref))
	}
	return e.erase(t, c)
}

func (e *Engine) erase(t *store.Txn, c store.Customer) error {
	for _, id := range c.Identifiers {
		if err := t.RemoveRef(id.Kind, id.Value, c.Ref); err != nil {
			return err
		}
	}
	calls, err := t.CallIDs(c.Ref)
	if err != nil {
		return err
	}
	for _, id := range calls {
		if call, ok, err := t.Call(id); err != nil {
			return err
		} else if ok {
			if err := t.DeleteCallStart(call); err != nil { // statistics index
				return err
			}
		}
		if err := t.DeleteCall(c.Ref, id); err != nil {
			return err
		}
	}
	if err := t.DeleteAliasesTo(c.Ref); err != nil {
		return err
	}
	return t.DeleteCustomer(c.Ref)
}

// Merge folds customer from into customer into (they turned out to be one
// person): identifiers, variables (newest wins), intents, history and calls
// move over, and from becomes an alias of into.
func (e *Engine) Merge(ctx context.Context, into, from string) (*Profile, error) {
	if err := checkRef(into); err != nil {
		return nil, err
	}
	if err := checkRef(from); err != nil {
		return nil, err
	}
	if e.rep != nil {
		out, err := e.replicate(ctx, &command{Op: opMerge, Customer: into, From: from})
		if err != nil {
			return nil, err
		}
		into = out.(string)
		e.RecordAccess(ctx, Access{CustomerRef: into, Kind: AccessMerge}) // access log (issue 15)
		return e.Customer(ctx, into, 0)
	}
	err := e.db.Update(func(t *store.Txn) error {
		var err error
		into, err = e.applyMerge(t, into, from, e.now())
		return err
	})
	if err == nil {
		err = e.db.Sync()
	}
	if err != nil {
		return nil, storeErr(err)
	}
	e.RecordAccess(ctx, Access{CustomerRef: into, Kind: AccessMerge}) // access log (issue 15)
	return e.Customer(ctx, into, 0)
}

// applyMerge folds from into into, as of now, and returns into's ref.
func (e *Engine) applyMerge(t *store.Txn, into, from string, now time.Time) (string, error) {
	dst, ok, err := t.Customer(into)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", notFound("no customer " + quoteID(into))
	}
	src, ok, err := t.Customer(from)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", notFound("no customer " + quoteID(from))
	}
	if src.Ref == dst.Ref {
		return "", invalid("invalid request", Issue{Path: []any{"from"}, Message: "is already the same customer"})
	}
	// identifiers
	for _, id := range src.Identifiers {
		if err := t.RemoveRef(id.Kind, id.Value, src.Ref); err != nil {
			return "", err
		}
	}
	if err := e.link(t, &dst, src.Identifiers, now, "merge"); err != nil {
		return "", err
	}
	// variables: the newer value wins
	for _, sv := range src.Variables {
		i := slices.IndexFunc(dst.Variables, func(d store.Variable) bool { return d.Name == sv.Name })
		if i < 0 || sv.SetAt.After(dst.Variables[i].SetAt) {
			setVariable(&dst, sv)
		}
	}
	// intents: the same intent counts attempts from both
	for _, si := range src.Intents {
		i := slices.IndexFunc(dst.Intents, func(d store.Intent) bool { return d.Name == si.Name })
		if i < 0 {
			dst.Intents = append(dst.Intents, si)
			continue
		}
		di := &dst.Intents[i]
		if e.intentLive(*di, now) && e.intentLive(si, now) {
			di.AttemptCount += si.AttemptCount
			di.FirstRaisedAt = minTime(di.FirstRaisedAt, si.FirstRaisedAt)
		} else if si.LastContactAt.After(di.LastContactAt) {
			*di = si
		}
		if si.LastContactAt.After(di.LastContactAt) {
			di.LastContactAt, di.Status = si.LastContactAt, si.Status
		}
	}
	// history and calls
	hist, err := t.History(src.Ref, 0)
	if err != nil {
		return "", err
	}
	for _, h := range hist {
		if err := t.PutInteraction(dst.Ref, h); err != nil {
			return "", err
		}
		addRecent(&dst, h, e.opts.HistoryLimit)
	}
	if len(hist) > 0 {
		if err := e.retally(t, dst.Ref); err != nil { // statistics index
			return "", err
		}
	}
	calls, err := t.CallIDs(src.Ref)
	if err != nil {
		return "", err
	}
	for _, id := range calls {
		c, ok, err := t.Call(id)
		if err != nil {
			return "", err
		}
		if err := t.DeleteCall(src.Ref, id); err != nil {
			return "", err
		}
		if ok {
			c.CustomerRef = dst.Ref
			if err := t.PutCall(c); err != nil {
				return "", err
			}
		}
	}
	if src.LastContactAt.After(dst.LastContactAt) {
		dst.LastContactAt, dst.LastChannel = src.LastContactAt, src.LastChannel
	}
	dst.CreatedAt = minTime(dst.CreatedAt, src.CreatedAt)
	dst.UpdatedAt = now
	if err := t.DeleteCustomer(src.Ref); err != nil {
		return "", err
	}
	if err := t.RetargetAliases(src.Ref, dst.Ref); err != nil {
		return "", err
	}
	if err := t.PutAlias(src.Ref, dst.Ref); err != nil {
		return "", err
	}
	if err := t.MoveAccess(src.Ref, dst.Ref); err != nil { // access log (issue 15)
		return "", err
	}
	return dst.Ref, t.PutCustomer(dst)
}

func minTime(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// Unlink removes one identifier from a customer (it was linked by mistake).
// kind is an identifier kind (phone, email, customer_id, ...; other external
// ids as their key) and value is normalised like a hint.
func (e *Engine) Unlink(ctx context.Context, ref, kind, value string) error {
	if err := checkRef(ref); err != nil {
		return err
	}
	var is issues
	id := e.identifierOf(&is, kind, value)
	if err := is.err(); err != nil {
		return err
	}
	if e.rep != nil {
		_, err := e.replicate(ctx, &command{Op: opUnlink, Customer: ref, Kind: kind, Value: value})
		if err == nil {
			e.RecordAccess(ctx, Access{CustomerRef: ref, Kind: AccessUnlink}) // access log (issue 15)
		}
		return err
	}
	err := e.db.Update(func(t *store.Txn) error { return e.applyUnlink(t, ref, id, e.now()) })
	if err == nil {
		err = e.db.Sync()
	}
	if err == nil {
		e.RecordAccess(ctx, Access{CustomerRef: ref, Kind: AccessUnlink}) // access log (issue 15)
	}
	return storeErr(err)
}

func (e *Engine) applyUnlink(t *store.Txn, ref string, id store.Identifier, now time.Time) error {
	c, ok, err := t.Customer(ref)
	if err != nil {
		return err
	}
	if !ok {
		return notFound("no customer " + quoteID(ref))
	}
	i := slices.IndexFunc(c.Identifiers, func(o store.Identifier) bool { return o.Kind == id.Kind && o.Value == id.Value })
	if i < 0 {
		return notFound("customer " + quoteID(ref) + " has no such " + kindName(id.Kind))
	}
	c.Identifiers = slices.Delete(c.Identifiers, i, i+1)
	c.UpdatedAt = now
	if err := t.RemoveRef(id.Kind, id.Value, c.Ref); err != nil {
		return err
	}
	return t.PutCustomer(c)
}

func (e *Engine) identifierOf(is *issues, kind, value string) store.Identifier {
	if !validName(kind) {
		is.add("must be 1-64 letters, digits, '_', '-' or '.'", "kind")
		return store.Identifier{}
	}
	if strings.HasPrefix(strings.ToLower(kind), "x.") {
		kind = kind[2:]
	}
	var hs hintSet
	if k := strings.ToLower(kind); k == KindPhone || k == "ani" {
		hs = e.normalizeHints(is, Hints{ANI: value}, "")
	} else {
		hs = e.normalizeHints(is, Hints{ExternalIDs: map[string]string{kind: value}}, "")
	}
	if len(hs.claims) == 0 {
		is.add("is required", "value")
		return store.Identifier{}
	}
	return hs.claims[0].id
}
