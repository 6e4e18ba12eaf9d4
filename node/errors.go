package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/lni/dragonboat/v4"

	"github.com/cavedb/cave/shard"
)

// Errors returned by Node. Each says whether the operation was applied.
var (
	// ErrNoReplica is returned when this node hosts no replica of the shard.
	// Nothing was applied; the caller should route to a node that has one.
	ErrNoReplica = errors.New("node: no local replica of the shard")
	// ErrNotReady is returned when the shard cannot serve right now (no
	// leader, election in progress, engine busy). Nothing was applied; the
	// caller may retry after a short backoff.
	ErrNotReady = errors.New("node: shard not ready")
	// ErrUnknownOutcome is returned when a proposal timed out or was
	// aborted after it may have been replicated: it may or may not be
	// applied. Callers must not retry a conditional write on it.
	ErrUnknownOutcome = errors.New("node: outcome unknown")
	// ErrTooLarge is returned when a command exceeds the Raft entry limit.
	ErrTooLarge = errors.New("node: command too large")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("node: closed")
	// ErrNotInitialized is returned while the cluster metadata is not yet
	// readable on this node (joining, or bootstrap still in progress).
	ErrNotInitialized = errors.New("node: cluster metadata not available yet")
	// ErrCompacted is returned by History when the events after the asked
	// revision are no longer retained by the local replica. Another replica
	// may still hold them.
	ErrCompacted = errors.New("node: history compacted")
	// ErrBadMetaKey is returned by MetaGet and MetaSwap for a key
	// outside the namespaces other packages may use. Nothing was applied.
	ErrBadMetaKey = errors.New("node: meta key outside the exported namespaces")
	// ErrBadRequest is returned by the operator's placement operations
	// (admin.go) for an argument that names nothing or does not hold: an
	// unknown shard or node, a node without the replica named. Nothing
	// was applied; the error's message says why.
	ErrBadRequest = errors.New("node: invalid request")
	// ErrPrecondition is returned by the operator's placement operations
	// when the cluster's state refuses the change now: a move of the
	// shard in flight, a target node not alive, too few nodes left. Nothing
	// was applied; the error's message says why.
	ErrPrecondition = errors.New("node: refused in the cluster's current state")
)

// translate turns a dragonboat error into one of the sentinels above. It is
// the only place that knows dragonboat's error set. write says whether the
// failed call was a proposal, for which an interrupted request has an
// unknown outcome.
func translate(err error, write bool) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, dragonboat.ErrShardNotFound):
		return ErrNoReplica
	case errors.Is(err, dragonboat.ErrShardNotReady),
		errors.Is(err, dragonboat.ErrSystemBusy),
		errors.Is(err, dragonboat.ErrShardNotInitialized),
		errors.Is(err, dragonboat.ErrRejected),
		// Refused before proposing: the caller's deadline left too little
		// time for a Raft round.
		errors.Is(err, dragonboat.ErrTimeoutTooSmall),
		errors.Is(err, shard.ErrRecovering):
		return fmt.Errorf("%w: %w", ErrNotReady, err)
	case errors.Is(err, shard.ErrCompacted):
		return fmt.Errorf("%w: %w", ErrCompacted, err)
	case errors.Is(err, dragonboat.ErrPayloadTooBig):
		return ErrTooLarge
	case errors.Is(err, dragonboat.ErrClosed):
		if write {
			return fmt.Errorf("%w: %w", ErrUnknownOutcome, err)
		}
		return ErrClosed
	case errors.Is(err, dragonboat.ErrTimeout),
		errors.Is(err, dragonboat.ErrCanceled),
		errors.Is(err, dragonboat.ErrAborted),
		errors.Is(err, dragonboat.ErrShardClosed),
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, context.Canceled):
		if write {
			return fmt.Errorf("%w: %w", ErrUnknownOutcome, err)
		}
		return fmt.Errorf("%w: %w", ErrNotReady, err)
	default:
		return err
	}
}
