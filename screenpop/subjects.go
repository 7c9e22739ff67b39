package screenpop

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Subject layout. Every id placed in a subject goes through Token first.
const (
	// SubjectPrefix is the root of every pop subject; the stream captures
	// everything below it.
	SubjectPrefix = "sticky.screenpop"
	// SubjectWrapUp is where desktops send an agent's wrap-up.
	SubjectWrapUp = "sticky.v1.calls.wrapup"
	// SubjectStart and SubjectEnd serve /v1/calls/start and /v1/calls/end
	// over NATS request/reply.
	SubjectStart = "sticky.v1.calls.start"
	SubjectEnd   = "sticky.v1.calls.end"
	// SubjectIdentifyPrefix + "." + agent token is where a desktop says who
	// the caller of a call popped to its agent is; agents may only publish
	// on their own.
	SubjectIdentifyPrefix = "sticky.v1.calls.identify"
	// SubjectProfilePrefix + "." + agent token answers a desktop with the
	// agent's own subjects (queues); agents may only ask about themselves.
	SubjectProfilePrefix = "sticky.v1.desktop.profile"
	// SubjectContextPrefix + "." + agent token is where a desktop fetches
	// the context of a call popped to its agent once the caller is
	// verified; agents may only publish on their own.
	SubjectContextPrefix = "sticky.v1.desktop.context"
	// StreamName is the JetStream stream that keeps pops for late desktops.
	StreamName = "STICKY_POPS"

	maxTokenLen = 128
)

// Token makes s safe as one subject token: '.', '*', '>', whitespace,
// control characters and '$' at the start become '_', and an empty or
// over-long id is cut or replaced, so no id can change the meaning of a
// subject (Asterisk channel ids such as 1714566897.18 contain dots, PJSIP
// names contain '/', which is allowed).
func Token(s string) string {
	if s == "" {
		return "_"
	}
	var b strings.Builder
	b.Grow(len(s))
	for i, r := range s {
		if b.Len() >= maxTokenLen {
			break
		}
		switch {
		case r == utf8.RuneError, r == '.', r == '*', r == '>', r == '$' && i == 0,
			unicode.IsSpace(r), unicode.IsControl(r), unicode.Is(unicode.Cf, r):
			b.WriteByte('_')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// AgentSubject is where the pops of one agent are published.
func AgentSubject(agent string) string { return SubjectPrefix + ".agent." + Token(agent) }

// QueueSubject is where the pops of calls waiting in a queue are published.
func QueueSubject(queue string) string { return SubjectPrefix + ".queue." + Token(queue) }

// CallSubject is where every pop of one call is published (for CRMs and
// supervisors that follow a call rather than an agent).
func CallSubject(call string) string { return SubjectPrefix + ".call." + Token(call) }

// IdentifySubject is where agent's desktop sends identify requests.
func IdentifySubject(agent string) string { return SubjectIdentifyPrefix + "." + Token(agent) }

// ContextSubject is where agent's desktop fetches a verified caller's context.
func ContextSubject(agent string) string { return SubjectContextPrefix + "." + Token(agent) }

// InboxPrefix is the only inbox an agent's connection may subscribe to on
// the embedded server, so replies and JetStream deliveries meant for one
// agent cannot be read by another. Desktops pass it as inboxPrefix.
func InboxPrefix(agent string) string { return "_INBOX_" + Token(agent) }
