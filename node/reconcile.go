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

// reconcileOnce refreshes the cached placement, makes the local replicas
// match the records naming this node, and plans and executes placement
// actions for every shard whose leader is local. Only a shard's leader acts
// on it, and replica ids come from a compare-and-swap counter in the meta
// shard, so reconcilers on different nodes never contradict each other.
func (n *Node) reconcileOnce(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 10*n.cfg.ReconcileInterval)
	defer cancel()
	meta := ""
	if n.HasReplica(ring.MetaShard) {
		meta = "1"
	}
	n.ms.setTag(tagMeta, meta)
	p, err := n.readPlacement(ctx, false)
	if err != nil {
		if !errors.Is(err, ErrNoReplica) && !errors.Is(err, ErrNotInitialized) && !errors.Is(err, ErrNotReady) {
			n.lg.Warn("read placement", "err", err)
		}
		return
	}
	if old := n.placement.Swap(p); old == nil {
		n.lg.Info("cluster ready", "cluster_id", p.clusterID, "members", len(n.ms.members()))
	}
	n.syncLocalReplicas(ctx, p)
	nodes := n.ms.views(time.Now())
	var led []ring.ShardID
	for _, si := range n.nh.GetNodeHostInfo(dragonboat.NodeHostInfoOption{SkipLogInfo: true}).ShardInfoList {
		if si.LeaderID == 0 || si.LeaderID != si.ReplicaID {
			continue
		}
		led = append(led, ring.ShardID(si.ShardID))
		if err := n.reconcileShard(ctx, ring.ShardID(si.ShardID), p, nodes); err != nil && ctx.Err() == nil {
			n.lg.Warn("reconcile shard", "shard_id", si.ShardID, "err", err)
		}
	}
	n.balanceLeaders(led, p)
}

// balanceLeaders hands one leadership to a less loaded node when this node
// leads more than its fair share, ceil(shards / live nodes), of the shards.
// Leaders do the work of writes and linearizable reads, so spreading them
// spreads the load. Counts come from gossip and may lag by a round; moving
// one shard per round keeps the system from oscillating.
func (n *Node) balanceLeaders(led []ring.ShardID, p *placement) {
	counts := map[string]int{}
	alive := 0
	for _, m := range n.ms.members() {
		if m.State == StateAlive && m.RaftAddr != "" && !m.Stopping {
			alive++
			counts[m.Name] = len(m.Leads)
		}
	}
	counts[n.cfg.Name] = len(led)
	if alive < 2 {
		return
	}
	fair := (len(p.byShard) + alive - 1) / alive
	if len(led) <= fair {
		return
	}
	for _, id := range led {
		for _, r := range p.byShard[id] {
			c, ok := counts[r.Node]
			if !ok || r.Node == n.cfg.Name || r.Role != RoleVoter || c+2 > len(led) {
				continue
			}
			err := n.nh.RequestLeaderTransfer(uint64(id), r.ID)
			n.met.action(kindLeaderTransfer, err)
			if err == nil {
				n.lg.Info("leadership handed over for balance", "shard_id", id, "target", r.Node, "leading", len(led), "fair", fair)
				return
			}
		}
	}
}

// reconcileShard plans and executes the placement actions of one locally
// led shard.
func (n *Node) reconcileShard(ctx context.Context, id ring.ShardID, p *placement, nodes []NodeView) error {
	m, err := n.nh.SyncGetShardMembership(ctx, uint64(id))
	if err != nil {
		return translate(err, false)
	}
	in := PlanInput{Shard: id, Voters: n.cfg.Replicas, Nodes: nodes, DeadAfter: n.cfg.DeadNodeTimeout, Load: p.load}
	if id == ring.MetaShard {
		in.Voters, in.LearnersOnRest = n.cfg.MetaVoters, true
	}
	for _, r := range p.byShard[id] {
		_, voter := m.Nodes[r.ID]
		_, learner := m.NonVotings[r.ID]
		r.Member = voter || learner
		in.Replicas = append(in.Replicas, r)
		if id == ring.MetaShard && r.Member && r.Node != n.cfg.Name {
			// A new node learns about its meta replica only through
			// StartReplica; repeat it until the node reports running one.
			if mem, ok := n.ms.member(r.Node); ok && mem.State == StateAlive && !n.ms.hasMeta(r.Node) {
				n.notifyStart(ctx, mem, id, r.ID, r.Role)
			}
		}
	}
	// With OrderedConfigChange every membership change names the config
	// change it follows, so one change is made per round; the next round
	// reads the new membership.
	for _, a := range Plan(in) {
		n.lg.Info("placement action", "shard_id", id, "action", a.Kind.String(), "replica_id", a.Replica, "target", a.Node, "role", a.Role.String(), "reason", a.Reason)
		changed, err := n.execute(ctx, id, a, m)
		n.met.action(a.Kind.String(), err)
		if err != nil {
			return fmt.Errorf("%s: %w", a, err)
		}
		if changed {
			return nil
		}
	}
	return nil
}

// execute carries out one planned action on shard id, whose leader is
// local and whose membership is m. It reports whether it changed the
// membership.
func (n *Node) execute(ctx context.Context, id ring.ShardID, a Action, m *dragonboat.Membership) (bool, error) {
	switch a.Kind {
	case ActCreate:
		rid, err := n.allocReplicaID(ctx)
		if err != nil {
			return false, err
		}
		if _, err := n.metaWrite(ctx, shard.Op{Kind: shard.OpPut, Key: []byte(replicaKey(id, rid)),
			Value: replicaValue(a.Node, a.Role), HasPrevRevision: true}); err != nil {
			return false, err
		}
		a.Replica = rid
		return true, n.addReplica(ctx, id, a, m.ConfigChangeID)
	case ActAdd:
		if _, gone := m.Removed[a.Replica]; gone {
			return false, n.dropRecord(ctx, id, a.Replica)
		}
		return true, n.addReplica(ctx, id, a, m.ConfigChangeID)
	case ActRemove:
		if err := n.nh.SyncRequestDeleteReplica(ctx, uint64(id), a.Replica, m.ConfigChangeID); err != nil {
			return false, translate(err, true)
		}
		n.lg.Info("replica removed from shard", "shard_id", id, "replica_id", a.Replica, "target", a.Node)
		return true, n.dropRecord(ctx, id, a.Replica)
	case ActDropRecord:
		return false, n.dropRecord(ctx, id, a.Replica)
	}
	return false, nil
}

func (n *Node) dropRecord(ctx context.Context, id ring.ShardID, rid uint64) error {
	_, err := n.metaWrite(ctx, shard.Op{Kind: shard.OpDelete, Key: []byte(replicaKey(id, rid))})
	return err
}

// addReplica adds a recorded replica to the shard's membership and tells its
// node to start it.
func (n *Node) addReplica(ctx context.Context, id ring.ShardID, a Action, ccid uint64) error {
	mem, ok := n.ms.member(a.Node)
	if !ok || mem.RaftAddr == "" {
		return fmt.Errorf("node %s has no raft address in gossip", a.Node)
	}
	var err error
	if a.Role == RoleLearner {
		err = n.nh.SyncRequestAddNonVoting(ctx, uint64(id), a.Replica, mem.RaftAddr, ccid)
	} else {
		err = n.nh.SyncRequestAddReplica(ctx, uint64(id), a.Replica, mem.RaftAddr, ccid)
	}
	if err != nil {
		return translate(err, true)
	}
	n.lg.Info("replica added", "shard_id", id, "replica_id", a.Replica, "target", a.Node, "role", a.Role.String())
	n.notifyStart(ctx, mem, id, a.Replica, a.Role)
	return nil
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
	if !restart {
		if err := n.store.RemoveShardData(id); err != nil {
			return err
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
	return n.store.RemoveShardData(id)
}

// syncLocalReplicas starts replicas that the meta shard assigns to this node
// but that do not run, and stops and deletes running replicas that the meta
// shard no longer records (they were removed while this node was down).
func (n *Node) syncLocalReplicas(ctx context.Context, p *placement) {
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
		if _, ok := running[id]; ok {
			continue
		}
		if err := n.StartReplica(ctx, id, r.ID, r.Role == RoleLearner); err != nil {
			n.lg.Warn("start placed replica", "shard_id", id, "replica_id", r.ID, "err", err)
		}
	}
}
