package router

import (
	"errors"
	"fmt"

	"github.com/cavedb/cave/node"
)

// Errors returned by Router. Each says whether the operation was applied.
var (
	// ErrKeyNotFound is returned by Get and by an unconditional Delete when
	// the key does not exist.
	ErrKeyNotFound = errors.New("router: key not found")
	// ErrConditionFailed is returned (wrapped in a *ConditionError) when a
	// prev_revision condition does not hold. Nothing was applied.
	ErrConditionFailed = errors.New("router: condition failed")
	// ErrUnavailable is returned when no replica of the key's shard could
	// serve the request within the retry budget. Nothing was applied.
	ErrUnavailable = errors.New("router: shard unavailable")
	// ErrUnknownOutcome is returned when a write was sent but its result was
	// lost (timeout, leader change, peer failure): it may have been applied.
	ErrUnknownOutcome = errors.New("router: write outcome unknown")
	// ErrTooLarge is returned when the write does not fit in a Raft entry.
	ErrTooLarge = errors.New("router: request too large")
	// ErrCompacted is returned by Watch when a shard no longer retains the
	// events after the watch's position on any replica.
	ErrCompacted = errors.New("router: watch history compacted")
	// ErrSlowWatcher is returned by Watch when its output channel is full:
	// the consumer fell behind. Nothing was lost; resume from the last
	// position delivered.
	ErrSlowWatcher = errors.New("router: watcher fell behind its buffer")
	// ErrBadPageToken is returned by List for a page token it did not issue.
	ErrBadPageToken = errors.New("router: malformed page token")
)

// ConditionError reports a failed prev_revision condition together with
// the key's current mod_revision (0 when the key does not exist).
type ConditionError struct {
	Key     string
	Current int64
}

func (e *ConditionError) Error() string {
	return fmt.Sprintf("router: condition failed for %q: current revision is %d", e.Key, e.Current)
}

// Unwrap makes errors.Is(err, ErrConditionFailed) true.
func (e *ConditionError) Unwrap() error { return ErrConditionFailed }

// retryable reports whether err means "not applied, worth another try, maybe
// on another node". It is the router's only list of such errors.
func retryable(err error) bool {
	return errors.Is(err, node.ErrNoReplica) ||
		errors.Is(err, node.ErrNotReady) ||
		errors.Is(err, node.ErrNotInitialized) ||
		errors.Is(err, errNoHost)
}

// errNoHost means the placement knows no live node hosting the shard (yet).
var errNoHost = errors.New("router: no live replica host known")

// final turns the error of the last attempt into the router's contract.
func final(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, node.ErrUnknownOutcome):
		return fmt.Errorf("%w: %w", ErrUnknownOutcome, err)
	case errors.Is(err, node.ErrTooLarge):
		return fmt.Errorf("%w: %w", ErrTooLarge, err)
	case retryable(err), errors.Is(err, node.ErrClosed):
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}
