package email

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"

	"golang.org/x/text/encoding/htmlindex"

	"github.com/sticky-cc/sticky/adapters/webhook"
	"github.com/sticky-cc/sticky/core"
)

// Limits of the MIME walk: a message is context, not an archive.
const (
	maxDepth     = 8         // nested multiparts
	maxParts     = 200       // parts looked at
	maxTextBytes = 256 << 10 // text kept per part
)

// wordDecoder decodes RFC 2047 encoded words in any charset Go knows.
var wordDecoder = &mime.WordDecoder{CharsetReader: charsetReader}

func charsetReader(charset string, r io.Reader) (io.Reader, error) {
	enc, err := htmlindex.Get(charset)
	if err != nil {
		return nil, fmt.Errorf("unknown charset %q", charset)
	}
	return enc.NewDecoder().Reader(r), nil
}

// decodeHeader decodes encoded words, keeping the raw text when they are
// malformed.
func decodeHeader(v string) string {
	d, err := wordDecoder.DecodeHeader(v)
	if err != nil {
		d = v
	}
	return strings.ToValidUTF8(d, "\uFFFD")
}

// ParseRaw decodes a raw RFC 5322 message: headers (with encoded words),
// multipart bodies, quoted-printable and base64, charsets, and HTML-only
// bodies turned into text. Attachments are skipped.
func ParseRaw(raw []byte) (*Message, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return nil, invalid([]any{}, "not an RFC 5322 message: "+err.Error())
	}
	h := msg.Header
	var is webhook.Issues
	m := &Message{
		Subject:    webhook.OneLine(decodeHeader(h.Get("Subject"))),
		MessageID:  first(parseIDs(h.Get("Message-Id"))),
		InReplyTo:  parseIDs(h.Get("In-Reply-To")),
		References: parseIDs(h.Get("References")),
	}
	from := h.Get("From")
	if addr, name, ok := sender(from, &mail.AddressParser{WordDecoder: wordDecoder}); ok {
		m.From, m.FromName = addr, strings.ToValidUTF8(name, "\uFFFD")
	} else if strings.TrimSpace(from) == "" {
		is.Add("is required: the sender's address identifies the customer", "From")
	} else {
		is.Add("is not an email address", "From")
	}
	if d := strings.TrimSpace(h.Get("Date")); d != "" {
		if t, err := mail.ParseDate(d); err == nil {
			m.Date = t.UTC()
		} // an unreadable Date is common and harmless: the time of receipt counts
	}
	if err := is.Err("invalid email"); err != nil {
		return nil, err
	}
	w := &walker{}
	if err := w.part(textproto.MIMEHeader(h), msg.Body, 0); err != nil {
		return nil, err
	}
	m.Text = w.plain
	if strings.TrimSpace(m.Text) == "" {
		m.Text = HTMLText(w.html)
	}
	return m, nil
}

func invalid(path []any, msg string) error {
	return &core.Error{Code: core.CodeInvalid, Message: "invalid email", Issues: []core.Issue{{Path: path, Message: msg}}}
}

// walker finds the first text/plain and the first text/html body.
type walker struct {
	plain, html string
	parts       int
}

func (w *walker) part(h textproto.MIMEHeader, body io.Reader, depth int) error {
	w.parts++
	if w.parts > maxParts || depth > maxDepth {
		return nil
	}
	ct := h.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		mt, params = "text/plain", map[string]string{}
		if ct != "" && !strings.HasPrefix(strings.ToLower(strings.TrimSpace(ct)), "text/plain") {
			mt = "application/octet-stream"
		}
	}
	if disp, _, err := mime.ParseMediaType(h.Get("Content-Disposition")); err == nil && disp == "attachment" {
		return nil
	}
	switch {
	case strings.HasPrefix(mt, "multipart/"):
		boundary := params["boundary"]
		if boundary == "" {
			return invalid([]any{"Content-Type"}, "multipart body without a boundary")
		}
		mr := multipart.NewReader(body, boundary)
		n := 0
		for {
			p, err := mr.NextRawPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				if n > 0 || w.plain != "" || w.html != "" {
					return nil // a truncated tail after readable parts: keep what we have
				}
				return invalid([]any{"body"}, "malformed multipart body: "+err.Error())
			}
			n++
			if err := w.part(p.Header, p, depth+1); err != nil {
				return err
			}
		}
		return nil
	case mt == "text/plain" && w.plain == "", mt == "text/html" && w.html == "":
		text, err := decodeBody(h.Get("Content-Transfer-Encoding"), params["charset"], body)
		if err != nil {
			return invalid([]any{"body"}, err.Error())
		}
		if mt == "text/plain" {
			w.plain = text
		} else {
			w.html = text
		}
	}
	return nil
}

// decodeBody undoes the transfer encoding and the charset of one part.
func decodeBody(cte, charset string, body io.Reader) (string, error) {
	var r io.Reader = body
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, &spaceless{r: body})
	case "quoted-printable":
		r = quotedprintable.NewReader(body)
	}
	b, err := io.ReadAll(io.LimitReader(r, maxTextBytes))
	if err != nil && len(b) == 0 {
		return "", fmt.Errorf("cannot decode the %s body: %v", strings.ToLower(cte), err)
	}
	cs := strings.ToLower(strings.TrimSpace(charset))
	if cs != "" && cs != "utf-8" && cs != "utf8" && cs != "us-ascii" {
		if enc, err := htmlindex.Get(cs); err == nil {
			if d, err := enc.NewDecoder().Bytes(b); err == nil {
				b = d
			}
		}
	}
	return strings.ToValidUTF8(string(b), "\uFFFD"), nil
}

// spaceless drops the white space base64 bodies are wrapped with (the
// decoder itself only skips CR and LF).
type spaceless struct{ r io.Reader }

func (s *spaceless) Read(p []byte) (int, error) {
	for {
		n, err := s.r.Read(p)
		j := 0
		for _, c := range p[:n] {
			if c != ' ' && c != '\t' {
				p[j] = c
				j++
			}
		}
		if j > 0 || err != nil {
			return j, err
		}
	}
}
