package placement

import "errors"

var (
	// ErrInvalidCluster is returned (wrapped, one error per problem) by
	// Cluster.Validate when the cluster description is malformed: a node or
	// shard listed twice, a replica id of zero or used twice in a shard, an
	// unknown node state or role, a replication factor below one, or a
	// negative size.
	ErrInvalidCluster = errors.New("placement: invalid cluster")
	// ErrInvalidConfig is returned (wrapped, one error per problem) by
	// Config.Validate when a setting is out of range.
	ErrInvalidConfig = errors.New("placement: invalid config")
)
