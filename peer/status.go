package peer

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cavedb/cave/node"
)

// The wire mapping of node's sentinels, shared by both ends:
//
//	node.ErrNoReplica                         FAILED_PRECONDITION  not applied; try another host
//	node.ErrNotReady, ErrNotInitialized,
//	node.ErrClosed                            ABORTED              not applied; retry
//	node.ErrTooLarge                          RESOURCE_EXHAUSTED   not applied
//	node.ErrUnknownOutcome                    DEADLINE_EXCEEDED    maybe applied
//	node.ErrCompacted                         OUT_OF_RANGE         history no longer held there
//	anything else                             INTERNAL             (a write: maybe applied)

// toStatus turns a node error into the status a Data call answers with.
func toStatus(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, node.ErrNoReplica):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, node.ErrNotReady), errors.Is(err, node.ErrNotInitialized), errors.Is(err, node.ErrClosed):
		return status.Error(codes.Aborted, err.Error())
	case errors.Is(err, node.ErrTooLarge):
		return status.Error(codes.ResourceExhausted, err.Error())
	case errors.Is(err, node.ErrUnknownOutcome):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, node.ErrCompacted):
		return status.Error(codes.OutOfRange, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

// fromStatus turns a Data call's error back into a node sentinel. Any error
// of a write other than the "not applied" codes leaves the outcome unknown:
// the request may have reached the peer before the failure. A read that
// failed otherwise is "not ready": reads apply nothing.
func fromStatus(err error, write bool) error {
	switch status.Code(err) {
	case codes.FailedPrecondition:
		return fmt.Errorf("%w: %w", node.ErrNoReplica, err)
	case codes.Aborted:
		return fmt.Errorf("%w: %w", node.ErrNotReady, err)
	case codes.ResourceExhausted:
		return fmt.Errorf("%w: %w", node.ErrTooLarge, err)
	case codes.OutOfRange:
		return fmt.Errorf("%w: %w", node.ErrCompacted, err)
	}
	if write {
		return fmt.Errorf("%w: forwarded write: %w", node.ErrUnknownOutcome, err)
	}
	return fmt.Errorf("%w: forwarded read: %w", node.ErrNotReady, err)
}
