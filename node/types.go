package node

import (
	"time"

	"github.com/cavedb/cave/placement"
)

// Role is a replica's part in its shard's Raft group: the planner's type,
// spelled "voter" or "learner".
type Role = placement.Role

// Replica roles.
const (
	// RoleVoter replicates the log and votes.
	RoleVoter = placement.RoleVoter
	// RoleLearner replicates the log without voting (dragonboat's
	// non-voting replica).
	RoleLearner = placement.RoleLearner
)

// NodeView is what gossip says of one cluster member.
type NodeView struct {
	Name string
	// Alive is true when gossip reports the member alive.
	Alive bool
	// DownFor is how long the member has not been alive; zero when alive.
	DownFor time.Duration
}

// ReplicaView is one replica of a shard as recorded in the meta shard.
type ReplicaView struct {
	ID   uint64
	Node string
	Role Role
}
