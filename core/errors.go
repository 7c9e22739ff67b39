package core

import (
	"errors"
	"fmt"

	"github.com/sticky-cc/sticky/core/store"
)

// Code says what kind of failure an Error is; exactly one place (package
// core/api) maps codes to HTTP statuses, and the NATS service reuses it.
type Code int

const (
	CodeInternal    Code = iota
	CodeInvalid          // the request is malformed; nothing was written
	CodeNotFound         // the customer or call does not exist
	CodeConflict         // the call_id was used with a different body, or already ended
	CodeUnavailable      // the store cannot read or write right now; retry later
	CodeTooLarge         // the request body is over the limit
	CodeForbidden        // the caller may not do this (an agent the call was not popped to)
)

// Issue is one problem with one field of a request.
type Issue struct {
	Path    []any  `json:"path"`
	Message string `json:"message"`
}

// Error is the error type every engine operation returns.
type Error struct {
	Code    Code
	Message string
	Issues  []Issue
	// Refs names both customers of a conflict over whom a call is from.
	Refs *RefConflict
}

// RefConflict is a call assigned to one customer and said to be another's.
type RefConflict struct {
	Assigned  string `json:"assigned_customer_ref"`
	Requested string `json:"requested_customer_ref"`
}

func (e *Error) Error() string {
	if len(e.Issues) == 0 {
		return e.Message
	}
	return fmt.Sprintf("%s: %s", e.Message, e.Issues[0].Message)
}

// ErrorCode returns the Code of err (CodeInternal for foreign errors).
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if errors.Is(err, store.ErrUnavailable) {
		return CodeUnavailable
	}
	return CodeInternal
}

func invalid(msg string, issues ...Issue) *Error {
	return &Error{Code: CodeInvalid, Message: msg, Issues: issues}
}

func notFound(msg string) *Error { return &Error{Code: CodeNotFound, Message: msg} }

func conflict(msg string) *Error { return &Error{Code: CodeConflict, Message: msg} }

func forbidden(msg string) *Error { return &Error{Code: CodeForbidden, Message: msg} }

// storeErr turns a store failure into an Error that says what to do about it
// without leaking internals.
func storeErr(err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var de *store.DiskError
	if errors.As(err, &de) {
		return &Error{Code: CodeUnavailable, Message: "storage is unavailable: " + de.Problem + "; nothing was saved, retry once an operator has fixed it"}
	}
	if errors.Is(err, store.ErrUnavailable) {
		return &Error{Code: CodeUnavailable, Message: "storage is unavailable; nothing was saved, retry later"}
	}
	return err
}

// issues collects validation problems while a request is checked.
type issues []Issue

func (is *issues) add(msg string, path ...any) { *is = append(*is, Issue{Path: path, Message: msg}) }

func (is issues) err() error {
	if len(is) == 0 {
		return nil
	}
	return invalid("invalid request", is...)
}
