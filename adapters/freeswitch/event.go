package freeswitch

import (
	"strconv"
	"strings"
	"time"

	"github.com/percipia/eslgo"
)

// The events the bridge subscribes to, and nothing more (notes C3: "all" is
// heavy). HEARTBEAT keeps an idle connection visibly alive.
var subscribed = []string{
	"CHANNEL_CREATE", "CHANNEL_PARK", "CHANNEL_PROGRESS", "CHANNEL_PROGRESS_MEDIA",
	"CHANNEL_HANGUP_COMPLETE", "HEARTBEAT",
}

// legEvent is what the bridge needs from one channel event.
type legEvent struct {
	name      string
	at        time.Time // when the bridge read it, by Options.Now
	recv      time.Time // the same, by the wall clock: budgets count from it
	uuid      string
	core      string // Core-UUID: changes when FreeSWITCH restarts
	inbound   bool
	cidNumber string // Caller-Caller-ID-Number
	origCID   string // Caller-Orig-Caller-ID-Number, else origination_caller_id_number
	ani       string // Caller-ANI
	dest      string // Caller-Destination-Number
	channel   string // Channel-Name
	// parent is the leg whose call this leg belongs to, when the event says
	// (an originated B-leg, the B half of a loopback pair).
	parent string
	// dialled endpoint hints for the agent mapping
	dialedUser, dialedDomain string
	duration                 time.Duration // HANGUP_COMPLETE: how long the leg lived
	vars                     map[string]string

	src *conn // the connection it came on: commands for the leg go back there
	// parked, on the park an outbound socket reports, is told when the
	// bridge is done with the call (and whether it sent it on).
	parked func(continued bool)
}

// The channel variables the bridge reads, by short name.
var stickyVars = []string{
	"sticky_email", "sticky_customer_id", "sticky_account_number",
	"sticky_intent", "sticky_intent_status", "sticky_summary", "sticky_continue",
	// STIR/SHAKEN: the attestation and the SIP verstat parameter, set by
	// the dialplan (or sip_verstat where FreeSWITCH sets it itself).
	"sticky_attestation", "sticky_verstat", "sip_verstat",
}

// decodeEvent pulls the fields out of an event, or reports false when the
// event is not usable (no name, or a channel event without a valid UUID).
func decodeEvent(e *eslgo.Event, now time.Time) (*legEvent, bool) {
	if e == nil {
		return nil, false
	}
	le := &legEvent{name: e.GetName(), at: now, recv: time.Now()}
	if le.name == "" {
		return nil, false
	}
	if le.name == "HEARTBEAT" {
		return le, true
	}
	le.uuid = e.GetHeader("Unique-ID")
	if !validUUID(le.uuid) {
		return nil, false
	}
	le.core = e.GetHeader("Core-UUID")
	le.inbound = strings.EqualFold(e.GetHeader("Call-Direction"), "inbound")
	le.cidNumber = e.GetHeader("Caller-Caller-ID-Number")
	le.origCID = e.GetHeader("Caller-Orig-Caller-ID-Number")
	if le.origCID == "" {
		le.origCID = e.GetHeader("variable_origination_caller_id_number")
	}
	le.ani = e.GetHeader("Caller-ANI")
	le.dest = e.GetHeader("Caller-Destination-Number")
	le.channel = e.GetHeader("Channel-Name")
	le.dialedUser = e.GetHeader("variable_dialed_user")
	le.dialedDomain = e.GetHeader("variable_dialed_domain")

	// Who is this leg's parent? An originated leg names its originator;
	// the B half of a loopback pair names its A half.
	switch {
	case strings.EqualFold(e.GetHeader("Other-Type"), "originator") && validUUID(e.GetHeader("Other-Leg-Unique-ID")):
		le.parent = e.GetHeader("Other-Leg-Unique-ID")
	case validUUID(e.GetHeader("variable_originator")):
		le.parent = e.GetHeader("variable_originator")
	case validUUID(e.GetHeader("variable_originating_leg_uuid")):
		le.parent = e.GetHeader("variable_originating_leg_uuid")
	case strings.EqualFold(e.GetHeader("variable_loopback_leg"), "B") && validUUID(e.GetHeader("variable_other_loopback_leg_uuid")):
		le.parent = e.GetHeader("variable_other_loopback_leg_uuid")
	}
	if le.parent == le.uuid {
		le.parent = ""
	}
	if le.name == "CHANNEL_HANGUP_COMPLETE" {
		if us, err := strconv.ParseInt(e.GetHeader("variable_uduration"), 10, 64); err == nil && us > 0 {
			le.duration = time.Duration(us) * time.Microsecond
		} else if s, err := strconv.ParseInt(e.GetHeader("variable_duration"), 10, 64); err == nil && s > 0 {
			le.duration = time.Duration(s) * time.Second
		}
	}
	for _, k := range stickyVars {
		if v := e.GetHeader("variable_" + k); v != "" && v != "_undef_" {
			if le.vars == nil {
				le.vars = make(map[string]string, 4)
			}
			le.vars[k] = v
		}
	}
	return le, true
}

// validUUID accepts FreeSWITCH channel UUIDs (and custom ones set with
// origination_uuid): 1-64 letters, digits and '-'. It is what keeps a
// hostile header from smuggling arguments into an api command line.
func validUUID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// usableNumber rejects caller-id values that name nobody: empty, withheld,
// or the placeholder FreeSWITCH writes on a rewritten leg ("default").
func usableNumber(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "_undef_", "default", "anonymous", "restricted", "unknown", "private", "unavailable", "0000000000":
		return false
	}
	return true
}

// endpoints are the names the agent mapping is tried against, most
// specific first: user/1001@domain, the channel name, the destination.
func (le *legEvent) endpoints() []string {
	var out []string
	if le.dialedUser != "" {
		ep := "user/" + le.dialedUser
		if le.dialedDomain != "" {
			ep += "@" + le.dialedDomain
		}
		out = append(out, ep)
	}
	if le.channel != "" {
		out = append(out, le.channel)
	}
	if le.dest != "" {
		out = append(out, le.dest)
	}
	return out
}
