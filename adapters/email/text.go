package email

import (
	"regexp"
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// HTMLText turns an HTML body into plain text: block elements become line
// breaks, scripts and styles vanish, and quoted replies (blockquote,
// Gmail's and Thunderbird's quote blocks, Outlook's reply header and what
// follows it) are dropped.
func HTMLText(s string) string {
	if strings.TrimSpace(s) == "" {
		return ""
	}
	doc, err := html.Parse(strings.NewReader(s))
	if err != nil {
		return ""
	}
	var b strings.Builder
	stop := false
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if stop {
			return
		}
		switch n.Type {
		case html.TextNode:
			b.WriteString(strings.Join(strings.Fields(n.Data), " "))
			if t := n.Data; t != "" && (t[len(t)-1] == ' ' || t[len(t)-1] == '\n' || t[len(t)-1] == '\t') {
				b.WriteByte(' ')
			}
			return
		case html.ElementNode:
			switch n.DataAtom {
			case atom.Script, atom.Style, atom.Head, atom.Title, atom.Blockquote, atom.Template:
				return
			case atom.Br:
				b.WriteByte('\n')
				return
			case atom.Hr:
				b.WriteByte('\n')
				return
			}
			for _, a := range n.Attr {
				v := strings.ToLower(a.Val)
				switch {
				case a.Key == "class" && (strings.Contains(v, "gmail_quote") || strings.Contains(v, "yahoo_quoted") ||
					strings.Contains(v, "moz-cite-prefix") || strings.Contains(v, "gmail_signature")):
					return
				case a.Key == "id" && (v == "divrplyfwdmsg" || v == "appendonsend" || strings.HasPrefix(v, "yiv") && strings.Contains(v, "quoted")):
					stop = true // Outlook: the rest of the body is the quoted thread
					return
				}
			}
		}
		block := n.Type == html.ElementNode && blockElems[n.DataAtom]
		if block {
			b.WriteByte('\n')
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
		if block {
			b.WriteByte('\n')
		}
	}
	walk(doc)
	lines := strings.Split(b.String(), "\n")
	out := lines[:0]
	for _, l := range lines {
		out = append(out, strings.TrimSpace(l))
	}
	return strings.TrimSpace(blankRuns.ReplaceAllString(strings.Join(out, "\n"), "\n\n"))
}

var blankRuns = regexp.MustCompile(`\n{3,}`)

var blockElems = map[atom.Atom]bool{
	atom.P: true, atom.Div: true, atom.Li: true, atom.Ul: true, atom.Ol: true, atom.Tr: true, atom.Table: true,
	atom.H1: true, atom.H2: true, atom.H3: true, atom.H4: true, atom.H5: true, atom.H6: true, atom.Pre: true,
	atom.Section: true, atom.Article: true, atom.Header: true, atom.Footer: true, atom.Dd: true, atom.Dt: true,
}

var (
	// "On Mon, Jan 26, 2026 at 2:00 PM Jane <jane@x.com> wrote:" and its
	// translations; the attribution may wrap onto a second line.
	attribution = regexp.MustCompile(`(?i)^(on|am|le|el|il|op|em|den|på)\s.*(wrote|schrieb|a écrit|escribió|ha scritto|schreef|escreveu|skrev)(\s.*)?:\s*$`)
	attrStart   = regexp.MustCompile(`(?i)^(on|am|le|el|il|op|em|den|på)\s.{8,}`)
	attrEnd     = regexp.MustCompile(`(?i)(wrote|schrieb|a écrit|escribió|ha scritto|schreef|escreveu|skrev)\s*:\s*$`)
	originalMsg = regexp.MustCompile(`(?i)^-{2,}\s*(original message|forwarded message|ursprüngliche nachricht|message d'origine)\s*-{2,}$`)
	headerLine  = regexp.MustCompile(`(?i)^\*?(from|von|de|van)\s*:\*?\s`)
	headerNext  = regexp.MustCompile(`(?i)^\*?(sent|date|to|gesendet|datum|envoyé|subject)\s*:`)
	mobileSig   = regexp.MustCompile(`(?i)^(sent from my |sent from mail for |get outlook for |envoyé de mon |von meinem .* gesendet)`)
	valediction = regexp.MustCompile(`(?i)^(thanks|thank you|many thanks|thanks again|thx|best|best regards|kind regards|warm regards|regards|cheers|sincerely|yours|br|mit freundlichen grüßen|cordialement)\s*[,.!]?\s*$`)
)

// NewText is what the sender wrote in this message: quoted replies,
// forwarded or quoted earlier messages, and the signature are removed.
func NewText(text string) string {
	text = strings.ReplaceAll(strings.ReplaceAll(text, "\r\n", "\n"), "\r", "\n")
	lines := strings.Split(text, "\n")
	var kept []string
cut:
	for i, l := range lines {
		t := strings.TrimSpace(l)
		var next string
		if i+1 < len(lines) {
			next = strings.TrimSpace(lines[i+1])
		}
		switch {
		case strings.HasPrefix(t, ">"):
			continue // an interleaved quote
		case l == "-- " || t == "--" || t == "—" || strings.HasPrefix(t, "__________"):
			break cut
		case attribution.MatchString(t), attrStart.MatchString(t) && attrEnd.MatchString(next) && !attrEnd.MatchString(t):
			break cut
		case originalMsg.MatchString(t), mobileSig.MatchString(t):
			break cut
		case headerLine.MatchString(t) && headerNext.MatchString(next):
			break cut
		}
		kept = append(kept, strings.TrimRight(l, " \t"))
	}
	// A closing ("Thanks," / "Best regards,") near the end starts the
	// signature.
	nonEmpty := 0
	for i := len(kept) - 1; i >= 0 && nonEmpty < 5; i-- {
		t := strings.TrimSpace(kept[i])
		if t == "" {
			continue
		}
		nonEmpty++
		if valediction.MatchString(t) {
			kept = kept[:i]
			break
		}
	}
	return strings.TrimSpace(blankRuns.ReplaceAllString(strings.Join(kept, "\n"), "\n\n"))
}
