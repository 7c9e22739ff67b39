package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sticky-cc/sticky/core"
)

// Issues collects problems with a webhook body, each at its path in the body.
type Issues []core.Issue

// Add records one problem at path.
func (is *Issues) Add(msg string, path ...any) {
	*is = append(*is, core.Issue{Path: path, Message: msg})
}

// Has reports whether a problem was recorded under the top-level field first.
func (is Issues) Has(first string) bool {
	for _, i := range is {
		if len(i.Path) > 0 && i.Path[0] == first {
			return true
		}
	}
	return false
}

// Err is nil without issues, else a *core.Error with CodeInvalid.
func (is Issues) Err(message string) error {
	if len(is) == 0 {
		return nil
	}
	return &core.Error{Code: core.CodeInvalid, Message: message, Issues: is}
}

// Object is one JSON object of a body, with its path for issues.
type Object struct {
	Fields map[string]json.RawMessage
	Path   []any
}

// Decode parses b as exactly one JSON object.
func Decode(b []byte) (*Object, error) {
	o := &Object{Path: []any{}}
	dec := json.NewDecoder(bytes.NewReader(b))
	err := dec.Decode(&o.Fields)
	if err == nil && o.Fields != nil && !dec.More() {
		return o, nil
	}
	msg := "body must be one JSON object"
	if se, ok := err.(*json.SyntaxError); ok {
		msg = fmt.Sprintf("malformed JSON at byte %d: %v", se.Offset, se)
	}
	return nil, &core.Error{Code: core.CodeInvalid, Message: "invalid JSON", Issues: []core.Issue{{Path: []any{}, Message: msg}}}
}

func null(raw json.RawMessage) bool { return raw == nil || string(bytes.TrimSpace(raw)) == "null" }

// At is the path of field name inside o.
func (o *Object) At(name ...any) []any { return append(append([]any{}, o.Path...), name...) }

// Has reports whether name is present and not null.
func (o *Object) Has(name string) bool { raw, ok := o.Fields[name]; return ok && !null(raw) }

// Str reads a string field ("" when absent or null).
func (o *Object) Str(is *Issues, name string) string {
	raw, ok := o.Fields[name]
	if !ok || null(raw) {
		return ""
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		is.Add("must be a string", o.At(name)...)
	}
	return s
}

// ID reads a string or a whole number: platforms send ids as either.
func (o *Object) ID(is *Issues, name string) string {
	raw, ok := o.Fields[name]
	if !ok || null(raw) {
		return ""
	}
	raw = bytes.TrimSpace(raw)
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return strings.TrimSpace(s)
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err == nil {
		if _, err := n.Int64(); err == nil {
			return n.String()
		}
	}
	is.Add("must be a string or a whole number", o.At(name)...)
	return ""
}

// Obj reads a nested object (nil when absent, null or wrong).
func (o *Object) Obj(is *Issues, name string) *Object {
	raw, ok := o.Fields[name]
	if !ok || null(raw) {
		return nil
	}
	sub := &Object{Path: o.At(name)}
	if err := json.Unmarshal(raw, &sub.Fields); err != nil || sub.Fields == nil {
		is.Add("must be an object", o.At(name)...)
		return nil
	}
	return sub
}

// Objects reads an array of objects, at most max of them.
func (o *Object) Objects(is *Issues, name string, max int) []*Object {
	raw, ok := o.Fields[name]
	if !ok || null(raw) {
		return nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		is.Add("must be an array of objects", o.At(name)...)
		return nil
	}
	if len(list) > max {
		is.Add(fmt.Sprintf("must hold at most %d entries", max), o.At(name)...)
		return nil
	}
	out := make([]*Object, 0, len(list))
	for i, l := range list {
		sub := &Object{Path: o.At(name, i)}
		if err := json.Unmarshal(l, &sub.Fields); err != nil || sub.Fields == nil {
			is.Add("must be an object", sub.Path...)
			continue
		}
		out = append(out, sub)
	}
	return out
}

// Strings reads a string, or an array of strings.
func (o *Object) Strings(is *Issues, name string) []string {
	raw, ok := o.Fields[name]
	if !ok || null(raw) {
		return nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return []string{s}
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		is.Add("must be a string or an array of strings", o.At(name)...)
		return nil
	}
	return list
}

// Time reads an RFC 3339 timestamp (zero when absent).
func (o *Object) Time(is *Issues, name string) time.Time {
	s := o.Str(is, name)
	if s == "" {
		return time.Time{}
	}
	t, err := core.ParseTime(strings.TrimSpace(s))
	if err != nil {
		is.Add("must be an RFC 3339 timestamp such as 2026-02-06T15:30:00.000Z", o.At(name)...)
		return time.Time{}
	}
	return t
}

// OneLine collapses all white space in s to single spaces.
func OneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// Clip cuts s to at most n runes, marking a cut with "…".
func Clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return strings.TrimSpace(string(r[:n-1])) + "…"
}

// ClipBytes cuts s to at most n bytes on a rune boundary, marking a cut.
func ClipBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "…"
	if n < len(mark) {
		return ""
	}
	cut := n - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}
