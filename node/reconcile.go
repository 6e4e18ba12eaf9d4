package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lni/dragonboat/v4"

	"github.com/cavedb/cave/ring"
	"github.com/cavedb/cave/shard"
)

// reconcileLoop runs reconcileOnce every ReconcileInterval until Close.
func (n *Node) reconcileLoop() {
	t := time.NewTicker(n.cfg.ReconcileInterval)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
			n.reconcileOnce(n.ctx)
		}
	}
}

// reconcileOnce refreshes the cached meta records, makes the local
// replicas match the records naming this node, takes the next step of the
// move of every shard whose leader is local, and, on the meta shard's
// leader, plans the next moves of the whole cluster (coordinator.go).
// Only a shard's leader changes its membership, each step is recorded in
// the meta shard first, and replica ids come from a compare-and-swap
// counter, so reconcilers on different nodes never contradict each other.
func (n *Node) reconcileOnce(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 10*n.cfg.ReconcileInterval)
	defer cancel()
	meta := ""
	if n.HasReplica(ring.MetaShard) {
		meta = "1"
	}
	n.ms.setTag(tagMeta, meta)
	p, err := n.readMetaState(ctx, false)
	if err != nil {
		if errors.Is(err, ErrNoReplica) {
			n.shedLeaderships()
		} else if !errors.Is(err, ErrNotInitialized) && !errors.Is(err, ErrNotReady) {
			n.lg.Warn("read placement", "err", err)
		}
		return
	}
	if old := n.state.Swap(p); old == nil {
		n.lg.Info("cluster ready", "cluster_id", p.clusterID, "members", len(n.ms.members()))
	}
	n.syncLocalReplicas(ctx, p)
	for _, si := range n.nh.GetNodeHostInfo(dragonboat.NodeHostInfoOption{SkipLogInfo: true}).ShardInfoList {
		if si.LeaderID == 0 || si.LeaderID != si.ReplicaID {
			continue
		}
		if err := n.reconcileShard(ctx, ring.ShardID(si.ShardID), p); err != nil && ctx.Err() == nil && !errors.Is(err, errMoveChanged) {
			n.lg.Warn("reconcile shard", "shard_id", si.ShardID, "err", err)
		}
	}
	n.coordinate(ctx, p)
}

// shedLeaderships hands every leadership of this node to another voter of
// the shard. It runs when the node has no meta replica (it was drained
// off the meta shard, or removed): such a node cannot read the moves it
// would have to execute as a shard's leader, so another replica must lead.
// It does not wait for the transfers; the next round tries again.
func (n *Node) shedLeaderships() {
	for _, si := range n.nh.GetNodeHostInfo(dragonboat.NodeHostInfoOption{SkipLogInfo: true}).ShardInfoList {
		if si.LeaderID == 0 || si.LeaderID != si.ReplicaID {
			continue
		}
		for rid := range si.Replicas {
			if rid == si.ReplicaID {
				continue
			}
			err := n.nh.RequestLeaderTransfer(si.ShardID, rid)
			n.met.action(kindLeaderTransfer, err)
			if err == nil {
				n.lg.Info("leadership handed over: no local meta replica to read moves from", "shard_id", si.ShardID, "to_replica_id", rid)
				break
			}
		}
	}
}

// reconcileShard takes the next step of shard id's move, if it has one. The
// shard's leader is local.
func (n *Node) reconcileShard(ctx context.Context, id ring.ShardID, p *metaState) error {
	m, err := n.nh.SyncGetShardMembership(ctx, uint64(id))
	if err != nil {
		return translate(err, false)
	}
	if id == ring.MetaShard {
		for _, r := range p.byShard[id] {
			// A new node learns about its meta replica only through
			// StartReplica; repeat it until the node reports running one.
			_, voter := m.Nodes[r.ID]
			_, learner := m.NonVotings[r.ID]
			if (voter || learner) && r.Node != n.cfg.Name {
				if mem, ok := n.ms.member(r.Node); ok && mem.State == StateAlive && !n.ms.hasMeta(r.Node) {
					n.notifyStart(ctx, mem, id, r.ID, r.Role)
				}
			}
		}
	}
	rm := p.moves[id]
	if rm == nil {
		return nil
	}
	step := rm.Step
	err = n.runMove(ctx, id, rm, m, p)
	n.met.action(step, err)
	return err
}

func (n *Node) dropRecord(ctx context.Context, id ring.ShardID, rid uint64) error {
	_, err := n.metaWrite(ctx, shard.Op{Kind: shard.OpDelete, Key: []byte(replicaKey(id, rid))})
	return err
}

// notifyStart asks mem to start replica rid of shard id. Failures are only
// logged: the target also starts replicas it finds in the meta shard, and
// the leader repeats the request for meta replicas.
func (n *Node) notifyStart(ctx context.Context, mem Member, id ring.ShardID, rid uint64, role Role) {
	if mem.Name == n.cfg.Name {
		if err := n.StartReplica(ctx, id, rid, role == RoleLearner); err != nil {
			n.lg.Warn("start local replica", "shard_id", id, "replica_id", rid, "err", err)
		}
		return
	}
	if err := n.peers.StartReplica(ctx, mem.GRPCAddr, id, rid, role == RoleLearner); err != nil {
		n.lg.Warn("ask peer to start replica", "shard_id", id, "replica_id", rid, "target", mem.Name, "err", err)
	}
}

// ErrReplicaConflict is returned by StartReplica when a different replica of
// the same shard already runs on this node.
var ErrReplicaConflict = errors.New("node: another replica of the shard runs here")

// StartReplica starts replica rid of shard id on this node as a new member
// joining the shard, after deleting any data an earlier replica of the shard
// left here. It is idempotent: it returns nil when the replica already runs.
func (n *Node) StartReplica(ctx context.Context, id ring.ShardID, rid uint64, learner bool) error {
	n.startMu.Lock()
	defer n.startMu.Unlock()
	if cur, ok := n.localReplicaID(id); ok {
		switch {
		case cur == rid:
			return nil
		case cur > rid:
			return fmt.Errorf("%w: shard %d runs replica %d, asked for older %d", ErrReplicaConflict, id, cur, rid)
		}
		// Replica ids only grow, so a newer replica supersedes one that was
		// removed from the shard while this node was away.
		if err := n.nh.StopReplica(uint64(id), cur); err != nil {
			return fmt.Errorf("node: stop superseded shard %d replica %d: %w", id, cur, err)
		}
		n.lg.Info("replica superseded", "shard_id", id, "replica_id", cur, "by", rid)
	}
	restart := false
	for _, li := range n.nh.GetNodeHostInfo(dragonboat.NodeHostInfoOption{}).LogInfo {
		if li.ShardID != uint64(id) {
			continue
		}
		if li.ReplicaID == rid {
			restart = true
			continue
		}
		if err := n.removeData(ctx, id, li.ReplicaID); err != nil {
			return err
		}
	}
	if restart {
		// The role it joined with, not the record's: see learners.go.
		learner = n.isLearner(id, rid)
	} else {
		if err := n.store.RemoveShardData(id); err != nil {
			return err
		}
		if learner {
			if err := n.markLearner(id, rid); err != nil {
				return err
			}
		}
	}
	if err := n.nh.StartOnDiskReplica(nil, !restart, n.store.StateMachineFactory(), n.shardConfig(uint64(id), rid, learner)); err != nil {
		if errors.Is(err, dragonboat.ErrShardAlreadyExist) {
			return nil
		}
		return fmt.Errorf("node: start shard %d replica %d: %w", id, rid, err)
	}
	n.lg.Info("replica started", "shard_id", id, "replica_id", rid, "learner", learner, "restart", restart)
	return nil
}

// removeData deletes the Raft log of a stopped replica and its shard's
// state-machine data, so the shard can be re-added here later.
func (n *Node) removeData(ctx context.Context, id ring.ShardID, rid uint64) error {
	ctx, cancel := n.deadline(ctx)
	defer cancel()
	if err := n.nh.SyncRemoveData(ctx, uint64(id), rid); err != nil {
		return fmt.Errorf("node: remove raft data of shard %d replica %d: %w", id, rid, err)
	}
	n.clearLearner(id, rid)
	return n.store.RemoveShardData(id)
}

// syncLocalReplicas starts replicas that the meta shard assigns to this node
// but that do not run, and stops and deletes running replicas that the meta
// shard no longer records (they were removed while this node was down). A
// node whose own record says removed starts none: a removed name never
// rejoins.
func (n *Node) syncLocalReplicas(ctx context.Context, p *metaState) {
	removed := p.nodeStates[n.cfg.Name] == nodeRemoved
	if removed && !n.removedLogged.Swap(true) {
		n.lg.Error("this node was removed from the cluster and runs no replica; a removed node cannot rejoin under the same name: wipe its data dir and start it under a new --name")
	}
	want := map[ring.ShardID]ReplicaView{}
	for id, rs := range p.byShard {
		for _, r := range rs {
			if r.Node == n.cfg.Name {
				want[id] = r
			}
		}
	}
	running := map[ring.ShardID]uint64{}
	for _, si := range n.nh.GetNodeHostInfo(dragonboat.NodeHostInfoOption{SkipLogInfo: true}).ShardInfoList {
		running[ring.ShardID(si.ShardID)] = si.ReplicaID
		if _, votes := si.Replicas[si.ReplicaID]; votes && !si.Pending && n.isLearner(ring.ShardID(si.ShardID), si.ReplicaID) {
			n.settlePromotion(ctx, ring.ShardID(si.ShardID), si.ReplicaID)
		}
	}
	for id, rid := range running {
		if w, ok := want[id]; ok && w.ID == rid {
			continue
		}
		n.startMu.Lock()
		err := n.nh.StopReplica(uint64(id), rid)
		if err == nil {
			err = n.removeData(ctx, id, rid)
		}
		n.startMu.Unlock()
		if err != nil {
			n.lg.Warn("remove replica no longer placed here", "shard_id", id, "replica_id", rid, "err", err)
			continue
		}
		delete(running, id)
		n.lg.Info("replica removed", "shard_id", id, "replica_id", rid)
	}
	for id, r := range want {
		if _, ok := running[id]; ok || removed {
			continue
		}
		if err := n.StartReplica(ctx, id, r.ID, r.Role == RoleLearner); err != nil {
			n.lg.Warn("start placed replica", "shard_id", id, "replica_id", r.ID, "err", err)
		}
	}
}
