package email

import (
	"bytes"
	"mime"
	"net/mail"
	"net/textproto"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/sticky-cc/sticky/adapters/webhook"
	"github.com/sticky-cc/sticky/core"
)

// Limits of the MIME walk: a message is context, not an archive.
const (
	maxDepth     = 8         // nested multiparts
	maxParts     = 200       // parts looked at
	maxTextBytes = 256 << 10 // text kept per part
	// A header value read is cut here: no Subject or From comes near, and
	// decoding megabytes of encoded words would cost seconds.
	maxFieldBytes = 16 << 10
)

// get is a header's first value, cut to maxFieldBytes.
func get(h textproto.MIMEHeader, key string) string {
	v := h.Get(key)
	return v[:min(len(v), maxFieldBytes)]
}

// ParseRaw decodes a raw RFC 5322 message: headers (with encoded words),
// multipart bodies, quoted-printable and base64, charsets, and HTML-only
// bodies turned into text. Attachments are skipped.
//
// Mail from the wild is read as mature mail readers read it: what can be
// read is kept and what had to be worked around is listed in
// Message.Defects (a multipart cut short, a missing boundary, a header
// block without its blank line, 8-bit or badly encoded headers, broken
// base64 ...). Only a message that does not begin with a header field (not
// mail) or has no usable From address is refused, with a validation error.
func ParseRaw(raw []byte) (*Message, error) {
	var d defects
	raw = lineEnds(raw, &d)
	h, body, ok := readHeader(raw, &d, true)
	if !ok {
		return nil, invalid([]any{}, "not an RFC 5322 message: it does not begin with a header field (Name: value)")
	}
	m := &Message{
		Subject:    webhook.OneLine(headerText(get(h, "Subject"), &d)),
		MessageID:  first(parseIDs(get(h, "Message-Id"))),
		InReplyTo:  parseIDs(get(h, "In-Reply-To")),
		References: parseIDs(get(h, "References")),
	}
	from := get(h, "From")
	addr, name, ok := rawSender(from, &d)
	if !ok {
		var is webhook.Issues
		if strings.TrimSpace(from) == "" {
			is.Add("is required: the sender's address identifies the customer", "From")
		} else {
			is.Add("holds no usable email address", "From")
		}
		return nil, is.Err("invalid email")
	}
	m.From, m.FromName = addr, name
	if v := strings.TrimSpace(get(h, "Date")); v != "" {
		// An unreadable Date is common and harmless: the time of receipt counts.
		if t, err := mail.ParseDate(v); err == nil {
			m.Date = t.UTC()
		} else {
			d.add(DefectBadDate)
		}
	}
	w := &walker{d: &d}
	w.entity(h, body, 0)
	m.Text = w.plain
	if strings.TrimSpace(m.Text) == "" {
		m.Text = HTMLText(w.html)
	}
	m.Defects = d.list
	return m, nil
}

// lineEnds turns the bare CRs of a message that has no LF at all (old Mac
// mail) into line breaks.
func lineEnds(raw []byte, d *defects) []byte {
	if bytes.IndexByte(raw, '\n') >= 0 || bytes.IndexByte(raw, '\r') < 0 {
		return raw
	}
	d.add(DefectCRLineEndings)
	return bytes.ReplaceAll(raw, []byte("\r"), []byte("\n"))
}

func invalid(path []any, msg string) error {
	return &core.Error{Code: core.CodeInvalid, Message: "invalid email", Issues: []core.Issue{{Path: path, Message: msg}}}
}

// walker finds the first text/plain and the first text/html body.
type walker struct {
	plain, html string
	parts       int
	d           *defects
}

func (w *walker) entity(h textproto.MIMEHeader, body []byte, depth int) {
	w.parts++
	if w.parts > maxParts || depth > maxDepth {
		w.d.add(DefectTooManyParts)
		return
	}
	mt, params := w.contentType(get(h, "Content-Type"))
	if cd := strings.ToLower(strings.TrimSpace(get(h, "Content-Disposition"))); strings.HasPrefix(cd, "attachment") {
		return
	}
	if !strings.HasPrefix(mt, "multipart/") {
		w.text(mt, h, params, body)
		return
	}
	boundary := params["boundary"]
	var parts [][]byte
	closed := false
	if boundary != "" {
		parts, closed = splitMultipart(body, boundary)
	} else {
		w.d.add(DefectNoBoundary)
	}
	if len(parts) == 0 {
		if g := guessBoundary(body); g != "" && g != boundary {
			w.d.add(DefectGuessedBoundary)
			parts, closed = splitMultipart(body, g)
		}
	}
	if len(parts) == 0 {
		// Nothing to split: what there is may still be the text.
		w.d.add(DefectNoParts)
		w.text("text/plain", h, nil, body)
		return
	}
	if !closed {
		w.d.add(DefectTruncatedMultipart)
	}
	for _, p := range parts {
		ph, pb, _ := readHeader(p, w.d, false)
		w.entity(ph, pb, depth+1)
	}
}

// text keeps the first text/plain and the first text/html body.
func (w *walker) text(mt string, h textproto.MIMEHeader, params map[string]string, body []byte) {
	switch {
	case mt == "text/plain" && w.plain == "":
		w.plain = w.decode(get(h, "Content-Transfer-Encoding"), params["charset"], body)
	case mt == "text/html" && w.html == "":
		w.html = w.decode(get(h, "Content-Transfer-Encoding"), params["charset"], body)
	}
}

// contentType reads a Content-Type as far as it can: the media type of a
// value with a broken parameter, the parameters one by one, text/plain
// when there is no type at all (RFC 2045's default).
func (w *walker) contentType(ct string) (string, map[string]string) {
	if strings.TrimSpace(ct) == "" {
		return "text/plain", map[string]string{}
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err == nil {
		return mt, params
	}
	w.d.add(DefectBadContentType)
	if mt == "" {
		mt = "text/plain"
		if m := mediaType.FindStringSubmatch(ct); m != nil {
			mt = strings.ToLower(m[1])
		}
	}
	params = map[string]string{}
	for _, m := range mediaParam.FindAllStringSubmatch(ct, -1) {
		k, v := strings.ToLower(m[1]), strings.TrimSpace(m[2])
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = strings.ReplaceAll(v[1:len(v)-1], `\"`, `"`)
		}
		if _, dup := params[k]; !dup && v != "" {
			params[k] = v
		}
	}
	return mt, params
}

var (
	mediaType  = regexp.MustCompile(`^\s*([A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+)`)
	mediaParam = regexp.MustCompile(`(?i);\s*([a-z0-9_.*-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)`)
)

// splitMultipart cuts a multipart body at its delimiter lines ("--b",
// closed by "--b--"; RFC 2046 allows white space after them). A body that
// ends before the closing delimiter is cut short: its last part runs to
// the end and closed is false.
func splitMultipart(body []byte, boundary string) (parts [][]byte, closed bool) {
	delim := []byte("--" + boundary)
	start := -1 // where the current part began
	for pos := 0; pos < len(body); {
		line, next := body[pos:], len(body)
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			line, next = line[:i], pos+i+1
		}
		if rest, ok := bytes.CutPrefix(line, delim); ok {
			end, isClose := bytes.CutPrefix(rest, []byte("--"))
			if len(bytes.Trim(end, " \t\r")) == 0 {
				if start >= 0 {
					parts = append(parts, trimLineEnd(body[start:pos]))
				}
				if isClose {
					return parts, true
				}
				start = next
				if len(parts) >= maxParts {
					return parts, false
				}
			}
		}
		pos = next
	}
	if start >= 0 {
		parts = append(parts, body[start:])
	}
	return parts, false
}

// trimLineEnd drops the line break before a delimiter, which belongs to it.
func trimLineEnd(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// guessBoundary finds the boundary of a multipart body whose Content-Type
// lost it: the first "--something" line followed by a header field, near
// the top of the body.
func guessBoundary(body []byte) string {
	lines := bytes.SplitN(body[:min(len(body), 64<<10)], []byte("\n"), 200)
	for i := 0; i+1 < len(lines); i++ {
		l := bytes.TrimRight(lines[i], " \t\r")
		if len(l) < 3 || len(l) > 200 || !bytes.HasPrefix(l, []byte("--")) || bytes.ContainsAny(l, " \t") {
			continue
		}
		if _, _, ok := field(bytes.TrimSuffix(lines[i+1], []byte("\r"))); ok {
			return string(l[2:])
		}
	}
	return ""
}

// decode undoes the transfer encoding and the charset of one text part.
func (w *walker) decode(cte, charset string, body []byte) string {
	// A message is context, not an archive: no text part needs more than
	// this much of its encoding (quoted-printable triples a byte at most).
	body = body[:min(len(body), 3*maxTextBytes+4)]
	var b []byte
	switch enc := strings.ToLower(strings.TrimSpace(cte)); enc {
	case "base64":
		var bad bool
		if b, bad = unbase64(body); bad {
			w.d.add(DefectBadBase64)
		}
	case "quoted-printable":
		var bad bool
		if b, bad = unQuotedPrintable(body); bad {
			w.d.add(DefectBadQuotedPrintable)
		}
	case "", "7bit", "8bit", "binary":
		b = body
	default:
		w.d.add(DefectUnknownTransferEncoding)
		b = body
	}
	text := toUTF8(b, charset, w.d)
	if len(text) > maxTextBytes {
		cut := maxTextBytes
		for cut > 0 && !utf8.RuneStart(text[cut]) {
			cut--
		}
		text = text[:cut]
	}
	return text
}
