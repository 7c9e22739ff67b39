package core

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sticky-cc/sticky/core/redact"
	"github.com/sticky-cc/sticky/core/store"
)

// ImportRow is one customer of a CRM export, as the reader mapped its
// columns. Line is where the row starts in the file, for the rejects file.
type ImportRow struct {
	Line          int64             `json:"line"`
	CustomerRef   string            `json:"customer_ref,omitempty"`
	Name          string            `json:"name,omitempty"`
	Phones        []string          `json:"phones,omitempty"`
	Emails        []string          `json:"emails,omitempty"`
	CustomerID    string            `json:"customer_id,omitempty"`
	AccountNumber string            `json:"account_number,omitempty"`
	Variables     map[string]string `json:"variables,omitempty"`
	OpenIntents   []string          `json:"open_intents,omitempty"`
	// Reject, set by the reader, rejects a row it could not read (bad
	// JSON, a broken CSV record); it must not hold customer data.
	Reject string `json:"reject,omitempty"`
}

// Import outcomes.
const (
	ImportCreated   = "imported"
	ImportUpdated   = "updated"
	ImportUnchanged = "unchanged"
	ImportRejected  = "rejected"
)

// ImportResult is what became of one row.
type ImportResult struct {
	Line        int64  `json:"line"`
	CustomerRef string `json:"customer_ref,omitempty"`
	Outcome     string `json:"outcome"`
	Reason      string `json:"reason,omitempty"`
}

// Limits of one imported row (beyond the API's own).
const (
	MaxImportRows     = 1000 // rows per batch
	maxImportPhones   = 16
	maxImportEmails   = 16
	maxImportIntents  = 20
	importSource      = "import" // the source of what an import links and sets
	importRefAlphabet = "abcdefghijklmnopqrstuvwxyz234567"
)

// importRow is a checked, normalised row as a log entry carries it: every
// node applies it without reading its own settings (default region,
// redaction patterns), so all of them write the same.
type importRow struct {
	Line    int64             `json:"line"`
	Ref     string            `json:"ref,omitempty"`
	Derived string            `json:"derived"` // the ref a row without one gets
	IDs     [][2]string       `json:"ids"`     // kind, value
	Vars    map[string]string `json:"vars,omitempty"`
	Intents []string          `json:"intents,omitempty"`
}

// importCommand is a batch as the shared log holds it.
type importCommand struct {
	Rows []importRow `json:"rows"`
	// Rejects are the rows refused before the batch was sent, recorded
	// with the progress.
	Rejects  []store.ImportReject  `json:"rejects,omitempty"`
	Progress *store.ImportProgress `json:"progress,omitempty"`
}

// Import saves a batch of CRM rows (at most MaxImportRows): each row's
// customer is found (by its customer_ref, or by a ref derived from the
// row, or by its customer id or account number) or created, its
// identifiers are linked and its variables and open intents set, with
// "import" as their source. A row applies whole or is rejected (with a
// reason and no customer data); the other rows still apply. Importing the
// same row again changes nothing, not even UpdatedAt.
//
// progress, if set, is where the file will be once this batch is in the
// store; it is recorded in the same transaction (see
// store.ImportProgress), with this batch's rejects and counts added. The
// batch is synced to disk before Import returns. In a cluster the batch is
// one entry of the shared log.
func (e *Engine) Import(ctx context.Context, rows []ImportRow, progress *store.ImportProgress) ([]ImportResult, error) {
	if len(rows) > MaxImportRows {
		return nil, &Error{Code: CodeTooLarge, Message: "at most " + itoa(MaxImportRows) + " rows per import batch"}
	}
	if progress != nil {
		var is issues
		checkText(&is, progress.Source, MaxIDLen, true, "source")
		if progress.Offset < 0 || progress.Line < 0 || progress.RejectsAt < 0 {
			is.add("must not be negative", "offset")
		}
		if err := is.err(); err != nil {
			return nil, err
		}
		p := *progress
		p.Rejects = nil
		progress = &p
	}
	cmd := &importCommand{Progress: progress}
	results := make([]ImportResult, len(rows))
	planned, reasons := e.checkImportRows(rows)
	var at []int // results index of each planned row
	for i, r := range rows {
		pr, reason := planned[i], reasons[i]
		if reason != "" {
			results[i] = ImportResult{Line: r.Line, Outcome: ImportRejected, Reason: reason}
			cmd.Rejects = append(cmd.Rejects, store.ImportReject{Line: r.Line, Reason: reason})
			continue
		}
		cmd.Rows = append(cmd.Rows, pr)
		at = append(at, i)
	}
	if err := ctx.Err(); err != nil {
		return nil, &Error{Code: CodeUnavailable, Message: "request cancelled"}
	}
	var applied []ImportResult
	if e.rep != nil {
		if b, err := json.Marshal(cmd); err != nil || len(b) > importEntryLimit {
			return nil, &Error{Code: CodeTooLarge, Message: "the import batch is over 900 KiB once checked; send fewer rows per batch"}
		}
		out, err := e.replicate(ctx, &command{Op: opImport, Import: cmd})
		if err != nil {
			return nil, err
		}
		applied = out.([]ImportResult)
	} else {
		now := e.now()
		err := e.db.Update(func(t *store.Txn) error {
			var err error
			applied, err = e.applyImport(t, cmd, now)
			return err
		})
		if err == nil {
			err = e.db.Sync()
		}
		if err != nil {
			return nil, storeErr(err)
		}
	}
	for j, i := range at {
		results[i] = applied[j]
	}
	return results, nil
}

// ImportProgress is where the import of source got to on this node.
func (e *Engine) ImportProgress(source string) (p store.ImportProgress, found bool, err error) {
	err = e.db.View(func(t *store.Txn) error {
		p, found, err = t.ImportProgress(source)
		return err
	})
	return p, found, storeErr(err)
}

// ForgetImport drops the recorded place of source, so that the next run
// reads the file from its start. Standalone only: a cluster forgets with
// the last batch of a run.
func (e *Engine) ForgetImport(source string) error {
	return storeErr(e.db.Update(func(t *store.Txn) error { return t.DeleteImportProgress(source) }))
}

// checkImportRows checks rows on every core: normalising phone numbers
// is most of an import's work, and rows are independent.
func (e *Engine) checkImportRows(rows []ImportRow) ([]importRow, []string) {
	out, reasons := make([]importRow, len(rows)), make([]string, len(rows))
	workers := min(runtime.GOMAXPROCS(0), (len(rows)+63)/64)
	if workers <= 1 {
		for i, r := range rows {
			out[i], reasons[i] = e.checkImportRow(r)
		}
		return out, reasons
	}
	var wg sync.WaitGroup
	per := (len(rows) + workers - 1) / workers
	for lo := 0; lo < len(rows); lo += per {
		hi := min(lo+per, len(rows))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				out[i], reasons[i] = e.checkImportRow(rows[i])
			}
		}()
	}
	wg.Wait()
	return out, reasons
}

// importPhone is NormalizePhone with a shortcut for the forms CRMs export
// North American numbers in ("(415) 555-0100", "+1 415-555-0100",
// "1.415.555.0100"): with the formatting taken out they are the E.164
// form NormalizePhone returns unparsed, and the library's parse (which
// dominates an import's time) is skipped. Anything else goes the usual
// way; TestImportPhoneShortcutAgrees holds both to the same answer.
func importPhone(raw, region string) (string, error) {
	if region == "US" || region == "CA" {
		var b [16]byte
		n, plus := 0, false
		for i := 0; i < len(raw); i++ {
			c := raw[i]
			switch {
			case c >= '0' && c <= '9':
				if n == len(b) {
					return NormalizePhone(raw, region)
				}
				b[n] = c
				n++
			case c == '+' && n == 0 && !plus:
				plus = true
			case c == ' ' || c == '-' || c == '(' || c == ')' || c == '.':
			default:
				return NormalizePhone(raw, region)
			}
		}
		d := string(b[:n])
		switch {
		case n == 11 && d[0] == '1':
			d = "+" + d
		case n == 10 && !plus:
			d = "+1" + d
		default:
			return NormalizePhone(raw, region)
		}
		if nanp(d) {
			return d, nil
		}
	}
	return NormalizePhone(raw, region)
}

// checkImportRow validates and normalises one row; reason says why it is
// rejected ("" if it is not). Reasons name fields, never values.
func (e *Engine) checkImportRow(r ImportRow) (importRow, string) {
	if r.Reject != "" {
		return importRow{}, r.Reject
	}
	var why []string
	bad := func(s string) { why = append(why, s) }
	text := func(s string, max int, what string) string {
		s = strings.TrimSpace(s)
		var is issues
		checkText(&is, s, max, false, what)
		if len(is) > 0 {
			bad(what + " " + is[0].Message)
			return ""
		}
		return s
	}
	out := importRow{Line: r.Line, Ref: text(r.CustomerRef, MaxIDLen, "customer_ref")}
	add := func(kind, v string) {
		for _, id := range out.IDs {
			if id[0] == kind && id[1] == v {
				return
			}
		}
		out.IDs = append(out.IDs, [2]string{kind, v})
	}
	if v := text(r.CustomerID, MaxHintLen, "customer_id"); v != "" {
		add(KindCustomerID, v)
	}
	if v := text(r.AccountNumber, MaxHintLen, "account_number"); v != "" {
		add(KindAccount, v)
	}
	if len(r.Emails) > maxImportEmails {
		bad("more than " + itoa(maxImportEmails) + " emails")
	} else {
		for i, raw := range r.Emails {
			what := "email " + itoa(i+1)
			raw = text(raw, MaxHintLen, what)
			if raw == "" {
				continue
			}
			v, err := NormalizeEmail(raw)
			if err != nil {
				bad(what + " is not an email address")
				continue
			}
			add(KindEmail, v)
		}
	}
	if len(r.Phones) > maxImportPhones {
		bad("more than " + itoa(maxImportPhones) + " phones")
	} else {
		for i, raw := range r.Phones {
			what := "phone " + itoa(i+1)
			raw = text(raw, MaxHintLen, what)
			if raw == "" {
				continue
			}
			v, err := importPhone(raw, e.opts.DefaultRegion)
			if err != nil {
				bad(what + " is not a phone number")
				continue
			}
			if v != "" {
				add(KindPhone, v)
			}
		}
	}
	if len(r.OpenIntents) > maxImportIntents {
		bad("more than " + itoa(maxImportIntents) + " open intents")
	} else {
		for i, in := range r.OpenIntents {
			if in = text(in, MaxIntentLen, "open intent "+itoa(i+1)); in != "" && !slices.Contains(out.Intents, in) {
				out.Intents = append(out.Intents, in)
			}
		}
	}
	vars := maps.Clone(r.Variables)
	if name := strings.TrimSpace(r.Name); name != "" {
		if vars == nil {
			vars = map[string]string{}
		}
		vars["name"] = name
	}
	if len(vars) > MaxVariables {
		bad("more than " + itoa(MaxVariables) + " variables")
	} else {
		for _, name := range slices.Sorted(maps.Keys(vars)) {
			v := vars[name]
			switch {
			case !validName(name):
				bad("variable name " + strconv.Quote(clipUTF8(name, 64)) + " must be 1-64 letters, digits, '_', '-' or '.'")
			case len(v) > MaxVarValueBytes:
				bad("variable " + name + " is over 4096 bytes")
			case !validUTF8(v):
				bad("variable " + name + " is not valid UTF-8")
			case v == "":
				delete(vars, name) // an empty cell sets nothing
			}
		}
	}
	if out.Ref == "" && len(out.IDs) == 0 && len(why) == 0 {
		bad("no identifier: give at least one of customer_ref, phone, email, customer_id, account_number")
	}
	if len(why) > 0 {
		return importRow{}, strings.Join(why, "; ")
	}
	out.Vars = e.redactImport(vars)
	out.Derived = derivedRef(out)
	return out, ""
}

// redactImport redacts imported variables by End's rules (redaction.go):
// free text is redacted, an identifier-named variable holding something to
// redact is dropped.
func (e *Engine) redactImport(vars map[string]string) map[string]string {
	r := e.opts.Redactor
	if r == nil || len(vars) == 0 {
		return vars
	}
	var total redact.Counts
	for name, v := range vars {
		nv, c := r.Redact(v)
		if c.Total() == 0 {
			continue
		}
		total.Add(c)
		if identifierVariables[name] {
			delete(vars, name)
			continue
		}
		vars[name] = clipUTF8(nv, MaxVarValueBytes)
	}
	if o, ok := e.opts.Observer.(RedactionObserver); ok && total.Total() > 0 {
		o.Redacted(total)
	}
	return vars
}

// derivedRef names the customer of a row without a customer_ref after
// its strongest identifier, so that importing the row again finds the
// same customer: its customer id, else its account number, first email,
// first phone.
func derivedRef(r importRow) string {
	for _, kind := range []string{KindCustomerID, KindAccount, KindEmail, KindPhone} {
		for _, id := range r.IDs {
			if id[0] != kind {
				continue
			}
			sum := sha256.Sum256([]byte("sticky-import/1\x00" + kind + "\x00" + id[1]))
			b := make([]byte, 0, 21)
			b = append(b, "cust_"...)
			for _, c := range sum[:16] {
				b = append(b, importRefAlphabet[c&31])
			}
			return string(b)
		}
	}
	return ""
}

// applyImport writes a checked batch in t as of now; it reads nothing but
// the store and cmd, so every node writes the same.
func (e *Engine) applyImport(t *store.Txn, cmd *importCommand, now time.Time) ([]ImportResult, error) {
	out := make([]ImportResult, 0, len(cmd.Rows))
	var n [3]int64
	// Reading each row's customer and identifiers is most of a batch's
	// time; the reads run on every core first, then the rows apply in
	// order with what was read (or, where an earlier row of the batch
	// wrote it, with the transaction's own record).
	err := t.ReadAhead(runtime.GOMAXPROCS(0), len(cmd.Rows), func(t *store.Txn, i int) error {
		return e.importReads(t, &cmd.Rows[i])
	})
	if err != nil {
		return nil, err
	}
	for i := range cmd.Rows {
		res, err := e.importOne(t, &cmd.Rows[i], now)
		if err != nil {
			return nil, err
		}
		switch res.Outcome {
		case ImportCreated:
			n[0]++
		case ImportUpdated:
			n[1]++
		default:
			n[2]++
		}
		out = append(out, res)
	}
	if p := cmd.Progress; p != nil {
		old, _, err := t.ImportProgress(p.Source)
		if err != nil {
			return nil, err
		}
		if old.Offset >= p.Offset {
			old = store.ImportProgress{} // the file read again from an earlier place: count afresh
		}
		rec := *p
		rec.Imported, rec.Updated, rec.Unchanged = old.Imported+n[0], old.Updated+n[1], old.Unchanged+n[2]
		rec.Rejected = old.Rejected + int64(len(cmd.Rejects))
		rec.Rejects = cmd.Rejects
		if err := t.PutImportProgress(rec); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ref is the customer ref the row names, or the one derived from it.
func (r *importRow) ref() string {
	if r.Ref != "" {
		return r.Ref
	}
	return r.Derived
}

// importReads reads what importOne of r will read, writing nothing.
func (e *Engine) importReads(t *store.Txn, r *importRow) error {
	_, found, err := t.Customer(r.ref())
	if err != nil {
		return err
	}
	if !found && r.Ref == "" {
		if _, _, err := e.importMatch(t, r); err != nil {
			return err
		}
	}
	for _, id := range r.IDs {
		if _, err := t.Refs(id[0], id[1]); err != nil {
			return err
		}
	}
	return nil
}

func (e *Engine) importOne(t *store.Txn, r *importRow, now time.Time) (ImportResult, error) {
	ref := r.ref()
	cust, found, err := t.Customer(ref)
	if err != nil {
		return ImportResult{}, err
	}
	if !found && r.Ref == "" {
		if cust, found, err = e.importMatch(t, r); err != nil {
			return ImportResult{}, err
		}
	}
	if !found {
		cust = store.Customer{Ref: ref, CreatedAt: now}
	}
	changed := !found
	for _, id := range r.IDs {
		has := slices.ContainsFunc(cust.Identifiers, func(o store.Identifier) bool { return o.Kind == id[0] && o.Value == id[1] })
		if !has {
			cust.Identifiers = append(cust.Identifiers, store.Identifier{Kind: id[0], Value: id[1], LinkedAt: now, Source: importSource})
			changed = true
		}
		if _, err := t.AddRef(id[0], id[1], cust.Ref); err != nil {
			return ImportResult{}, err
		}
	}
	for _, name := range slices.Sorted(maps.Keys(r.Vars)) {
		v := r.Vars[name]
		i, ok := findVariable(cust.Variables, name)
		if ok && cust.Variables[i].Value == v && cust.Variables[i].ExpiresAt.After(now) {
			continue // the same value, still live: a rerun changes nothing
		}
		setVariable(&cust, store.Variable{Name: name, Value: v, Source: importSource, SetAt: now, ExpiresAt: now.Add(e.opts.VariableTTL)})
		changed = true
	}
	// An intent the customer already has, in any state, is Sticky's to
	// keep: its own record of later contacts wins over the export.
	for _, name := range r.Intents {
		if slices.ContainsFunc(cust.Intents, func(in store.Intent) bool { return in.Name == name }) {
			continue
		}
		cust.Intents = append(cust.Intents, store.Intent{Name: name, Status: StatusOpen, AttemptCount: 1,
			FirstRaisedAt: now, LastContactAt: now, LastChannel: importSource})
		changed = true
	}
	res := ImportResult{Line: r.Line, CustomerRef: cust.Ref, Outcome: ImportUnchanged}
	if !changed {
		return res, nil
	}
	res.Outcome = ImportUpdated
	if !found {
		res.Outcome = ImportCreated
	}
	cust.UpdatedAt = now
	return res, t.PutCustomer(cust)
}

// importMatch finds the customer a row without a customer_ref belongs to
// when no customer has its derived ref: the one customer holding its
// customer id (or account number), unless that customer holds another
// customer id. Emails and phones are shared within households and
// companies, so they never decide alone.
func (e *Engine) importMatch(t *store.Txn, r *importRow) (store.Customer, bool, error) {
	var ownID string
	for _, id := range r.IDs {
		if id[0] == KindCustomerID {
			ownID = id[1]
		}
	}
	for _, kind := range []string{KindCustomerID, KindAccount} {
		for _, id := range r.IDs {
			if id[0] != kind {
				continue
			}
			refs, err := t.Refs(id[0], id[1])
			if err != nil || len(refs) != 1 {
				if err != nil {
					return store.Customer{}, false, err
				}
				continue
			}
			c, ok, err := t.Customer(refs[0])
			if err != nil || !ok {
				return c, false, err
			}
			other := slices.ContainsFunc(c.Identifiers, func(o store.Identifier) bool {
				return o.Kind == KindCustomerID && ownID != "" && o.Value != ownID
			})
			if !other {
				return c, true, nil
			}
		}
	}
	return store.Customer{}, false, nil
}

// importEntryLimit keeps an import entry under the shared log's 1 MiB
// message limit, with room for the envelope.
const importEntryLimit = 900 << 10
