package placement

import (
	"errors"
	"fmt"

	"github.com/cavedb/cave/ring"
)

// NodeState is what the planner may do with a node.
type NodeState uint8

const (
	// NodeAlive: gossip says alive; the node may receive replicas and
	// leaderships.
	NodeAlive NodeState = iota
	// NodeDown: not alive, but for less than the grace period. Its replicas
	// stay and count toward the replication factor (it may come back);
	// nothing new is placed on it.
	NodeDown
	// NodeDead: down longer than the grace period; its replicas are
	// replaced.
	NodeDead
	// NodeDraining: alive, and the operator asked to move everything off
	// it. It receives nothing new; its replicas and leaderships move away,
	// and it keeps serving until they have.
	NodeDraining
	// NodeRemoved: removed by the operator; nothing may stay on it. A
	// replica on a node that the cluster does not list is treated as on a
	// removed node.
	NodeRemoved
)

// String returns the contract's spelling: "alive", "down", "dead",
// "draining" or "removed".
func (s NodeState) String() string {
	switch s {
	case NodeAlive:
		return "alive"
	case NodeDown:
		return "down"
	case NodeDead:
		return "dead"
	case NodeDraining:
		return "draining"
	case NodeRemoved:
		return "removed"
	}
	return fmt.Sprintf("NodeState(%d)", uint8(s))
}

// staying reports whether replicas on a node in state s stay where they
// are and count toward the replication factor.
func (s NodeState) staying() bool { return s == NodeAlive || s == NodeDown }

// leaving reports whether replicas on a node in state s must move away.
func (s NodeState) leaving() bool { return s == NodeDead || s == NodeDraining || s == NodeRemoved }

// Node is one cluster member as the planner sees it.
type Node struct {
	Name  string
	State NodeState
}

// Role is a replica's part in its shard's Raft group.
type Role uint8

const (
	// RoleVoter replicates the log and votes.
	RoleVoter Role = iota
	// RoleLearner replicates the log without voting.
	RoleLearner
)

// String returns the contract's spelling: "voter" or "learner".
func (r Role) String() string {
	switch r {
	case RoleVoter:
		return "voter"
	case RoleLearner:
		return "learner"
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// Replica is one replica of a shard.
type Replica struct {
	// ID is the replica id within the shard; ids are never reused.
	ID   uint64
	Node string
	Role Role
	// CaughtUp tells, for a learner, whether it has caught up with the
	// leader's log (received its snapshot). Only a caught-up learner is
	// promoted; while a learner on an alive node is not caught up, its
	// shard gets no action. Ignored for voters.
	CaughtUp bool
	// Bytes is the size of this replica's data; byte balancing evens out
	// its sum per node. Keys is reported alongside and not planned on.
	Bytes, Keys int64
}

// Shard is one Raft group and its wanted shape.
type Shard struct {
	ID       ring.ShardID
	Replicas []Replica
	// Leader is the replica id of the leader, 0 when unknown. A shard gets
	// no action while its leader is unknown, is not a voter, or sits on a
	// down or dead node: its changes go through the leader.
	Leader uint64
	// Voters is the replication factor wanted (the meta shard has its own,
	// e.g. 5). The planner caps it by the number of alive and down nodes.
	Voters int
	// LearnersOnRest keeps a learner on every alive node that holds no
	// voter (the meta shard, so that every node reads metadata locally).
	// These learners are promoted only to reach Voters and do not count in
	// replica or byte balance.
	LearnersOnRest bool
	// Busy says a membership change is in flight for this shard: it gets
	// no action this round.
	Busy bool
}

// Cluster is everything Plan decides from.
type Cluster struct {
	Nodes  []Node
	Shards []Shard
}

// Validate reports every problem of c at once, each wrapping
// ErrInvalidCluster. It does not change c. A leader id that names no
// replica is not a problem: it reads as an unknown leader.
func (c Cluster) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidCluster}, args...)...))
	}
	nodes := make(map[string]bool, len(c.Nodes))
	for _, n := range c.Nodes {
		switch {
		case n.Name == "":
			bad("node with an empty name")
		case nodes[n.Name]:
			bad("node %s listed twice", n.Name)
		}
		nodes[n.Name] = true
		if n.State > NodeRemoved {
			bad("node %s: unknown state %d", n.Name, uint8(n.State))
		}
	}
	shards := make(map[ring.ShardID]bool, len(c.Shards))
	for _, s := range c.Shards {
		if shards[s.ID] {
			bad("shard %d listed twice", s.ID)
		}
		shards[s.ID] = true
		if s.Voters < 1 {
			bad("shard %d: voters must be >= 1, got %d", s.ID, s.Voters)
		}
		ids := make(map[uint64]bool, len(s.Replicas))
		for _, r := range s.Replicas {
			switch {
			case r.ID == 0:
				bad("shard %d: replica id 0", s.ID)
			case ids[r.ID]:
				bad("shard %d: replica id %d listed twice", s.ID, r.ID)
			}
			ids[r.ID] = true
			if r.Node == "" {
				bad("shard %d: replica %d has no node", s.ID, r.ID)
			}
			if r.Role > RoleLearner {
				bad("shard %d: replica %d: unknown role %d", s.ID, r.ID, uint8(r.Role))
			}
			if r.Bytes < 0 || r.Keys < 0 {
				bad("shard %d: replica %d: negative size", s.ID, r.ID)
			}
		}
	}
	return errors.Join(errs...)
}

// ActionKind says what an Action does.
type ActionKind uint8

const (
	// AddLearner adds a new learner on Node; the executor allocates its id.
	AddLearner ActionKind = iota + 1
	// Promote makes the caught-up learner Replica a voter.
	Promote
	// RemoveReplica removes Replica from the shard.
	RemoveReplica
	// TransferLeader hands the leadership to the voter Replica.
	TransferLeader
)

// String returns "add-learner", "promote", "remove-replica" or
// "transfer-leader".
func (k ActionKind) String() string {
	switch k {
	case AddLearner:
		return "add-learner"
	case Promote:
		return "promote"
	case RemoveReplica:
		return "remove-replica"
	case TransferLeader:
		return "transfer-leader"
	}
	return fmt.Sprintf("ActionKind(%d)", uint8(k))
}

// Action is one step toward the wanted placement of one shard.
type Action struct {
	Kind  ActionKind
	Shard ring.ShardID
	// Replica is the replica promoted or removed, or the one that becomes
	// leader; 0 for AddLearner.
	Replica uint64
	// Node is where the new learner goes (AddLearner), else Replica's node.
	Node string
	// Reason is one line for people and logs.
	Reason string
}

// String formats a as "kind shard=S [replica=R] node=N: reason".
func (a Action) String() string {
	if a.Kind == AddLearner {
		return fmt.Sprintf("%s shard=%d node=%s: %s", a.Kind, a.Shard, a.Node, a.Reason)
	}
	return fmt.Sprintf("%s shard=%d replica=%d node=%s: %s", a.Kind, a.Shard, a.Replica, a.Node, a.Reason)
}
