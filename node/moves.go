package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lni/dragonboat/v4"

	"github.com/cavedb/cave/ring"
	"github.com/cavedb/cave/shard"
)

// A move is one membership or leadership change of one shard, recorded in
// the meta shard (moves/<shard>) before any of it is done. At most one move
// per shard exists at a time: it is created with a create-only write, so
// two coordinators can never start two. Whichever node leads the shard
// executes it, step by step, writing the next step into the record (a
// compare-and-swap on the record's revision) before taking it; so a crash
// of any node at any step leaves a record from which the shard's next
// leader resumes, or rolls back. Every step is idempotent: it looks at the
// shard's Raft membership before changing it.
//
//	kind add       record → add → catch-up → [promote] → [remove Then] → done
//	kind promote   promote → done
//	kind remove    remove → done          (the leader hands leadership away first)
//	kind transfer  transfer → done
//
// An add whose learner does not catch up within moveTimeout, or whose
// node is removed or dead, is rolled back: the learner leaves the
// membership and its record is deleted. A shard is never left below its
// voter count by a move: the old replica of a move is removed only after
// the new one is a voter.
type move struct {
	// Kind is "add", "promote", "remove" or "transfer".
	Kind string `json:"kind"`
	// Replica is the replica the move concerns: the new learner of an add
	// (allocated when the move is created, never reused), the learner to
	// promote, the replica to remove, or the replica to make leader.
	Replica uint64 `json:"replica"`
	// Node is Replica's node.
	Node string `json:"node"`
	// Promote makes an add promote its learner once caught up.
	Promote bool `json:"promote,omitempty"`
	// Then, when set, is a replica an add removes after promoting: an
	// operator's move of a replica from one node to another.
	Then uint64 `json:"then,omitempty"`
	// Step is the next step to take.
	Step string `json:"step"`
	// Started is when the move was created (Unix nanoseconds, the
	// creator's clock), for timeouts.
	Started int64 `json:"started"`
	// Reason says why, for people: the planner's reason or "operator".
	Reason string `json:"reason"`
}

// Move kinds and steps, as stored.
const (
	moveAdd      = "add"
	movePromote  = "promote"
	moveRemove   = "remove"
	moveTransfer = "transfer"

	stepRecord   = "record"
	stepAdd      = "add"
	stepCatchUp  = "catch-up"
	stepPromote  = "promote"
	stepRemove   = "remove"
	stepTransfer = "transfer"
	stepRollback = "rollback"
)

// moveTimeout bounds how long an add waits for its learner to catch up
// before it is rolled back.
const moveTimeout = 10 * time.Minute

// catchUpSlack is how many entries a learner may lag behind the leader's
// applied index and still count as caught up.
const catchUpSlack = 64

// recordedMove is a move and the revision of its record.
type recordedMove struct {
	move
	rev int64
}

func moveKey(id ring.ShardID) string { return fmt.Sprintf("%s%020d", prefixMoves, uint64(id)) }

// createMove records m for shard id unless a move of the shard exists. It
// reports false, with no error, when one does.
func (n *Node) createMove(ctx context.Context, id ring.ShardID, m move) (bool, error) {
	if m.Started == 0 {
		m.Started = time.Now().UnixNano()
	}
	b, err := json.Marshal(m)
	if err != nil {
		return false, err
	}
	res, err := n.metaWrite(ctx, shard.Op{Kind: shard.OpPut, Key: []byte(moveKey(id)), Value: b, HasPrevRevision: true})
	if err != nil {
		return false, err
	}
	return res[0].Code == shard.ResultOK, nil
}

// advance writes step as the next step of the recorded move rm, if the
// record is still at rm.rev, and updates rm. It fails with errMoveChanged
// when the record moved on (another node executes it).
func (n *Node) advance(ctx context.Context, id ring.ShardID, rm *recordedMove, step string) error {
	next := rm.move
	next.Step = step
	b, err := json.Marshal(next)
	if err != nil {
		return err
	}
	res, err := n.metaWrite(ctx, shard.Op{Kind: shard.OpPut, Key: []byte(moveKey(id)), Value: b, PrevRevision: rm.rev, HasPrevRevision: true})
	if err != nil {
		return err
	}
	if res[0].Code != shard.ResultOK {
		return errMoveChanged
	}
	rm.move, rm.rev = next, res[0].Revision
	return nil
}

// finishMove deletes the recorded move rm if it is still at rm.rev, and
// counts and logs its end. It fails with errMoveChanged, counting nothing,
// when the record moved on or is gone (another node finished it).
func (n *Node) finishMove(ctx context.Context, id ring.ShardID, rm *recordedMove, result string) error {
	res, err := n.metaWrite(ctx, shard.Op{Kind: shard.OpDelete, Key: []byte(moveKey(id)), PrevRevision: rm.rev, HasPrevRevision: true})
	if err != nil {
		return err
	}
	if res[0].Code != shard.ResultOK {
		return errMoveChanged
	}
	n.met.moveDone(rm.Kind, result)
	n.lg.Info("move "+result, "shard_id", id, "kind", rm.Kind, "replica_id", rm.Replica, "target", rm.Node,
		"took", time.Since(time.Unix(0, rm.Started)).Round(time.Millisecond), "reason", rm.Reason)
	return nil
}

// errMoveChanged means the move record changed under the executor.
var errMoveChanged = errors.New("node: move record changed concurrently")

// runMove takes the next step of the recorded move rm of shard id, whose
// leader is local and whose membership is m. It takes at most one
// membership change, since each names the change it follows
// (OrderedConfigChange); the next reconcile round goes on.
func (n *Node) runMove(ctx context.Context, id ring.ShardID, rm *recordedMove, m *dragonboat.Membership, p *metaState) error {
	_, voter := m.Nodes[rm.Replica]
	_, learner := m.NonVotings[rm.Replica]
	_, removed := m.Removed[rm.Replica]
	switch rm.Step {
	case stepRecord:
		// The replica's record comes first: its node starts the replica
		// when it sees the record, and the record's node names the target.
		if _, err := n.metaWrite(ctx, shard.Op{Kind: shard.OpPut, Key: []byte(replicaKey(id, rm.Replica)),
			Value: replicaValue(rm.Node, RoleLearner)}); err != nil {
			return err
		}
		return n.advance(ctx, id, rm, stepAdd)
	case stepAdd:
		if removed || n.nodeGone(p, rm.Node) {
			return n.advance(ctx, id, rm, stepRollback)
		}
		if !voter && !learner {
			mem, ok := n.ms.member(rm.Node)
			if !ok || mem.RaftAddr == "" {
				return fmt.Errorf("node %s has no raft address in gossip", rm.Node)
			}
			if err := n.nh.SyncRequestAddNonVoting(ctx, uint64(id), rm.Replica, mem.RaftAddr, m.ConfigChangeID); err != nil {
				return translate(err, true)
			}
			n.lg.Info("learner added", "shard_id", id, "replica_id", rm.Replica, "target", rm.Node)
			n.notifyStart(ctx, mem, id, rm.Replica, RoleLearner)
		}
		return n.advance(ctx, id, rm, stepCatchUp)
	case stepCatchUp:
		if removed || n.nodeGone(p, rm.Node) || time.Since(time.Unix(0, rm.Started)) > moveTimeout {
			return n.advance(ctx, id, rm, stepRollback)
		}
		if !n.caughtUp(ctx, id, rm.Node) {
			if mem, ok := n.ms.member(rm.Node); ok && mem.State == StateAlive {
				n.notifyStart(ctx, mem, id, rm.Replica, RoleLearner)
			}
			return nil
		}
		if !rm.Promote {
			return n.finishMove(ctx, id, rm, "done")
		}
		return n.advance(ctx, id, rm, stepPromote)
	case stepPromote:
		if removed {
			return n.advance(ctx, id, rm, stepRollback)
		}
		if !voter {
			if !learner {
				return n.advance(ctx, id, rm, stepRollback)
			}
			if !n.caughtUp(ctx, id, rm.Node) {
				return nil
			}
			// Adding a non-voting replica's id again promotes it; the
			// target must be a valid address but is not used.
			if err := n.nh.SyncRequestAddReplica(ctx, uint64(id), rm.Replica, m.NonVotings[rm.Replica], m.ConfigChangeID); err != nil {
				return translate(err, true)
			}
			n.lg.Info("learner promoted", "shard_id", id, "replica_id", rm.Replica, "target", rm.Node)
		}
		if _, err := n.metaWrite(ctx, shard.Op{Kind: shard.OpPut, Key: []byte(replicaKey(id, rm.Replica)),
			Value: replicaValue(rm.Node, RoleVoter)}); err != nil {
			return err
		}
		if rm.Then != 0 {
			rm.Replica, rm.Node, rm.Then = rm.Then, p.nodeOf(id, rm.Then), 0
			return n.advance(ctx, id, rm, stepRemove)
		}
		return n.finishMove(ctx, id, rm, "done")
	case stepRemove:
		if lead, _, _, _ := n.nh.GetLeaderID(uint64(id)); lead == rm.Replica {
			// The leader's own replica: hand leadership to another voter;
			// its node takes the step.
			return n.transferAway(id, rm.Replica, p)
		}
		if voter || learner {
			if err := n.nh.SyncRequestDeleteReplica(ctx, uint64(id), rm.Replica, m.ConfigChangeID); err != nil {
				return translate(err, true)
			}
			n.lg.Info("replica removed from shard", "shard_id", id, "replica_id", rm.Replica, "target", rm.Node)
		}
		if err := n.dropRecord(ctx, id, rm.Replica); err != nil {
			return err
		}
		return n.finishMove(ctx, id, rm, "done")
	case stepTransfer:
		if voter {
			if err := n.nh.RequestLeaderTransfer(uint64(id), rm.Replica); err != nil {
				return translate(err, false)
			}
			n.lg.Info("leadership transfer requested", "shard_id", id, "replica_id", rm.Replica, "target", rm.Node, "reason", rm.Reason)
		}
		return n.finishMove(ctx, id, rm, "done")
	case stepRollback:
		if voter || learner {
			if err := n.nh.SyncRequestDeleteReplica(ctx, uint64(id), rm.Replica, m.ConfigChangeID); err != nil {
				return translate(err, true)
			}
		}
		if err := n.dropRecord(ctx, id, rm.Replica); err != nil {
			return err
		}
		return n.finishMove(ctx, id, rm, "rolled back")
	}
	n.lg.Warn("move with unknown step dropped", "shard_id", id, "step", rm.Step)
	return n.finishMove(ctx, id, rm, "dropped")
}

// nodeGone reports whether the named node can no longer take a replica:
// removed by the operator, or down for longer than the dead-node timeout.
func (n *Node) nodeGone(p *metaState, name string) bool {
	if p.nodeStates[name] == nodeRemoved {
		return true
	}
	for _, v := range n.ms.views(time.Now()) {
		if v.Name == name {
			return !v.Alive && v.DownFor >= n.cfg.DeadNodeTimeout
		}
	}
	return true
}

// caughtUp reports whether the replica of shard id on the named node has
// applied the log up to catchUpSlack entries behind the local leader.
func (n *Node) caughtUp(ctx context.Context, id ring.ShardID, name string) bool {
	own, err := n.Stats(id)
	if err != nil {
		return false
	}
	mem, ok := n.ms.member(name)
	if !ok || mem.State != StateAlive || mem.GRPCAddr == "" {
		return false
	}
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	st, err := n.peers.Stats(cctx, mem.GRPCAddr, id)
	return err == nil && st.AppliedIndex+catchUpSlack >= own.AppliedIndex
}

// transferAway asks shard id's leader, the local replica rid, to hand
// leadership to a voter on a live node that is not stopping, draining or
// removed.
func (n *Node) transferAway(id ring.ShardID, rid uint64, p *metaState) error {
	live := map[string]bool{}
	for _, m := range n.ms.members() {
		if m.State == StateAlive && !m.Stopping && p.nodeStates[m.Name] == "" {
			live[m.Name] = true
		}
	}
	for _, r := range p.byShard[id] {
		if r.ID != rid && r.Role == RoleVoter && live[r.Node] {
			err := n.nh.RequestLeaderTransfer(uint64(id), r.ID)
			n.met.action(kindLeaderTransfer, err)
			if err == nil {
				n.lg.Info("leadership handed over before removing the leader's replica", "shard_id", id, "target", r.Node)
			}
			return translate(err, false)
		}
	}
	return fmt.Errorf("shard %d: no live voter to hand leadership to", id)
}
