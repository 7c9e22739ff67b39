package core

import (
	"context"
	"maps"
	"unicode/utf8"

	"github.com/sticky-cc/sticky/core/redact"
	"github.com/sticky-cc/sticky/core/store"
)

// Redactor replaces what must not be kept (card numbers, security codes,
// SSNs, IBANs, an operator's patterns) in free text. *redact.Redactor is
// one; Options.Redactor nil keeps text as it is.
type Redactor interface {
	Redact(s string) (string, redact.Counts)
}

// RedactionObserver is an Observer that also hears what the engine
// redacted (metrics count it by kind).
type RedactionObserver interface {
	Redacted(redact.Counts)
}

// identifierVariables are the variables an end links as identifiers of
// the customer (see variableClaims).
var identifierVariables = map[string]bool{
	KindEmail: true, KindPhone: true, KindCustomerID: true, KindAccount: true, KindCRMID: true,
}

// redactEnd redacts an end's variables (the summary among them: chat
// transcripts, email bodies and subjects, Zendesk descriptions and
// wrap-ups all arrive as variables) before anything is validated,
// fingerprinted, stored, replicated or popped, so a retry of the same body
// still matches its fingerprint. Identity hints, ids and intent names are
// identifiers, not free text, and stay as they are.
//
// A variable named like an identifier (email, phone, customer_id,
// account_number, crm_id) that holds something to redact is dropped
// rather than saved redacted: linking "[card ending 1111]" as an account
// number would join every customer whose card ends in 1111.
func (e *Engine) redactEnd(req *EndRequest) {
	r := e.opts.Redactor
	if r == nil || len(req.Variables) == 0 {
		return
	}
	var total redact.Counts
	var vars map[string]string // copied on the first change: the caller's map stays as it was
	for name, v := range req.Variables {
		if len(v) > MaxVarValueBytes {
			continue // refused by validation anyway
		}
		nv, c := r.Redact(v)
		if c.Total() == 0 {
			continue
		}
		total.Add(c)
		if vars == nil {
			vars = maps.Clone(req.Variables)
		}
		if identifierVariables[name] {
			delete(vars, name)
			continue
		}
		vars[name] = clipUTF8(nv, MaxVarValueBytes) // a placeholder can be longer than what it replaced
	}
	if vars == nil {
		return
	}
	req.Variables = vars
	if o, ok := e.opts.Observer.(RedactionObserver); ok {
		o.Redacted(total)
	}
}

// clipUTF8 cuts s to at most n bytes without splitting a character.
func clipUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// RedactStoreName keys the redaction sweep's place in the store.
const RedactStoreName = "redact"

// RedactStore redacts what is already stored with r: every customer's
// variables (by the same rules as an end) and every stored interaction's
// summary. It is resumable: stopped (ctx ends, the process is killed), it
// continues from where it got to when run again. progress, if set, hears
// about every batch of batch records (0: the store's default). Found is
// counted by redact.Kind name.
func RedactStore(ctx context.Context, db *store.DB, r Redactor, batch int, progress func(store.SweepProgress)) (store.SweepProgress, error) {
	add := func(found map[string]int64, c redact.Counts) {
		for _, k := range redact.Kinds() {
			if c[k] > 0 {
				found[k.String()] += int64(c[k])
			}
		}
	}
	return db.SweepText(ctx, store.TextSweep{
		Name:  RedactStoreName,
		Batch: batch,
		Variable: func(name, value string, found map[string]int64) (string, bool) {
			nv, c := r.Redact(value)
			if c.Total() == 0 {
				return value, true
			}
			add(found, c)
			if identifierVariables[name] {
				return "", false
			}
			return clipUTF8(nv, MaxVarValueBytes), true
		},
		Summary: func(text string, found map[string]int64) string {
			nt, c := r.Redact(text)
			add(found, c)
			if len(text) <= MaxVarValueBytes {
				nt = clipUTF8(nt, MaxVarValueBytes)
			}
			return nt
		},
		Progress: progress,
	})
}
