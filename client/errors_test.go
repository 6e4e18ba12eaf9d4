package client

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cavedb/cave/gateway"
)

// TestReasonsMatchGateway checks the copies of the server's reasons.
func TestReasonsMatchGateway(t *testing.T) {
	t.Parallel()
	assert.Equal(t, gateway.ReasonNotApplied, reasonNotApplied)
	assert.Equal(t, gateway.ReasonOutcomeUnknown, reasonOutcomeUnknown)
	assert.Equal(t, gateway.ReasonConditionFailed, reasonConditionFailed)
	assert.Equal(t, gateway.MetaCurrentRevision, metaCurrentRevision)
	assert.Equal(t, gateway.ErrorDomain, errorDomain)
}

func withInfo(t *testing.T, c codes.Code, domain, reason string, md map[string]string) error {
	t.Helper()
	st, err := status.New(c, "server message").WithDetails(&errdetails.ErrorInfo{Domain: domain, Reason: reason, Metadata: md})
	require.NoError(t, err)
	return st.Err()
}

func TestClassify(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name        string
		err         error
		sent, write bool
		want        error // sentinel, or nil
		current     int64
		retry       bool
	}{
		{"not found", status.Error(codes.NotFound, "key not found"), true, false, ErrNotFound, 0, false},
		{"condition failed", withInfo(t, codes.FailedPrecondition, "cave", "CONDITION_FAILED", map[string]string{"current_revision": "42"}), true, true, ErrConditionFailed, 42, false},
		{"condition failed, absent key", withInfo(t, codes.FailedPrecondition, "cave", "CONDITION_FAILED", map[string]string{"current_revision": "0"}), true, true, ErrConditionFailed, 0, false},
		{"other failed precondition", status.Error(codes.FailedPrecondition, "not a secret"), true, false, nil, 0, false},
		{"reason of another domain", withInfo(t, codes.FailedPrecondition, "other", "CONDITION_FAILED", nil), true, true, nil, 0, false},
		{"not applied write", withInfo(t, codes.Unavailable, "cave", "NOT_APPLIED", nil), true, true, ErrNotApplied, 0, true},
		{"outcome unknown", withInfo(t, codes.DeadlineExceeded, "cave", "OUTCOME_UNKNOWN", nil), true, true, ErrOutcomeUnknown, 0, false},
		{"never sent write", status.Error(codes.Unavailable, "connection refused"), false, true, ErrNotApplied, 0, true},
		{"connection broke after a write was sent", status.Error(codes.Unavailable, "transport closing"), true, true, ErrOutcomeUnknown, 0, false},
		{"connection broke during a read", status.Error(codes.Unavailable, "transport closing"), true, false, nil, 0, true},
		{"access denied", status.Error(codes.PermissionDenied, "no"), true, true, nil, 0, false},
		{"invalid argument", status.Error(codes.InvalidArgument, "bad key"), true, false, nil, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := classify(t.Context(), tc.err, tc.sent, tc.write)
			for _, s := range []error{ErrNotFound, ErrConditionFailed, ErrNotApplied, ErrOutcomeUnknown} {
				assert.Equal(t, s == tc.want, errors.Is(e, s), "errors.Is(%v, %v)", e, s)
			}
			assert.Equal(t, tc.current, e.CurrentRevision)
			assert.Equal(t, status.Code(tc.err), status.Code(e), "the status code is kept")
			assert.Equal(t, status.Convert(tc.err).Message(), status.Convert(e).Message(), "the server's message is kept")
			assert.Equal(t, tc.retry, retryable(e, tc.write))
		})
	}
}

func TestClassifyContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	e := classify(ctx, status.Error(codes.DeadlineExceeded, "context deadline exceeded"), false, false)
	assert.True(t, errors.Is(e, context.DeadlineExceeded), "the ctx's error is wrapped")
	e = ctxError(ctx)
	assert.True(t, errors.Is(e, context.DeadlineExceeded))
	assert.Equal(t, codes.DeadlineExceeded, status.Code(e))
	e = classify(t.Context(), status.Error(codes.DeadlineExceeded, "server timeout"), true, false)
	assert.False(t, errors.Is(e, context.DeadlineExceeded), "a live ctx did not end the request")
}
