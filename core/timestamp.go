package core

import (
	"fmt"
	"time"
)

// TimeLayout is the wire format of every timestamp: RFC 3339, UTC, milliseconds.
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// Timestamp marshals as RFC 3339 UTC with milliseconds; the zero value is null.
type Timestamp struct{ time.Time }

// TS wraps t.
func TS(t time.Time) Timestamp { return Timestamp{t} }

func (t Timestamp) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return []byte(`"` + t.UTC().Format(TimeLayout) + `"`), nil
}

func (t *Timestamp) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*t = Timestamp{}
		return nil
	}
	if len(b) < 2 || b[0] != '"' {
		return fmt.Errorf("timestamp must be an RFC 3339 string")
	}
	v, err := ParseTime(string(b[1 : len(b)-1]))
	if err != nil {
		return err
	}
	t.Time = v
	return nil
}

// ParseTime accepts RFC 3339 (with or without fractional seconds).
func ParseTime(s string) (time.Time, error) {
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not an RFC 3339 timestamp", s)
	}
	return v.UTC(), nil
}
