package node

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/cavedb/cave/ring"
)

// Role is a replica's part in its shard's Raft group.
type Role uint8

const (
	// RoleVoter replicates the log and votes.
	RoleVoter Role = iota
	// RoleLearner replicates the log without voting (dragonboat's
	// non-voting replica).
	RoleLearner
)

// String returns the contract's spelling: "voter" or "learner".
func (r Role) String() string {
	if r == RoleLearner {
		return "learner"
	}
	return "voter"
}

// NodeView is what the planner knows of one cluster member.
type NodeView struct {
	Name string
	// Alive is true when gossip reports the member alive.
	Alive bool
	// DownFor is how long the member has not been alive; zero when alive.
	DownFor time.Duration
}

// ReplicaView is one replica of the shard as recorded in the meta shard.
type ReplicaView struct {
	ID   uint64
	Node string
	Role Role
	// Member is true when the replica is in the shard's Raft membership; a
	// recorded replica that is not is an add that has not completed.
	Member bool
}

// PlanInput is everything Plan decides from. It is plain data so that Plan
// is a pure function.
type PlanInput struct {
	Shard ring.ShardID
	// Voters is the number of voting replicas wanted.
	Voters int
	// LearnersOnRest asks for a learner on every live node beyond Voters
	// (the meta shard, so that every node can read metadata locally).
	LearnersOnRest bool
	Replicas       []ReplicaView
	Nodes          []NodeView
	// DeadAfter is how long a node must be down before its replicas are
	// replaced.
	DeadAfter time.Duration
	// Load counts replicas per node across all shards; new replicas go to
	// the least loaded nodes first.
	Load map[string]int
}

// ActionKind says what an Action does.
type ActionKind uint8

const (
	// ActCreate allocates a new replica on Node and adds it to the shard.
	ActCreate ActionKind = iota + 1
	// ActAdd retries adding an already recorded replica to the membership.
	ActAdd
	// ActRemove removes a member replica whose node is dead.
	ActRemove
	// ActDropRecord forgets a recorded replica that never became a member
	// and whose node is dead.
	ActDropRecord
)

func (k ActionKind) String() string {
	switch k {
	case ActCreate:
		return "create"
	case ActAdd:
		return "add"
	case ActRemove:
		return "remove"
	case ActDropRecord:
		return "drop-record"
	}
	return fmt.Sprintf("ActionKind(%d)", uint8(k))
}

// Action is one step toward the wanted placement of a shard.
type Action struct {
	Kind    ActionKind
	Replica uint64 // zero for ActCreate: the executor allocates the id
	Node    string
	Role    Role
	Reason  string
}

func (a Action) String() string {
	return fmt.Sprintf("%s replica=%d node=%s role=%s: %s", a.Kind, a.Replica, a.Node, a.Role, a.Reason)
}

// Plan returns the actions that move a shard toward its wanted placement.
// It never places two replicas of a shard on one node, never removes a
// replica of a live node, and removes a dead node's replica only when a
// live spare node can take its place, so a shard never drops below what it
// has while nodes restart. At most one create or remove is planned per call,
// so the membership changes one step at a time.
func Plan(in PlanInput) []Action {
	nodes := make(map[string]NodeView, len(in.Nodes))
	for _, nv := range in.Nodes {
		nodes[nv.Name] = nv
	}
	dead := func(name string) bool {
		nv, ok := nodes[name]
		return !ok || (!nv.Alive && nv.DownFor >= in.DeadAfter)
	}
	holders := map[string]bool{}
	var acts []Action
	voters := 0
	for _, r := range in.Replicas {
		holders[r.Node] = true
		if r.Role == RoleVoter {
			voters++
		}
		if r.Member {
			continue
		}
		switch {
		case dead(r.Node):
			acts = append(acts, Action{Kind: ActDropRecord, Replica: r.ID, Node: r.Node, Role: r.Role, Reason: "pending replica on a dead node"})
		case nodes[r.Node].Alive:
			acts = append(acts, Action{Kind: ActAdd, Replica: r.ID, Node: r.Node, Role: r.Role, Reason: "recorded replica is not a member yet"})
		}
	}
	var spares []string
	for _, nv := range in.Nodes {
		if nv.Alive && !holders[nv.Name] {
			spares = append(spares, nv.Name)
		}
	}
	slices.SortFunc(spares, func(a, b string) int {
		return cmp.Or(cmp.Compare(in.Load[a], in.Load[b]), cmp.Compare(a, b))
	})
	if len(spares) == 0 {
		// Without a spare, removing a dead voter still helps when the
		// voter count is even: 3 live of 4 tolerate no further failure,
		// 3 of 3 tolerate one. A dead learner never helps.
		members, memberVoters := 0, 0
		for _, r := range in.Replicas {
			if r.Member {
				members++
				if r.Role == RoleVoter {
					memberVoters++
				}
			}
		}
		for _, r := range in.Replicas {
			if !r.Member || !dead(r.Node) {
				continue
			}
			if r.Role == RoleLearner || (memberVoters%2 == 0 && memberVoters > 2) {
				return append(acts, Action{Kind: ActRemove, Replica: r.ID, Node: r.Node, Role: r.Role,
					Reason: fmt.Sprintf("node down for at least %s; %d members without it keep a better quorum", in.DeadAfter, members-1)})
			}
		}
		return acts
	}
	for _, r := range in.Replicas {
		if r.Member && dead(r.Node) {
			return append(acts, Action{Kind: ActRemove, Replica: r.ID, Node: r.Node, Role: r.Role,
				Reason: fmt.Sprintf("node down for at least %s and %s can replace it", in.DeadAfter, spares[0])})
		}
	}
	if voters < in.Voters {
		return append(acts, Action{Kind: ActCreate, Node: spares[0], Role: RoleVoter,
			Reason: fmt.Sprintf("%d of %d voters", voters, in.Voters)})
	}
	if in.LearnersOnRest {
		return append(acts, Action{Kind: ActCreate, Node: spares[0], Role: RoleLearner,
			Reason: "every node keeps a copy of this shard"})
	}
	return acts
}
