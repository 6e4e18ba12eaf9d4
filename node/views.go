package node

import (
	"cmp"
	"context"
	"slices"
	"strings"

	"github.com/cavedb/cave/ring"
)

// Members returns every node gossip knows, sorted by name.
func (n *Node) Members() []Member { return n.ms.members() }

// ReplicaStatus is one replica in a ShardStatus.
type ReplicaStatus struct {
	Node string
	ID   uint64
	Role Role
}

// ShardStatus describes one shard for the cluster view.
type ShardStatus struct {
	ID ring.ShardID
	// Leader is the name of the node whose replica leads, or "" if unknown.
	Leader string
	// Keys and Bytes come from the local replica, or from a host of one;
	// -1 when none answered.
	Keys, Bytes int64
	Replicas    []ReplicaStatus
}

// Shards returns the status of every shard, the meta shard first, from the
// placement records and the leaders reported by local replicas or gossip.
func (n *Node) Shards(ctx context.Context) ([]ShardStatus, error) {
	p, err := n.readMetaState(ctx, false)
	if err != nil {
		return nil, err
	}
	gossipLeader := map[ring.ShardID]string{}
	for _, m := range n.ms.members() {
		if m.State != StateAlive {
			continue
		}
		for _, id := range m.Leads {
			gossipLeader[id] = m.Name
		}
	}
	ids := make([]ring.ShardID, 0, len(p.byShard))
	for id := range p.byShard {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]ShardStatus, 0, len(ids))
	for _, id := range ids {
		st := ShardStatus{ID: id, Leader: gossipLeader[id], Keys: -1, Bytes: -1}
		leaderRID, local := n.localLeader(id)
		for _, r := range p.byShard[id] {
			st.Replicas = append(st.Replicas, ReplicaStatus{Node: r.Node, ID: r.ID, Role: r.Role})
			if local && r.ID == leaderRID {
				st.Leader = r.Node
			}
		}
		st.Keys, st.Bytes = n.shardSize(ctx, id)
		out = append(out, st)
	}
	return out, nil
}

// Host is a node that hosts a replica of a shard, with its internal API
// address.
type Host struct {
	Name     string
	GRPCAddr string
}

// ShardHosts returns the live nodes that host a replica of shard id, the
// one gossip names as leader first. It reads the placement cached by the
// reconciler and never blocks; it returns nothing before the first
// reconcile.
func (n *Node) ShardHosts(id ring.ShardID) []Host {
	p := n.state.Load()
	if p == nil {
		return nil
	}
	alive := map[string]Member{}
	leader := ""
	for _, m := range n.ms.members() {
		if m.State != StateAlive {
			continue
		}
		alive[m.Name] = m
		if slices.Contains(m.Leads, id) {
			leader = m.Name
		}
	}
	var out []Host
	for _, r := range p.byShard[id] {
		if m, ok := alive[r.Node]; ok && m.GRPCAddr != "" {
			h := Host{Name: r.Node, GRPCAddr: m.GRPCAddr}
			if r.Node == leader {
				out = append([]Host{h}, out...)
			} else {
				out = append(out, h)
			}
		}
	}
	return out
}

// LeaderHost returns the node whose replica leads shard id when that is
// another live node: linearizable operations run best there, since a
// leader drops proposals while it hands leadership over and only a
// proposal made on the leader itself learns of the drop at once. The
// leader is the one the local replica last heard from or, while that is
// unknown here (the node is restarting or catching up, or the placement
// is not loaded yet), the one gossip names. It reports false when the local replica leads, when no leader is
// known either way, or when the leader's node is not a live member with a
// gRPC address. It never blocks.
func (n *Node) LeaderHost(id ring.ShardID) (Host, bool) {
	rid, leading := n.leaders.leader(id)
	if leading {
		return Host{}, false
	}
	name := "" // the leader's node by the local replica's account
	if p := n.state.Load(); p != nil && rid != 0 {
		for _, r := range p.byShard[id] {
			if r.ID == rid {
				name = r.Node
			}
		}
	}
	for _, m := range n.ms.members() {
		if m.Name == n.cfg.Name || m.State != StateAlive || m.GRPCAddr == "" {
			continue
		}
		if m.Name == name || (name == "" && slices.Contains(m.Leads, id)) {
			return Host{Name: m.Name, GRPCAddr: m.GRPCAddr}, true
		}
	}
	return Host{}, false
}

// shardSize returns the key count and bytes of shard id from the local
// replica or, without one, from the first live host that answers.
func (n *Node) shardSize(ctx context.Context, id ring.ShardID) (int64, int64) {
	if s, err := n.Stats(id); err == nil {
		return s.Keys, s.Bytes
	}
	for _, h := range n.ShardHosts(id) {
		if st, err := n.peers.Stats(ctx, h.GRPCAddr, id); err == nil {
			return st.Keys, st.Bytes
		}
	}
	return -1, -1
}

// ShardRoute is where the requests of one data shard go, as this node
// sees it now.
type ShardRoute struct {
	ID ring.ShardID
	// Leader is the node whose replica leads the shard; it is zero when no
	// leader is known or the leader's node is not a live member with a
	// gRPC address.
	Leader Host
	// Replicas are the shard's recorded replicas, sorted by node name. A
	// replica's GRPCAddr is "" when its node is not alive.
	Replicas []RouteReplica
}

// RouteReplica is one replica in a ShardRoute.
type RouteReplica struct {
	Host
	Role Role
}

// Routes returns the route of every data shard, sorted by id. It reads
// the placement cached by the reconciler, gossip and the local replicas'
// view of their leaders: no Raft round, and it never blocks. A leader is
// the local node when its replica leads, else the one the local replica
// last heard from, else the one gossip names. It returns ErrNotInitialized
// before the first reconcile has loaded the placement.
func (n *Node) Routes() ([]ShardRoute, error) {
	p := n.state.Load()
	if p == nil {
		return nil, ErrNotInitialized
	}
	alive := map[string]Member{}
	gossipLeader := map[ring.ShardID]string{}
	for _, m := range n.ms.members() {
		if m.State != StateAlive {
			continue
		}
		alive[m.Name] = m
		for _, id := range m.Leads {
			if m.Name != n.cfg.Name { // the local replica knows better
				gossipLeader[id] = m.Name
			}
		}
	}
	out := make([]ShardRoute, 0, len(p.byShard))
	for id, replicas := range p.byShard {
		if id == ring.MetaShard {
			continue
		}
		rt := ShardRoute{ID: id}
		rid, leading := n.leaders.leader(id)
		leader := gossipLeader[id]
		if leading {
			leader = n.cfg.Name
		}
		for _, r := range replicas {
			if !leading && rid != 0 && r.ID == rid {
				leader = r.Node
			}
			rt.Replicas = append(rt.Replicas, RouteReplica{Host: Host{Name: r.Node, GRPCAddr: alive[r.Node].GRPCAddr}, Role: r.Role})
		}
		if m, ok := alive[leader]; ok && m.GRPCAddr != "" {
			rt.Leader = Host{Name: leader, GRPCAddr: m.GRPCAddr}
		}
		slices.SortFunc(rt.Replicas, func(a, b RouteReplica) int { return strings.Compare(a.Name, b.Name) })
		out = append(out, rt)
	}
	slices.SortFunc(out, func(a, b ShardRoute) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}
