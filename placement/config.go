package placement

import (
	"errors"
	"fmt"
)

// Config holds the planner's throttles and thresholds.
type Config struct {
	// MaxActions bounds the actions of one Plan call across all shards.
	// When more are wanted, the most urgent goal goes first (replication
	// factor, duplicates, leaving nodes, finishing moves, meta learners,
	// then replica, leader and byte balance), and shard id breaks ties.
	// Zero means no bound. Default 64.
	MaxActions int
	// MaxMovesPerNode bounds how many shards may touch one node in one plan,
	// counting the shards already at work there: a Busy shard counts on
	// every node holding one of its replicas, and a shard whose learner is
	// catching up counts on the learner's node and its leader's node. An
	// AddLearner touches the new learner's node and the leader's node (which
	// sends the snapshot), a TransferLeader the old and the new leader's
	// nodes, Promote and RemoveReplica the replica's node. Zero means no
	// bound. Default 4.
	MaxMovesPerNode int
	// MinByteGapBytes is the least amount by which a byte-balancing move
	// must shrink the byte gap between its two nodes; the move must also
	// shrink it by a tenth of the mean bytes per alive node. Zero leaves
	// only the tenth-of-the-mean rule. Default 64 MiB: a move costs a
	// snapshot, so smaller gains are not worth one.
	MinByteGapBytes int64
}

// DefaultConfig returns the settings described on each Config field.
func DefaultConfig() Config {
	return Config{MaxActions: 64, MaxMovesPerNode: 4, MinByteGapBytes: 64 << 20}
}

// Validate reports every out-of-range setting at once, each wrapping
// ErrInvalidConfig. It does not change c.
func (c Config) Validate() error {
	var errs []error
	if c.MaxActions < 0 {
		errs = append(errs, fmt.Errorf("%w: MaxActions must be >= 0, got %d", ErrInvalidConfig, c.MaxActions))
	}
	if c.MaxMovesPerNode < 0 {
		errs = append(errs, fmt.Errorf("%w: MaxMovesPerNode must be >= 0, got %d", ErrInvalidConfig, c.MaxMovesPerNode))
	}
	if c.MinByteGapBytes < 0 {
		errs = append(errs, fmt.Errorf("%w: MinByteGapBytes must be >= 0, got %d", ErrInvalidConfig, c.MinByteGapBytes))
	}
	return errors.Join(errs...)
}
