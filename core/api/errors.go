package api

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/sticky-cc/sticky/core"
)

// ErrorBody is the error envelope of every failure, over HTTP and NATS.
type ErrorBody struct {
	Error   string   `json:"error"`
	Message string   `json:"message"`
	Details *Details `json:"details,omitempty"`
	// Code is the HTTP status; NATS replies carry it, HTTP has it already.
	Code int `json:"code,omitempty"`
}

// Details lists the problems with a request, the scopes a key lacks, or
// for a conflict over whom a call is from, both customers.
type Details struct {
	Issues []core.Issue `json:"issues,omitempty"`
	// RequiredScopes (403): an API key holding any one of them may call
	// the route.
	RequiredScopes []Scope `json:"required_scopes,omitempty"`
	AssignedRef    string  `json:"assigned_customer_ref,omitempty"`
	RequestedRef   string  `json:"requested_customer_ref,omitempty"`
}

// Status is the HTTP status for an error from the engine. It is the one
// place where engine errors become statuses.
func Status(err error) int {
	switch core.ErrorCode(err) {
	case core.CodeInvalid:
		return http.StatusBadRequest
	case core.CodeNotFound:
		return http.StatusNotFound
	case core.CodeConflict:
		return http.StatusConflict
	case core.CodeUnavailable:
		return http.StatusServiceUnavailable
	case core.CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case core.CodeForbidden:
		return http.StatusForbidden
	}
	return http.StatusInternalServerError
}

// Envelope turns an error into the body clients see. Internal errors say
// nothing about their cause.
func Envelope(err error) ErrorBody {
	status := Status(err)
	b := ErrorBody{Error: http.StatusText(status), Code: status}
	var e *core.Error
	if status == http.StatusInternalServerError || !errors.As(err, &e) {
		b.Message = "internal error; it has been logged"
		if status != http.StatusInternalServerError {
			b.Message = err.Error()
		}
		return b
	}
	b.Message = e.Message
	if len(e.Issues) > 0 {
		b.Message = describe(e)
		b.Details = &Details{Issues: e.Issues}
	}
	if e.Refs != nil {
		if b.Details == nil {
			b.Details = &Details{}
		}
		b.Details.AssignedRef, b.Details.RequestedRef = e.Refs.Assigned, e.Refs.Requested
	}
	return b
}

func describe(e *core.Error) string {
	is := e.Issues[0]
	path := ""
	for i, p := range is.Path {
		if i > 0 {
			path += "."
		}
		switch v := p.(type) {
		case string:
			path += v
		default:
			b, _ := json.Marshal(v)
			path += string(b)
		}
	}
	msg := is.Message
	if path != "" {
		msg = path + " " + msg
	}
	if len(e.Issues) > 1 {
		msg += " (and " + itoa(len(e.Issues)-1) + " more issue(s) in details)"
	}
	return msg
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// WriteError writes err as the error envelope.
func WriteError(w http.ResponseWriter, err error) {
	b := Envelope(err)
	b.Code = 0
	status := Status(err)
	if status == http.StatusServiceUnavailable {
		// Unavailable is always "try again soon": a full disk being
		// cleared, a cluster re-electing its leader.
		w.Header().Set("Retry-After", "1")
	}
	writeEnvelope(w, status, b)
}

// Fail writes an error envelope for a status that did not come from the engine.
func Fail(w http.ResponseWriter, status int, message string) {
	writeEnvelope(w, status, ErrorBody{Error: http.StatusText(status), Message: message})
}

func writeEnvelope(w http.ResponseWriter, status int, b ErrorBody) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(b)
}

// WriteJSON writes v with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
