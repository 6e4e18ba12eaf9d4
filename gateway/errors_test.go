package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cavedb/cave/node"
	"github.com/cavedb/cave/router"
)

// TestToStatusOutcome checks the contract the REST error table states:
// "not applied" is UNAVAILABLE with reason NOT_APPLIED, "maybe applied"
// is DEADLINE_EXCEEDED with reason OUTCOME_UNKNOWN, from whichever layer
// the error comes and however deeply it is wrapped.
func TestToStatusOutcome(t *testing.T) {
	t.Parallel()
	lg := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		err    error
		code   codes.Code
		reason string
	}{
		{fmt.Errorf("%w: %w", router.ErrUnavailable, node.ErrNotReady), codes.Unavailable, ReasonNotApplied},
		{node.ErrNoReplica, codes.Unavailable, ReasonNotApplied},
		{fmt.Errorf("%w: %w", router.ErrUnknownOutcome, node.ErrUnknownOutcome), codes.DeadlineExceeded, ReasonOutcomeUnknown},
		// A meta-shard write (the access policy, the keyring) fails with
		// node's sentinel, wrapped by the package that made it.
		{fmt.Errorf("auth: update policy: %w", fmt.Errorf("%w: timeout", node.ErrUnknownOutcome)), codes.DeadlineExceeded, ReasonOutcomeUnknown},
	} {
		st := status.Convert(toStatus(lg, tc.err))
		if st.Code() != tc.code || reasonOf(st) != tc.reason {
			t.Errorf("toStatus(%v) = %s %q, want %s %q", tc.err, st.Code(), reasonOf(st), tc.code, tc.reason)
		}
	}
	if st := status.Convert(toStatus(lg, errors.New("disk on fire"))); st.Code() != codes.Internal || st.Message() != "internal error" {
		t.Errorf("an unknown error = %s %q, want Internal with no cause", st.Code(), st.Message())
	}
}
