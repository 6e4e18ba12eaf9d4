package client

import (
	"context"
	"errors"
	"strconv"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Sentinels for errors.Is. Every error of a request is an *Error; these
// name the cases a caller acts on.
var (
	// ErrNotFound is returned by Get and by an unconditional Delete when the
	// key does not exist.
	ErrNotFound = errors.New("client: key not found")
	// ErrConditionFailed is returned by Put and Delete when their
	// PrevRevision or CreateOnly condition does not hold; nothing was
	// applied. Error.CurrentRevision holds the key's mod_revision (0: the
	// key does not exist).
	ErrConditionFailed = errors.New("client: condition failed")
	// ErrNotApplied is returned when the last attempt was not applied: the
	// server answered UNAVAILABLE with reason NOT_APPLIED (no leader yet,
	// node starting), or no connection to any node could be made. The
	// request may be retried as it is.
	ErrNotApplied = errors.New("client: not applied")
	// ErrOutcomeUnknown is returned when a write may or may not have been
	// applied: the server answered DEADLINE_EXCEEDED with reason
	// OUTCOME_UNKNOWN (leader change, timeout), or the connection broke or
	// the caller's ctx ended after the write was sent. Read the key before
	// retrying it, or retry with PrevRevision.
	ErrOutcomeUnknown = errors.New("client: outcome unknown")
	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("client: closed")
)

// The reasons and metadata of the server's google.rpc.ErrorInfo details
// (domain "cave"); they equal gateway.ReasonNotApplied and its siblings,
// which this package does not import to stay free of the server.
const (
	reasonNotApplied      = "NOT_APPLIED"
	reasonOutcomeUnknown  = "OUTCOME_UNKNOWN"
	reasonConditionFailed = "CONDITION_FAILED"
	metaCurrentRevision   = "current_revision"
	errorDomain           = "cave"
)

// Error is the error of a request that failed: the server refused it, or
// it could not reach a server. Its gRPC status is the server's answer or
// the one gRPC made for the failure (GRPCStatus, so status.Code(err) and
// status.Convert(err) work); errors.Is matches one of the sentinels when
// it applies, and context.Canceled or context.DeadlineExceeded when the
// caller's ctx ended the request.
type Error struct {
	// CurrentRevision is the key's mod_revision when the error is
	// ErrConditionFailed (0: the key does not exist), else 0.
	CurrentRevision int64

	st   *status.Status
	kind error // a sentinel, or nil
	ctx  error // the ctx's error when it ended the request, or nil
}

// Error returns the status code and the server's message.
func (e *Error) Error() string { return "client: " + e.st.Code().String() + ": " + e.st.Message() }

// GRPCStatus returns the status of the failure.
func (e *Error) GRPCStatus() *status.Status { return e.st }

// Is reports whether target is the sentinel that e matches.
func (e *Error) Is(target error) bool { return e.kind != nil && target == e.kind }

// Unwrap returns the ctx's error when the caller's ctx ended the request.
func (e *Error) Unwrap() error { return e.ctx }

// classify turns the error of one attempt into an *Error. sent reports
// whether the request reached a connection; write whether it changes
// data, so that a connection that breaks after sending leaves the outcome
// unknown.
func classify(ctx context.Context, err error, sent, write bool) *Error {
	st := status.Convert(err)
	e := &Error{st: st}
	info := errorInfo(st)
	switch {
	case st.Code() == codes.NotFound:
		e.kind = ErrNotFound
	case st.Code() == codes.FailedPrecondition && info.GetReason() == reasonConditionFailed:
		e.kind = ErrConditionFailed
		e.CurrentRevision, _ = strconv.ParseInt(info.GetMetadata()[metaCurrentRevision], 10, 64)
	case st.Code() == codes.Unavailable && (info.GetReason() == reasonNotApplied || !sent):
		e.kind = ErrNotApplied
	case st.Code() == codes.DeadlineExceeded && info.GetReason() == reasonOutcomeUnknown:
		e.kind = ErrOutcomeUnknown
	case write && sent && (st.Code() == codes.Unavailable || st.Code() == codes.DeadlineExceeded || st.Code() == codes.Canceled):
		e.kind = ErrOutcomeUnknown // the connection broke or the ctx ended after sending
	}
	if c := st.Code(); ctx.Err() != nil && (c == codes.DeadlineExceeded || c == codes.Canceled) {
		e.ctx = ctx.Err()
	}
	return e
}

// ctxError is the error of a request whose ctx ended before any attempt.
func ctxError(ctx context.Context) *Error {
	return &Error{st: status.FromContextError(ctx.Err()), ctx: ctx.Err()}
}

// errorInfo returns st's ErrorInfo detail of cave's domain, or nil.
func errorInfo(st *status.Status) *errdetails.ErrorInfo {
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.GetDomain() == errorDomain {
			return ei
		}
	}
	return nil
}
