package peer

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cavedb/cave/node"
)

// TestStatusRoundTrip checks that an error crossing the forwarding hop
// keeps its meaning: what was not applied on the far node is not applied
// here, and a write that may have been applied stays "outcome unknown".
func TestStatusRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		err         error
		code        codes.Code
		read, write error // the sentinel fromStatus must yield
	}{
		{"no replica", node.ErrNoReplica, codes.FailedPrecondition, node.ErrNoReplica, node.ErrNoReplica},
		{"not ready", fmt.Errorf("%w: election", node.ErrNotReady), codes.Aborted, node.ErrNotReady, node.ErrNotReady},
		{"not initialized", node.ErrNotInitialized, codes.Aborted, node.ErrNotReady, node.ErrNotReady},
		{"closed", node.ErrClosed, codes.Aborted, node.ErrNotReady, node.ErrNotReady},
		{"too large", node.ErrTooLarge, codes.ResourceExhausted, node.ErrTooLarge, node.ErrTooLarge},
		{"unknown outcome", node.ErrUnknownOutcome, codes.DeadlineExceeded, node.ErrNotReady, node.ErrUnknownOutcome},
		{"compacted", fmt.Errorf("%w: below 7", node.ErrCompacted), codes.OutOfRange, node.ErrCompacted, node.ErrCompacted},
		{"disk failure", errors.New("disk on fire"), codes.Internal, node.ErrNotReady, node.ErrUnknownOutcome},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			wire := toStatus(tc.err)
			if got := status.Code(wire); got != tc.code {
				t.Fatalf("toStatus(%v) = %s, want %s", tc.err, got, tc.code)
			}
			if got := fromStatus(wire, false); !errors.Is(got, tc.read) {
				t.Errorf("read: fromStatus(%s) = %v, want %v", tc.code, got, tc.read)
			}
			if got := fromStatus(wire, true); !errors.Is(got, tc.write) {
				t.Errorf("write: fromStatus(%s) = %v, want %v", tc.code, got, tc.write)
			}
		})
	}
	if toStatus(nil) != nil {
		t.Error("toStatus(nil) is not nil")
	}
	// A connection that breaks before an answer (UNAVAILABLE from the
	// transport) leaves a forwarded write's outcome unknown.
	lost := status.Error(codes.Unavailable, "connection reset")
	if got := fromStatus(lost, true); !errors.Is(got, node.ErrUnknownOutcome) {
		t.Errorf("lost write = %v, want ErrUnknownOutcome", got)
	}
	if got := fromStatus(context.DeadlineExceeded, false); !errors.Is(got, node.ErrNotReady) {
		t.Errorf("timed-out read = %v, want ErrNotReady", got)
	}
}
