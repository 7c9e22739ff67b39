package email

// Defects a raw message was read despite, as Message.Defects and the
// email_defects variable name them. Like the defects list of Python's
// email package they say what was worked around, never what the message
// said, so they may be stored and logged.
const (
	// The message began with an mbox "From sender date" line; skipped.
	DefectMboxFromLine = "mbox_from_line"
	// Lines end in a bare CR; read as line breaks.
	DefectCRLineEndings = "cr_line_endings"
	// The first header line was folded (began with white space); skipped.
	DefectFoldedFirstLine = "folded_first_header_line"
	// The header block ran straight into the body without a blank line;
	// the body starts at the first line that is not a header field.
	DefectNoHeaderSeparator = "missing_header_separator"
	// The message ended in its header block: there is no body.
	DefectNoBody = "no_body"
	// A header held 8-bit bytes that are not UTF-8; read as Windows-1252.
	DefectHeader8Bit = "header_8bit"
	// An RFC 2047 encoded word would not decode; kept as written.
	DefectBadEncodedWord = "bad_encoded_word"
	// A charset that is not known; read as UTF-8, else Windows-1252.
	DefectUnknownCharset = "unknown_charset"
	// Bytes that are not valid in their declared charset; replaced.
	DefectBadCharsetData = "bad_charset_data"
	// 8-bit text with no charset declared; read as Windows-1252 unless
	// it is valid UTF-8.
	DefectUndeclared8Bit = "undeclared_8bit"
	// From does not parse as RFC 5322; the address was picked out of it.
	DefectFromNotRFC5322 = "from_not_rfc5322"
	// A Date that does not parse; the time of receipt counts.
	DefectBadDate = "bad_date"
	// A Content-Type that does not parse; what could be read of it was used
	// (text/plain when nothing, as RFC 2045 says).
	DefectBadContentType = "bad_content_type"
	// An unknown Content-Transfer-Encoding; the body was taken as it is.
	DefectUnknownTransferEncoding = "unknown_transfer_encoding"
	// A multipart type without a boundary parameter.
	DefectNoBoundary = "multipart_without_boundary"
	// The boundary was found in the body rather than in the Content-Type.
	DefectGuessedBoundary = "multipart_boundary_guessed"
	// A multipart body with no parts; it was read as text.
	DefectNoParts = "multipart_without_parts"
	// A multipart body cut short before its closing boundary; the last
	// part runs to the end.
	DefectTruncatedMultipart = "multipart_truncated"
	// More parts or deeper nesting than a message needs; the rest skipped.
	DefectTooManyParts = "too_many_parts"
	// Base64 with characters outside the alphabet or a broken tail; the
	// rest was decoded.
	DefectBadBase64 = "bad_base64"
	// Quoted-printable with a malformed escape; kept as written.
	DefectBadQuotedPrintable = "bad_quoted_printable"
)

// defects collects the defects met while reading one message, each once,
// in the order met. A nil *defects drops them.
type defects struct{ list []string }

func (d *defects) add(code string) {
	if d == nil {
		return
	}
	for _, c := range d.list {
		if c == code {
			return
		}
	}
	d.list = append(d.list, code)
}
