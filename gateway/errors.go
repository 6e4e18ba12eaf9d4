package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cavedb/cave/auth"
	"github.com/cavedb/cave/node"
	"github.com/cavedb/cave/router"
	"github.com/cavedb/cave/secrets"
)

// Reasons in the google.rpc.ErrorInfo detail (domain ErrorDomain) of the
// failures a client must tell apart without reading messages, and in the
// "reason" field of the REST error body:
const (
	// ReasonNotApplied comes with UNAVAILABLE (HTTP 503, Retry-After): the
	// request was not applied and may be retried as it is, on any node.
	ReasonNotApplied = "NOT_APPLIED"
	// ReasonOutcomeUnknown comes with DEADLINE_EXCEEDED (HTTP 504): the
	// write may or may not have been applied; read before retrying a
	// conditional write.
	ReasonOutcomeUnknown = "OUTCOME_UNKNOWN"
	// ReasonConditionFailed comes with FAILED_PRECONDITION (HTTP 412) when
	// a prev_revision condition does not hold; nothing was applied. The
	// ErrorInfo metadata MetaCurrentRevision holds the key's current
	// mod_revision in decimal ("0": the key does not exist).
	ReasonConditionFailed = "CONDITION_FAILED"
	// MetaCurrentRevision is the ErrorInfo metadata key of the current
	// revision that comes with ReasonConditionFailed.
	MetaCurrentRevision = "current_revision"
	// ErrorDomain is the ErrorInfo domain of cave's reasons.
	ErrorDomain = "cave"
)

// withReason returns a status with msg and an ErrorInfo detail naming
// reason, with metadata md (nil for none).
func withReason(c codes.Code, reason, msg string, md map[string]string) error {
	st := status.New(c, msg)
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: ErrorDomain, Metadata: md}); err == nil {
		st = d
	}
	return st.Err()
}

// reasonOf returns the ErrorInfo reason of st, or "".
func reasonOf(st *status.Status) string {
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok {
			return ei.GetReason()
		}
	}
	return ""
}

// retryAfterSeconds is the Retry-After of a 503: a leader election takes
// about one election timeout (500 ms by default).
const retryAfterSeconds = "1"

// toStatus chooses the gRPC status for an error from the router, node,
// secrets or auth. The messages of node's refusals of an operator's
// request (ErrBadRequest, ErrPrecondition) are returned as they are: they
// name shards, nodes and counts. It is the only place that does: an ordered switch of
// errors.Is cases. Anything unmatched is Internal, and its cause is
// logged, not returned. The messages of auth's errors about the caller's
// input are returned as they are: they name users, roles, prefixes and
// token ids, never a secret.
func toStatus(lg *slog.Logger, err error) error {
	var cond *router.ConditionError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &cond):
		return withReason(codes.FailedPrecondition, ReasonConditionFailed,
			fmt.Sprintf("condition failed: the current revision of %q is %d", cond.Key, cond.Current),
			map[string]string{MetaCurrentRevision: strconv.FormatInt(cond.Current, 10)})
	case errors.Is(err, router.ErrKeyNotFound):
		return status.Error(codes.NotFound, "key not found")
	case errors.Is(err, router.ErrBadPageToken):
		return status.Error(codes.InvalidArgument, "page_token is malformed: pass the next_page_token of the previous page")
	case errors.Is(err, router.ErrCompacted):
		return status.Error(codes.OutOfRange, "resume token compacted: re-read and watch from now")
	case errors.Is(err, router.ErrSlowWatcher):
		return status.Error(codes.ResourceExhausted, "the watcher fell behind its buffer and was cut: watch again with the last resume_token")
	case errors.Is(err, router.ErrTooLarge):
		return status.Error(codes.ResourceExhausted, "request too large")
	case errors.Is(err, router.ErrUnknownOutcome), errors.Is(err, node.ErrUnknownOutcome):
		return withReason(codes.DeadlineExceeded, ReasonOutcomeUnknown,
			"the write was interrupted (leader change or timeout) and may or may not have been applied; read the key before retrying", nil)
	case errors.Is(err, node.ErrBadRequest):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, node.ErrPrecondition):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, router.ErrUnavailable), errors.Is(err, node.ErrNotInitialized), errors.Is(err, node.ErrNotReady),
		errors.Is(err, node.ErrNoReplica), errors.Is(err, node.ErrClosed):
		return withReason(codes.Unavailable, ReasonNotApplied, "shard unavailable (no leader yet or node not ready); nothing was applied, retry shortly", nil)
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request canceled")
	case errors.Is(err, secrets.ErrWrongKEK), errors.Is(err, secrets.ErrBadKEK):
		return status.Error(codes.FailedPrecondition, "this node's key-encryption key does not open the cluster keyring; the operator must start it with the cluster's --kek-file")
	case errors.Is(err, secrets.ErrConflict):
		return status.Error(codes.Aborted, "the keyring was rotated concurrently; retry")
	case errors.Is(err, secrets.ErrUnknownKey):
		return status.Error(codes.FailedPrecondition, "the value is sealed under a data key the cluster keyring does not hold")
	case errors.Is(err, secrets.ErrCorrupt) && !errors.Is(err, secrets.ErrBadKeyring):
		return status.Error(codes.FailedPrecondition, "the stored value is not an intact secret for this key (altered, or copied from another key)")
	case errors.Is(err, auth.ErrInvalidPolicy):
		// A corrupt stored policy, or a bug: never the caller's input,
		// though it may wrap the errors of the checks below. Internal.
	case errors.Is(err, auth.ErrInvalidName), errors.Is(err, auth.ErrInvalidGrant), errors.Is(err, auth.ErrInvalidTTL),
		errors.Is(err, auth.ErrInvalidToken):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, auth.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, auth.ErrExists):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, auth.ErrBuiltIn):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, auth.ErrPolicyConflict):
		return status.Error(codes.Aborted, "the access policy changed concurrently too often; retry")
	case errors.Is(err, auth.ErrPolicyMissing):
		return status.Error(codes.Unavailable, "the access policy is not created yet (the cluster is starting); retry shortly")
	}
	lg.Error("internal error", "err", err)
	return status.Error(codes.Internal, "internal error")
}

// httpStatus maps a gRPC code to the REST status of the API contract;
// grpc-gateway's default differs for FailedPrecondition (400, we need 412)
// and ResourceExhausted (429, we need 413).
func httpStatus(c codes.Code) int {
	switch c {
	case codes.OK:
		return http.StatusOK
	case codes.InvalidArgument, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.NotFound:
		return http.StatusNotFound
	case codes.FailedPrecondition:
		return http.StatusPreconditionFailed
	case codes.ResourceExhausted:
		return http.StatusRequestEntityTooLarge
	case codes.AlreadyExists, codes.Aborted:
		return http.StatusConflict
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	case codes.Unimplemented:
		return http.StatusNotImplemented
	case codes.Canceled:
		return 499
	}
	return http.StatusInternalServerError
}

// errorBody is the JSON error of every REST response: code is the gRPC
// status code, status its name, message a sentence for people, and reason,
// when set, a machine-readable cause (ReasonNotApplied,
// ReasonOutcomeUnknown, ReasonConditionFailed).
type errorBody struct {
	Code    codes.Code `json:"code"`
	Status  string     `json:"status"`
	Message string     `json:"message"`
	Reason  string     `json:"reason,omitempty"`
}

// writeError writes st as the JSON error with its HTTP status; a 503 gets
// a Retry-After.
func writeError(w http.ResponseWriter, st *status.Status) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Del("Content-Length")
	if st.Code() == codes.Unavailable {
		w.Header().Set("Retry-After", retryAfterSeconds)
	}
	w.WriteHeader(httpStatus(st.Code()))
	_ = json.NewEncoder(w).Encode(errorBody{Code: st.Code(), Status: codeName(st.Code()), Message: st.Message(), Reason: reasonOf(st)})
}

func codeName(c codes.Code) string {
	names := map[codes.Code]string{
		codes.InvalidArgument: "INVALID_ARGUMENT", codes.NotFound: "NOT_FOUND", codes.FailedPrecondition: "FAILED_PRECONDITION",
		codes.ResourceExhausted: "RESOURCE_EXHAUSTED", codes.Unavailable: "UNAVAILABLE", codes.DeadlineExceeded: "DEADLINE_EXCEEDED",
		codes.Internal: "INTERNAL", codes.Unimplemented: "UNIMPLEMENTED", codes.PermissionDenied: "PERMISSION_DENIED",
		codes.Unauthenticated: "UNAUTHENTICATED", codes.AlreadyExists: "ALREADY_EXISTS", codes.Aborted: "ABORTED",
		codes.Canceled: "CANCELLED", codes.OutOfRange: "OUT_OF_RANGE", codes.Unknown: "UNKNOWN",
	}
	if n, ok := names[c]; ok {
		return n
	}
	return fmt.Sprintf("CODE_%d", c)
}

// restError is grpc-gateway's error handler: every error becomes the JSON
// error body with the contract's HTTP status.
func restError(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, _ *http.Request, err error) {
	writeError(w, status.Convert(err))
}

// routingError returns grpc-gateway's handler of unknown paths and
// methods: a 404, or a 405 whose Allow header lists the methods allow
// gives the path.
func routingError(allow allowTable) runtime.RoutingErrorHandlerFunc {
	return func(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, code int) {
		if code == http.StatusMethodNotAllowed {
			methodNotAllowed(w, r, allow.lookup(r.URL.Path))
			return
		}
		writeError(w, status.New(codes.NotFound, fmt.Sprintf("no such endpoint: %s %s (see /api/v1/openapi.json)", r.Method, r.URL.Path)))
	}
}

// methodNotAllowed answers 405 with the JSON error and the Allow header
// allowed ("GET, HEAD"; "" sends none).
func methodNotAllowed(w http.ResponseWriter, r *http.Request, allowed string) {
	if allowed != "" {
		w.Header().Set("Allow", allowed)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusMethodNotAllowed)
	_ = json.NewEncoder(w).Encode(errorBody{Code: codes.Unimplemented, Status: "METHOD_NOT_ALLOWED",
		Message: fmt.Sprintf("method %s is not allowed on %s", r.Method, r.URL.Path)})
}

// allowTable holds the methods of each path template of the OpenAPI
// document (apidocs), the routes grpc-gateway serves.
type allowTable []allowRoute

// allowRoute is one path template, split at "/", where a segment
// "{name}" stands for any one segment, and its Allow header.
type allowRoute struct {
	segments []string
	allow    string
}

// newAllowTable reads the path templates and their methods from the
// OpenAPI v2 document doc. It returns an error if doc is not one.
func newAllowTable(doc []byte) (allowTable, error) {
	var d struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("gateway: read the OpenAPI document: %w", err)
	}
	var t allowTable
	for path, ops := range d.Paths {
		var methods []string
		for m := range ops {
			if m = strings.ToUpper(m); m != "PARAMETERS" {
				methods = append(methods, m)
			}
		}
		slices.Sort(methods)
		t = append(t, allowRoute{segments: strings.Split(path, "/"), allow: strings.Join(methods, ", ")})
	}
	return t, nil
}

// lookup returns the Allow header of path: the methods of the templates
// it matches, or "" if it matches none.
func (t allowTable) lookup(path string) string {
	segs := strings.Split(path, "/")
	var methods []string
	for _, rt := range t {
		if slices.EqualFunc(rt.segments, segs, func(tmpl, seg string) bool {
			return tmpl == seg || strings.HasPrefix(tmpl, "{") && strings.HasSuffix(tmpl, "}") && seg != ""
		}) {
			methods = append(methods, strings.Split(rt.allow, ", ")...)
		}
	}
	slices.Sort(methods)
	return strings.Join(slices.Compact(methods), ", ")
}
