package node

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cavedb/cave/placement"
	"github.com/cavedb/cave/ring"
)

// The coordinator is the reconciler's cluster-wide half. It runs on the
// node whose replica leads the meta shard: each round it builds the
// planner's view of the cluster (placement.Cluster) from the meta records,
// gossip and the shards' sizes, asks placement.Plan for the next actions,
// and records each as a move (moves.go). It never changes a shard itself:
// the shard's leader executes the move. A coordinator that dies leaves
// only records, which the next meta leader sees as moves in flight.

// clusterView returns the planner's view of the cluster at time now from
// the meta records p, gossip and the cached shard sizes.
func (n *Node) clusterView(p *metaState, now time.Time) placement.Cluster {
	var c placement.Cluster
	gossip := map[string]NodeView{}
	for _, v := range n.ms.views(now) {
		gossip[v.Name] = v
	}
	mems := map[string]Member{}
	for _, m := range n.ms.members() {
		mems[m.Name] = m
	}
	names := map[string]bool{}
	for name := range gossip {
		names[name] = true
	}
	for _, rs := range p.byShard {
		for _, r := range rs {
			names[r.Node] = true
		}
	}
	for name := range p.nodeStates {
		names[name] = true
	}
	sorted := make([]string, 0, len(names))
	for name := range names {
		sorted = append(sorted, name)
	}
	slices.Sort(sorted)
	for _, name := range sorted {
		c.Nodes = append(c.Nodes, placement.Node{Name: name, State: n.nodeState(name, p, gossip, mems)})
	}
	leaders := n.leadersByShard(p)
	for id, rs := range p.byShard {
		s := placement.Shard{ID: id, Voters: n.cfg.Replicas, Leader: leaders[id]}
		if id == ring.MetaShard {
			s.Voters, s.LearnersOnRest = n.cfg.MetaVoters, true
		}
		_, s.Busy = p.moves[id]
		keys, bytes := n.sizes.get(id)
		for _, r := range rs {
			// A learner that is not part of a move finished its catch-up
			// step; the promote step checks again before promoting.
			s.Replicas = append(s.Replicas, placement.Replica{ID: r.ID, Node: r.Node, Role: r.Role,
				CaughtUp: true, Keys: keys, Bytes: bytes})
		}
		c.Shards = append(c.Shards, s)
	}
	slices.SortFunc(c.Shards, func(a, b placement.Shard) int { return int(a.ID) - int(b.ID) })
	return c
}

// nodeState is the planner's state of the named node: the operator's
// record first, then gossip.
func (n *Node) nodeState(name string, p *metaState, gossip map[string]NodeView, mems map[string]Member) placement.NodeState {
	switch p.nodeStates[name] {
	case nodeRemoved:
		return placement.NodeRemoved
	case nodeDraining:
		return placement.NodeDraining
	}
	v, ok := gossip[name]
	switch {
	case !ok:
		// Reaped by gossip long ago: as good as dead.
		return placement.NodeDead
	case v.Alive && !mems[name].Stopping && mems[name].RaftAddr != "":
		return placement.NodeAlive
	case !v.Alive && v.DownFor >= n.cfg.DeadNodeTimeout:
		return placement.NodeDead
	}
	return placement.NodeDown
}

// leadersByShard returns the replica id of each shard's leader as this
// node knows it: from the local replica when it has one, else from the
// node gossip says leads it.
func (n *Node) leadersByShard(p *metaState) map[ring.ShardID]uint64 {
	byNode := map[string][]ring.ShardID{}
	for _, m := range n.ms.members() {
		if m.State == StateAlive {
			byNode[m.Name] = m.Leads
		}
	}
	out := map[ring.ShardID]uint64{}
	for id, rs := range p.byShard {
		if rid, ok := n.localLeader(id); ok {
			out[id] = rid
			continue
		}
		for _, r := range rs {
			if slices.Contains(byNode[r.Node], id) {
				out[id] = r.ID
			}
		}
	}
	return out
}

// coordinate plans the next actions for the whole cluster and records each
// as a move. It runs only while the local replica leads the meta shard and
// automatic rebalancing is not paused.
func (n *Node) coordinate(ctx context.Context, p *metaState) {
	if _, leading := n.leaders.leader(ring.MetaShard); !leading {
		return
	}
	n.sizes.refresh(ctx, n, p)
	c := n.clusterView(p, time.Now())
	n.met.movesInFlight.Set(float64(len(p.moves)))
	if p.paused {
		return
	}
	if err := c.Validate(); err != nil {
		n.lg.Warn("cluster view not plannable", "err", err)
		return
	}
	for _, a := range placement.Plan(c, n.cfg.Rebalance) {
		if _, err := n.recordAction(ctx, a, "auto"); err != nil {
			if ctx.Err() == nil {
				n.lg.Warn("record planned move", "action", a.String(), "err", err)
			}
			return
		}
	}
}

// recordAction records the planned action a as a move of its shard; source
// says who asked ("auto" or "operator"). It reports false, with no error,
// when a move of the shard is already in flight.
func (n *Node) recordAction(ctx context.Context, a placement.Action, source string) (bool, error) {
	m := move{Replica: a.Replica, Node: a.Node, Reason: a.Reason}
	switch a.Kind {
	case placement.AddLearner:
		rid, err := n.allocReplicaID(ctx)
		if err != nil {
			return false, err
		}
		// The move ends once the learner caught up; the planner promotes
		// it in a later round if the shard needs another voter.
		m.Kind, m.Step, m.Replica = moveAdd, stepRecord, rid
	case placement.Promote:
		m.Kind, m.Step = movePromote, stepPromote
	case placement.RemoveReplica:
		m.Kind, m.Step = moveRemove, stepRemove
	case placement.TransferLeader:
		m.Kind, m.Step = moveTransfer, stepTransfer
	default:
		return false, fmt.Errorf("node: unknown action %s", a.Kind)
	}
	return n.recordMove(ctx, a.Shard, m, source)
}

// recordMove records m as the move of shard id, as createMove does, and
// logs it; source says who asked.
func (n *Node) recordMove(ctx context.Context, id ring.ShardID, m move, source string) (bool, error) {
	created, err := n.createMove(ctx, id, m)
	if created {
		n.lg.Info("move planned", "shard_id", id, "kind", m.Kind, "replica_id", m.Replica, "target", m.Node, "source", source, "reason", m.Reason)
	}
	return created, err
}

// sizeRefresh is how often the coordinator reads the shards' sizes.
const sizeRefresh = 10 * time.Second

// shardSizes caches each shard's key count and bytes for the planner's
// byte balance. The coordinator refreshes it each round; Plan on any
// node refreshes its own.
type shardSizes struct {
	mu    sync.Mutex
	at    time.Time
	keys  map[ring.ShardID]int64
	bytes map[ring.ShardID]int64
}

// get returns shard id's cached size, 0 when unknown.
func (s *shardSizes) get(id ring.ShardID) (keys, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[id], s.bytes[id]
}

// refresh reads every shard's size, from a local replica or a host of one,
// when the cache is older than sizeRefresh.
func (s *shardSizes) refresh(ctx context.Context, n *Node, p *metaState) {
	s.mu.Lock()
	fresh := time.Since(s.at) < sizeRefresh
	s.mu.Unlock()
	if fresh {
		return
	}
	keys, bytes := map[ring.ShardID]int64{}, map[ring.ShardID]int64{}
	for id := range p.byShard {
		k, b := n.shardSize(ctx, id)
		keys[id], bytes[id] = max(k, 0), max(b, 0)
	}
	s.mu.Lock()
	s.at, s.keys, s.bytes = time.Now(), keys, bytes
	s.mu.Unlock()
}
