package daemon

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/sticky-cc/sticky/core"
)

// The fields of a CRM row, as -map names them.
const (
	fRef      = "customer_ref"
	fName     = "name"
	fPhone    = "phone"
	fEmail    = "email"
	fCustID   = "customer_id"
	fAccount  = "account_number"
	fIntents  = "open_intents"
	fVarsJSON = "variables" // a column holding a JSON object of variables
	fVar      = "var"       // one variable, named by the column (or by var.NAME)
	fSkip     = "skip"
)

var importFields = []string{fRef, fName, fPhone, fEmail, fCustID, fAccount, fIntents, fVarsJSON}

// headerAliases maps a header, folded by foldHeader, to its field.
var headerAliases = map[string]string{
	"customerref": fRef, "ref": fRef, "stickyref": fRef,
	"name": fName, "fullname": fName, "customername": fName, "contactname": fName, "displayname": fName,
	"phone": fPhone, "phones": fPhone, "phonenumber": fPhone, "mobile": fPhone, "mobilephone": fPhone,
	"mobilenumber": fPhone, "cell": fPhone, "cellphone": fPhone, "telephone": fPhone, "tel": fPhone,
	"homephone": fPhone, "workphone": fPhone, "businessphone": fPhone, "ani": fPhone,
	"email": fEmail, "emails": fEmail, "emailaddress": fEmail, "mail": fEmail, "workemail": fEmail,
	"customerid": fCustID, "id": fCustID, "crmid": fCustID, "contactid": fCustID, "clientid": fCustID,
	"customernumber": fCustID, "customerno": fCustID,
	"accountnumber": fAccount, "account": fAccount, "accountno": fAccount, "accountid": fAccount, "acct": fAccount,
	"openintents": fIntents, "intents": fIntents, "openintent": fIntents, "intent": fIntents,
	"variables": fVarsJSON, "vars": fVarsJSON,
}

// foldHeader reduces a header to letters and digits, lower-cased, without
// trailing digits: "E-Mail Address", "email_address" and "Email 2" all
// fold to an alias of email.
func foldHeader(h string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(h) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return strings.TrimRight(b.String(), "0123456789")
}

// varName turns a header into a variable name: "Loyalty Tier" -> loyalty_tier.
func varName(h string) string {
	var b strings.Builder
	under := false
	for _, r := range strings.ToLower(strings.TrimSpace(h)) {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_'
		if !ok {
			under = true
			continue
		}
		if under && b.Len() > 0 {
			b.WriteByte('_')
		}
		under = false
		b.WriteRune(r)
	}
	s := b.String()
	if len(s) > core.MaxVarNameLen {
		s = s[:core.MaxVarNameLen]
	}
	return s
}

// target is what one column (or JSON key) becomes.
type target struct {
	field string
	name  string // the variable name, for fVar
}

// mapping is the -map and -skip flags: field -> the columns named for it.
type mapping struct {
	named map[string][]string // field (or var.NAME) -> columns
	skip  []string
}

// parseMap reads -map field=Column,field="Column, with a comma".
func parseMap(s string) (map[string][]string, error) {
	out := map[string][]string{}
	var parts []string
	var cur strings.Builder
	quoted := false
	for _, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
		case r == ',' && !quoted:
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteRune(r)
		}
	}
	if quoted {
		return nil, errors.New("a quote is not closed")
	}
	parts = append(parts, cur.String())
	for _, p := range parts {
		if strings.TrimSpace(p) == "" {
			continue
		}
		f, col, ok := strings.Cut(p, "=")
		f, col = strings.ToLower(strings.TrimSpace(f)), strings.TrimSpace(col)
		if !ok || col == "" {
			return nil, fmt.Errorf("%q is not field=Column", p)
		}
		switch {
		case f == "intent" || f == "intents":
			f = fIntents
		case f == "ref":
			f = fRef
		case f == "phones":
			f = fPhone
		case f == "emails":
			f = fEmail
		case f == "account":
			f = fAccount
		}
		if strings.HasPrefix(f, "var.") {
			if n := f[4:]; n == "" || varName(n) != n {
				return nil, fmt.Errorf("%q: var.NAME needs a variable name of letters, digits, '_', '-', '.'", p)
			}
		} else if !slices.Contains(importFields, f) {
			return nil, fmt.Errorf("unknown field %q (fields: %s, var.NAME)", f, strings.Join(importFields, ", "))
		}
		out[f] = append(out[f], col)
	}
	return out, nil
}

func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ';' || r == '|' || r == '\n' || r == '\r' })
}

// resolve maps the file's columns to fields: what -map names, then -skip,
// then the aliases; every other column is a variable. A column named in a
// flag that the file does not have is an error naming the flag.
func (m mapping) resolve(columns []string, strict bool) ([]target, error) {
	find := func(name string) int {
		if i := slices.Index(columns, name); i >= 0 {
			return i
		}
		return slices.IndexFunc(columns, func(c string) bool { return strings.EqualFold(strings.TrimSpace(c), name) })
	}
	out := make([]target, len(columns))
	set := make([]bool, len(columns))
	mapped := map[string]bool{}
	for _, f := range slices.Sorted(maps.Keys(m.named)) {
		for _, col := range m.named[f] {
			i := find(col)
			if i < 0 {
				if !strict {
					continue
				}
				return nil, fmt.Errorf("-map %s=%s: the file has no column %q (columns: %s)", f, col, col, quoteList(columns))
			}
			t := target{field: f}
			if strings.HasPrefix(f, "var.") {
				t = target{field: fVar, name: f[4:]}
			}
			out[i], set[i] = t, true
			mapped[f] = true
		}
	}
	for _, col := range m.skip {
		i := find(col)
		if i < 0 {
			if !strict {
				continue
			}
			return nil, fmt.Errorf("-skip %s: the file has no column %q (columns: %s)", col, col, quoteList(columns))
		}
		out[i], set[i] = target{field: fSkip}, true
	}
	for i, col := range columns {
		if set[i] {
			continue
		}
		f, ok := headerAliases[foldHeader(col)]
		switch {
		case ok && mapped[f]:
			out[i] = target{field: fSkip} // -map chose other columns for this field
		case ok:
			out[i] = target{field: f}
		case varName(col) == "":
			out[i] = target{field: fSkip}
		default:
			out[i] = target{field: fVar, name: varName(col)}
		}
	}
	return out, nil
}

func quoteList(cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = fmt.Sprintf("%q", c)
	}
	s := strings.Join(q, ", ")
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	return s
}

// identifies says whether the targets name at least one identifier field.
func identifies(ts []target) bool {
	return slices.ContainsFunc(ts, func(t target) bool {
		return t.field == fRef || t.field == fPhone || t.field == fEmail || t.field == fCustID || t.field == fAccount
	})
}

// put stores one value of a column into the row.
func put(r *core.ImportRow, t target, v string) error {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil
	}
	first := func(dst *string) {
		if *dst == "" {
			*dst = v
		}
	}
	switch t.field {
	case fRef:
		first(&r.CustomerRef)
	case fName:
		first(&r.Name)
	case fCustID:
		first(&r.CustomerID)
	case fAccount:
		first(&r.AccountNumber)
	case fPhone:
		r.Phones = append(r.Phones, splitList(v)...)
	case fEmail:
		r.Emails = append(r.Emails, splitList(v)...)
	case fIntents:
		r.OpenIntents = append(r.OpenIntents, splitList(v)...)
	case fVar:
		if r.Variables == nil {
			r.Variables = map[string]string{}
		}
		r.Variables[t.name] = v
	case fVarsJSON:
		var obj map[string]json.RawMessage
		if err := json.Unmarshal([]byte(v), &obj); err != nil {
			return errors.New("the variables column is not a JSON object")
		}
		for k, raw := range obj {
			s, ok := scalar(raw)
			if !ok {
				return errors.New("variable " + varName(k) + " is not a string, number or boolean")
			}
			if s != "" {
				put(r, target{field: fVar, name: k}, s)
			}
		}
	}
	return nil
}

// scalar reads a JSON string, number or boolean as text (null: "").
func scalar(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return "", true
	case raw[0] == '"':
		var s string
		return s, json.Unmarshal(raw, &s) == nil
	case string(raw) == "true" || string(raw) == "false":
		return string(raw), true
	case raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9':
		var n json.Number
		if json.Unmarshal(raw, &n) != nil {
			return "", false
		}
		return n.String(), true
	}
	return "", false
}

// Formats of a CRM export.
const (
	formatCSV   = "csv"
	formatJSONL = "jsonl"
)

// badInput is a problem with the file or the flags: exit code 2, nothing
// written.
type badInput struct{ msg string }

func (b *badInput) Error() string { return b.msg }

func badf(f string, a ...any) error { return &badInput{fmt.Sprintf(f, a...)} }

const bom = "\xef\xbb\xbf"

// sniff decides the format from the start of the file (a sample of it).
func sniff(sample []byte, forced string) (string, error) {
	s := bytes.TrimPrefix(sample, []byte(bom))
	if bytes.IndexByte(s, 0) >= 0 {
		return "", badf("line 1: the file is binary, neither CSV with a header nor JSON lines")
	}
	if forced != "" {
		return forced, nil
	}
	for i, line := range bytes.Split(s, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if line[0] == '{' {
			return formatJSONL, nil
		}
		if line[0] == '[' {
			return "", badf("line %d: a JSON array, not JSON lines (one object per line); convert it, e.g. jq -c '.[]'", i+1)
		}
		if !utf8.Valid(line) && i == 0 {
			return "", badf("line 1: not UTF-8 text, neither CSV with a header nor JSON lines")
		}
		return formatCSV, nil
	}
	return "", badf("line 1: the file is empty")
}

// csvDelimiter guesses the delimiter from the header line.
func csvDelimiter(header []byte) rune {
	best, n := ',', bytes.Count(header, []byte(","))
	for _, d := range []rune{';', '\t'} {
		if c := bytes.Count(header, []byte(string(d))); c > n {
			best, n = d, c
		}
	}
	return best
}

// rowReader reads rows from the file after the header (CSV) or from its
// start (JSON lines), keeping the byte offset and line after each row.
type rowReader interface {
	// next returns the next row and the place after it; io.EOF at the end.
	next() (row core.ImportRow, offset, line int64, err error)
}

type csvRows struct {
	cr      *csv.Reader
	targets []target
	base    int64 // file offset where cr started
	line    int64 // lines before cr started
	last    int64 // the last line read
}

func newCSVRows(r io.Reader, delim rune, targets []target, base, line int64) *csvRows {
	cr := csv.NewReader(r)
	cr.Comma = delim
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	return &csvRows{cr: cr, targets: targets, base: base, line: line, last: line}
}

func (c *csvRows) next() (core.ImportRow, int64, int64, error) {
	for {
		rec, err := c.cr.Read()
		off := c.base + c.cr.InputOffset()
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			c.last = c.line + int64(pe.Line)
			return core.ImportRow{Line: c.line + int64(pe.StartLine), Reject: "CSV: " + pe.Err.Error()}, off, c.last, nil
		}
		if err != nil {
			return core.ImportRow{}, off, c.last, err
		}
		start, _ := c.cr.FieldPos(0)
		endLine, _ := c.cr.FieldPos(len(rec) - 1)
		c.last = c.line + int64(endLine)
		row := core.ImportRow{Line: c.line + int64(start)}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue // a blank line
		}
		if len(rec) != len(c.targets) {
			row.Reject = fmt.Sprintf("has %d fields, the header has %d", len(rec), len(c.targets))
			return row, off, c.last, nil
		}
		for i, v := range rec {
			if err := put(&row, c.targets[i], v); err != nil {
				row = core.ImportRow{Line: row.Line, Reject: err.Error()}
				break
			}
		}
		return row, off, c.last, nil
	}
}

type jsonRows struct {
	br     *bufio.Reader
	m      mapping
	cache  map[string]target
	offset int64
	line   int64
}

func (j *jsonRows) targetOf(key string) target {
	if t, ok := j.cache[key]; ok {
		return t
	}
	ts, _ := j.m.resolve([]string{key}, false)
	j.cache[key] = ts[0]
	return ts[0]
}

func (j *jsonRows) next() (core.ImportRow, int64, int64, error) {
	for {
		b, err := j.br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// a line over the buffer: read it whole
			rest, err2 := j.br.ReadBytes('\n')
			b, err = append(append([]byte(nil), b...), rest...), err2
		}
		if len(b) == 0 && err != nil {
			return core.ImportRow{}, j.offset, j.line, err
		}
		j.offset += int64(len(b))
		j.line++
		b = bytes.TrimSpace(b)
		if j.line == 1 {
			b = bytes.TrimPrefix(b, []byte(bom))
		}
		if len(b) == 0 {
			if err != nil {
				return core.ImportRow{}, j.offset, j.line, err
			}
			continue
		}
		row := core.ImportRow{Line: j.line}
		var obj map[string]json.RawMessage
		if jerr := json.Unmarshal(b, &obj); jerr != nil || obj == nil {
			var se *json.SyntaxError
			row.Reject = "not a JSON object"
			if errors.As(jerr, &se) {
				row.Reject = fmt.Sprintf("not valid JSON (at byte %d)", se.Offset)
			}
			return row, j.offset, j.line, nil
		}
		for _, k := range slices.Sorted(maps.Keys(obj)) {
			t := j.targetOf(k)
			if t.field == fSkip {
				continue
			}
			if err := putJSON(&row, t, k, obj[k]); err != nil {
				row = core.ImportRow{Line: row.Line, Reject: err.Error()}
				break
			}
		}
		return row, j.offset, j.line, nil
	}
}

func putJSON(r *core.ImportRow, t target, key string, raw json.RawMessage) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil
	}
	switch raw[0] {
	case '[':
		if t.field != fPhone && t.field != fEmail && t.field != fIntents {
			return fmt.Errorf("key %q: a list is allowed only for phones, emails and open intents", varName(key))
		}
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return fmt.Errorf("key %q: not a list of strings", varName(key))
		}
		for _, it := range items {
			s, ok := scalar(it)
			if !ok {
				return fmt.Errorf("key %q: not a list of strings", varName(key))
			}
			put(r, t, s)
		}
		return nil
	case '{':
		if t.field != fVarsJSON {
			return fmt.Errorf("key %q: an object is allowed only for variables", varName(key))
		}
		return put(r, t, string(raw))
	}
	s, ok := scalar(raw)
	if !ok {
		return fmt.Errorf("key %q: not a string, number or boolean", varName(key))
	}
	return put(r, t, s)
}
