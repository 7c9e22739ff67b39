package asterisk

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/CyCoreSystems/ari/v5"
)

// event is the part of an ARI event the bridge uses. It is decoded here
// rather than with ari.DecodeEvent because v5.3.1 drops dialplan.app_name
// and app_data (where the queue name is; notes A3) and panics on event
// types it does not know (A5#5).
type event struct {
	Type        string   `json:"type"`
	Timestamp   string   `json:"timestamp"`
	Application string   `json:"application"`
	Channel     *channel `json:"channel"`
	// Dial
	Caller     *channel `json:"caller"`
	Peer       *channel `json:"peer"`
	Dialstatus string   `json:"dialstatus"`
	// ChannelVarset
	Variable string `json:"variable"`
	Value    string `json:"value"`
}

type channel struct {
	ID           string            `json:"id"`
	Name         string            `json:"name"`
	State        string            `json:"state"`
	Caller       *callerID         `json:"caller"`
	Connected    *callerID         `json:"connected"`
	Dialplan     *dialplan         `json:"dialplan"`
	CreationTime string            `json:"creationtime"`
	Vars         map[string]string `json:"channelvars"`
}

type callerID struct {
	Name   string `json:"name"`
	Number string `json:"number"`
}

type dialplan struct {
	Context string `json:"context"`
	Exten   string `json:"exten"`
	AppName string `json:"app_name"`
	AppData string `json:"app_data"`
}

func (c *channel) callerNumber() string {
	if c == nil || c.Caller == nil {
		return ""
	}
	return c.Caller.Number
}

func (c *channel) exten() string {
	if c == nil || c.Dialplan == nil {
		return ""
	}
	return c.Dialplan.Exten
}

// queue is the queue the channel waits in, when it runs Queue().
func (c *channel) queue() string {
	if c == nil || c.Dialplan == nil || !strings.EqualFold(c.Dialplan.AppName, "Queue") {
		return ""
	}
	q, _, _ := strings.Cut(c.Dialplan.AppData, ",")
	return strings.TrimSpace(q)
}

// handled are the event types the bridge acts on; the rest (most of a
// subscribeAll stream) are skipped without decoding.
var handled = map[string]bool{
	"StasisStart": true, "StasisEnd": true, "Dial": true,
	"ChannelDestroyed": true, "ChannelVarset": true, "ApplicationReplaced": true,
}

// decode returns the event in msg, nil for an event the bridge ignores, or
// an error for a message that is not a well-formed ARI event.
func decode(msg []byte) (*event, error) {
	msg = bytes.TrimSpace(msg)
	if len(msg) == 0 || msg[0] != '{' {
		return nil, errors.New("not a JSON object")
	}
	if typ, ok := leadingType(msg); ok {
		if !handled[typ] {
			return nil, nil
		}
		// Only our own variables matter; ChannelVarset is most of the
		// stream on a busy Asterisk.
		if typ == "ChannelVarset" && !trackedVars[stringAfter(msg, `"variable"`)] {
			return nil, nil
		}
	} else if bytes.Contains(msg, []byte(`"ChannelVarset"`)) && !trackedVars[stringAfter(msg, `"variable"`)] {
		// Asterisk writes ChannelVarset with "variable" first.
		return nil, nil
	}
	var ev event
	if err := json.Unmarshal(msg, &ev); err != nil {
		return nil, err
	}
	if ev.Type == "" {
		return nil, errors.New("event without a type")
	}
	if !handled[ev.Type] {
		return nil, nil
	}
	switch ev.Type {
	case "StasisStart", "StasisEnd", "ChannelDestroyed", "ChannelVarset":
		if ev.Channel == nil || ev.Channel.ID == "" {
			return nil, errors.New(ev.Type + " without a channel id")
		}
	case "Dial":
		if ev.Peer == nil || ev.Peer.ID == "" {
			return nil, errors.New("Dial without a peer")
		}
	}
	return &ev, nil
}

// leadingType reads the value of "type" when it is the first key, as
// Asterisk writes it (notes B1), without decoding the rest.
func leadingType(msg []byte) (string, bool) {
	rest := bytes.TrimLeft(msg[1:], " \t\r\n")
	if !bytes.HasPrefix(rest, []byte(`"type"`)) {
		return "", false
	}
	return stringValue(rest[len(`"type"`):])
}

// stringAfter is the string value of the first occurrence of key, which
// for "variable" in a ChannelVarset is the top-level one (Asterisk writes
// it first); "" if it is not a plain string.
func stringAfter(msg []byte, key string) string {
	i := bytes.Index(msg, []byte(key))
	if i < 0 {
		return ""
	}
	s, _ := stringValue(msg[i+len(key):])
	return s
}

// stringValue reads `: "value"` without escapes.
func stringValue(rest []byte) (string, bool) {
	rest = bytes.TrimLeft(rest, " \t\r\n")
	if len(rest) == 0 || rest[0] != ':' {
		return "", false
	}
	rest = bytes.TrimLeft(rest[1:], " \t\r\n")
	if len(rest) == 0 || rest[0] != '"' {
		return "", false
	}
	end := bytes.IndexByte(rest[1:], '"')
	if end < 0 || bytes.IndexByte(rest[1:1+end], '\\') >= 0 {
		return "", false
	}
	return string(rest[1 : 1+end]), true
}

// parseTime reads an ARI timestamp (2026-11-24T19:19:42.819+0000); zero if
// it is absent or malformed.
func parseTime(s string) time.Time {
	t, err := time.Parse(ari.DateFormat, s)
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}
