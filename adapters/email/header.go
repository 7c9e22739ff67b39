package email

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"net/mail"
	"net/textproto"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/htmlindex"

	"github.com/sticky-cc/sticky/core"
)

// readHeader reads a header block leniently, as mail readers must: a
// folded first line is skipped, and a block that runs into the body
// without the blank line ends at the first line that is not a field. ok
// is false at the top of a message that does not begin with a field:
// that is not mail.
func readHeader(b []byte, d *defects, top bool) (h textproto.MIMEHeader, body []byte, ok bool) {
	h = textproto.MIMEHeader{}
	// The field being read, until the next one starts: folded lines are
	// appended to it (a string per fold would be quadratic).
	var name string
	var value []byte
	flush := func() {
		if name != "" {
			k := textproto.CanonicalMIMEHeaderKey(name)
			h[k] = append(h[k], string(bytes.TrimSpace(value)))
			name, value = "", value[:0]
		}
	}
	for pos := 0; pos < len(b); {
		line, next := b[pos:], len(b)
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			line, next = line[:i], pos+i+1
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		switch {
		case len(bytes.TrimLeft(line, " \t")) == 0:
			flush()
			return h, b[next:], len(h) > 0 || !top
		case line[0] == ' ' || line[0] == '\t':
			if name == "" {
				d.add(DefectFoldedFirstLine)
			} else {
				value = append(append(value, ' '), bytes.TrimSpace(line)...)
			}
		default:
			n, v, isField := field(line)
			switch {
			case isField:
				flush()
				name, value = n, append(value[:0], v...)
			case top && pos == 0 && bytes.HasPrefix(line, []byte("From ")):
				d.add(DefectMboxFromLine) // "From jane@example.com Tue Jan 27 10:00:00 2026"
			case top && len(h) == 0 && name == "":
				return h, b, false
			default:
				flush()
				d.add(DefectNoHeaderSeparator)
				return h, b[pos:], true
			}
		}
		pos = next
	}
	flush()
	if top && len(h) == 0 {
		return h, nil, false
	}
	if top {
		d.add(DefectNoBody)
	}
	return h, nil, true
}

// field splits "Name: value". The name is printable ASCII without the
// colon (RFC 5322 ftext); white space before the colon is the obsolete
// syntax and allowed.
func field(line []byte) (name, value string, ok bool) {
	i := bytes.IndexByte(line, ':')
	if i <= 0 {
		return "", "", false
	}
	n := bytes.TrimRight(line[:i], " \t")
	if len(n) == 0 {
		return "", "", false
	}
	for _, c := range n {
		if c < 33 || c > 126 {
			return "", "", false
		}
	}
	return string(n), string(bytes.TrimSpace(line[i+1:])), true
}

// headerText is a header value as text: 8-bit bytes that are not UTF-8
// read as Windows-1252 (what such mail almost always is), encoded words
// decoded.
func headerText(v string, d *defects) string {
	return decodeWords(fix8Bit(v, d), d)
}

func fix8Bit(v string, d *defects) string {
	if utf8.ValidString(v) {
		return v
	}
	d.add(DefectHeader8Bit)
	return windows1252(v)
}

func windows1252(s string) string {
	out, err := charmap.Windows1252.NewDecoder().String(s)
	if err != nil {
		return strings.ToValidUTF8(s, "\uFFFD")
	}
	return out
}

// encodedWord is an RFC 2047 word. Text with spaces, which some mailers
// write, is accepted.
var encodedWord = regexp.MustCompile(`=\?([^?\s]+)\?([BbQq])\?([^?]*)\?=`)

// decodeWords decodes the encoded words of a header, each on its own: a
// word that will not decode is kept as written, an unknown charset is
// read as UTF-8 or Windows-1252 (mime.WordDecoder fails the whole header
// for either).
func decodeWords(v string, d *defects) string {
	if !strings.Contains(v, "=?") {
		return v
	}
	var b strings.Builder
	prevEnd, prevWord := 0, false
	for _, m := range encodedWord.FindAllStringSubmatchIndex(v, -1) {
		between := v[prevEnd:m[0]]
		text, ok := decodeWord(v[m[2]:m[3]], v[m[4]], v[m[6]:m[7]], d)
		if !ok {
			d.add(DefectBadEncodedWord)
			b.WriteString(between)
			b.WriteString(v[m[0]:m[1]])
			prevEnd, prevWord = m[1], false
			continue
		}
		// White space between two encoded words is not part of the text.
		if !prevWord || strings.TrimSpace(between) != "" {
			b.WriteString(between)
		}
		b.WriteString(text)
		prevEnd, prevWord = m[1], true
	}
	b.WriteString(v[prevEnd:])
	return strings.ToValidUTF8(b.String(), "\uFFFD")
}

func decodeWord(charset string, enc byte, text string, d *defects) (string, bool) {
	var raw []byte
	switch enc {
	case 'B', 'b':
		var bad bool
		if raw, bad = unbase64([]byte(text)); bad {
			if len(raw) == 0 {
				return "", false
			}
			d.add(DefectBadEncodedWord)
		}
	default:
		raw = qDecode(text)
	}
	if i := strings.IndexByte(charset, '*'); i >= 0 { // RFC 2231 language
		charset = charset[:i]
	}
	return toUTF8(raw, charset, d), true
}

// qDecode decodes the Q encoding; a malformed escape stays as written.
func qDecode(s string) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '_':
			out = append(out, ' ')
		case c == '=' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			out = append(out, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			out = append(out, c)
		}
	}
	return out
}

// toUTF8 converts text in charset to UTF-8, noting what it had to guess.
func toUTF8(b []byte, charset string, d *defects) string {
	cs := strings.ToLower(strings.Trim(strings.TrimSpace(charset), `"'`))
	switch cs {
	case "", "us-ascii", "ascii", "utf-8", "utf8":
		if utf8.Valid(b) {
			return string(b)
		}
		if cs == "utf-8" || cs == "utf8" {
			d.add(DefectBadCharsetData)
			return strings.ToValidUTF8(string(b), "\uFFFD")
		}
		d.add(DefectUndeclared8Bit)
		return windows1252(string(b))
	}
	enc, err := htmlindex.Get(cs)
	if err != nil {
		d.add(DefectUnknownCharset)
		if utf8.Valid(b) {
			return string(b)
		}
		return windows1252(string(b))
	}
	out, err := enc.NewDecoder().Bytes(b)
	if err != nil {
		d.add(DefectBadCharsetData)
		return strings.ToValidUTF8(string(b), "\uFFFD")
	}
	return strings.ToValidUTF8(string(out), "\uFFFD")
}

// addressParser decodes display names in any charset and passes an
// unknown one through rather than failing the address (toUTF8 and
// decodeWords note the defect).
var addressParser = &mail.AddressParser{WordDecoder: &mime.WordDecoder{
	CharsetReader: func(charset string, r io.Reader) (io.Reader, error) {
		if enc, err := htmlindex.Get(charset); err == nil {
			return enc.NewDecoder().Reader(r), nil
		}
		return r, nil
	},
}}

// rawSender finds the sender's address in a raw From value: as RFC 5322
// says it is written, else picked out of what is there ("Jane
// jane@example.com", a display name in raw Latin-1, a broken quote). ok is
// false when there is no address that normalises.
func rawSender(v string, d *defects) (addr, name string, ok bool) {
	v = strings.TrimSpace(fix8Bit(v, d))
	if v == "" {
		return "", "", false
	}
	text := decodeWords(v, d) // also notes the defects of its encoded words
	if list, err := addressParser.ParseList(v); err == nil && len(list) > 0 {
		if norm, ok := usableAddress(list[0].Address); ok {
			name := list[0].Name
			if strings.Contains(name, "=?") { // a word net/mail left encoded
				name = decodeWords(name, nil)
			}
			return norm, strings.ToValidUTF8(name, "\uFFFD"), true
		}
	}
	if m := angleAddr.FindStringSubmatchIndex(text); m != nil {
		if norm, ok := usableAddress(noMailto(text[m[2]:m[3]])); ok {
			d.add(DefectFromNotRFC5322)
			return norm, strings.Trim(strings.TrimSpace(text[:m[0]]), `"' `), true
		}
	}
	// A bare word with an @ in it counts only with a dotted domain: in a
	// From this broken, "jane@exa" is more likely cut short than local.
	for _, f := range strings.FieldsFunc(text, func(r rune) bool { return unicode.IsSpace(r) || strings.ContainsRune(`<>,;"'()`, r) }) {
		f = noMailto(strings.Trim(f, ".:"))
		if at := strings.LastIndexByte(f, '@'); at < 0 || !strings.Contains(f[at:], ".") {
			continue
		}
		if norm, ok := usableAddress(f); ok {
			d.add(DefectFromNotRFC5322)
			return norm, "", true
		}
	}
	return "", "", false
}

// noMailto drops the "mailto:" some mailers put before an address.
func noMailto(a string) string {
	if len(a) > 7 && strings.EqualFold(a[:7], "mailto:") {
		return a[7:]
	}
	return a
}

var angleAddr = regexp.MustCompile(`<\s*([^<>\s]+@[^<>\s]+?)\s*>`)

// usableAddress normalises an address and checks that it can be an
// identifier: the same test the adapter applies to external ids.
func usableAddress(a string) (string, bool) {
	norm, err := core.NormalizeEmail(a)
	if err != nil || norm == "" || utf8.RuneCountInString(norm) > core.MaxHintLen ||
		strings.IndexFunc(norm, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }) >= 0 {
		return "", false
	}
	return norm, true
}

// unbase64 decodes base64 as written in the wild: characters outside the
// alphabet are skipped, padding may be missing or repeated mid-body
// (concatenated chunks), a dangling last character is dropped. bad says
// whether any of that happened.
func unbase64(b []byte) (out []byte, bad bool) {
	out = make([]byte, 0, len(b)*3/4+3)
	var chunk []byte // undecoded characters since the last padding
	flush := func() {
		if len(chunk)%4 == 1 {
			chunk, bad = chunk[:len(chunk)-1], true
		}
		n := len(out)
		out = slices.Grow(out, base64.RawStdEncoding.DecodedLen(len(chunk)))
		out = out[:n+base64.RawStdEncoding.DecodedLen(len(chunk))]
		if k, err := base64.RawStdEncoding.Decode(out[n:], chunk); err != nil {
			out, bad = out[:n+k], true
		}
		chunk = chunk[:0]
	}
	for _, c := range b {
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '+', c == '/':
			chunk = append(chunk, c)
			if len(chunk) == 4<<10 { // a whole number of quanta
				flush()
			}
		case c == '=':
			flush()
		case c == '\r', c == '\n', c == ' ', c == '\t':
		default:
			bad = true
		}
	}
	flush()
	return out, bad
}

// unQuotedPrintable decodes quoted-printable; a malformed escape is kept
// as written, trailing white space (added in transport) is dropped.
func unQuotedPrintable(b []byte) (out []byte, bad bool) {
	out = make([]byte, 0, len(b))
	for len(b) > 0 {
		line, rest, nl := b, []byte(nil), false
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, rest, nl = b[:i], b[i+1:], true
		}
		b = rest
		line = bytes.TrimRight(bytes.TrimSuffix(line, []byte("\r")), " \t")
		soft := false
		for i := 0; i < len(line); i++ {
			c := line[i]
			if c != '=' {
				out = append(out, c)
				continue
			}
			switch {
			case i == len(line)-1:
				soft = true
			case i+2 < len(line) && isHex(line[i+1]) && isHex(line[i+2]):
				out = append(out, unhex(line[i+1])<<4|unhex(line[i+2]))
				i += 2
			default:
				bad = true
				out = append(out, c)
			}
		}
		if nl && !soft {
			out = append(out, '\n')
		}
	}
	return out, bad
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}
