package client

import (
	"fmt"
	"slices"

	clusterv1 "github.com/cavedb/cave/proto/cave/cluster/v1"
	"github.com/cavedb/cave/ring"
)

// routes is one immutable snapshot of the cluster's routing, built from a
// Routing answer.
type routes struct {
	version uint64
	table   *ring.Table
	shards  map[ring.ShardID]shardRoute
	// nodes are the gRPC addresses of every replica's live node, sorted.
	nodes []string
}

// shardRoute holds the gRPC addresses of one shard's nodes.
type shardRoute struct {
	leader   string   // "" when unknown
	replicas []string // live replicas, in the server's order (by node name)
}

// newRoutes builds a snapshot from a Routing answer. It fails when the
// slot table is malformed or a slot's shard is not described, so a bad
// answer never replaces a good snapshot.
func newRoutes(resp *clusterv1.RoutingResponse) (*routes, error) {
	rs := make([]ring.Range, len(resp.GetSlots()))
	for i, sr := range resp.GetSlots() {
		rs[i] = ring.Range{Start: ring.Slot(sr.GetStart()), End: ring.Slot(sr.GetEnd()), Shard: ring.ShardID(sr.GetShardId())}
	}
	tbl, err := ring.FromRanges(rs)
	if err != nil {
		return nil, fmt.Errorf("client: routing answer: %w", err)
	}
	r := &routes{version: resp.GetVersion(), table: tbl, shards: map[ring.ShardID]shardRoute{}}
	seen := map[string]bool{}
	for _, sh := range resp.GetShards() {
		route := shardRoute{leader: sh.GetLeaderGrpcAddr()}
		for _, rep := range sh.GetReplicas() {
			if a := rep.GetGrpcAddr(); a != "" {
				route.replicas = append(route.replicas, a)
				if !seen[a] {
					seen[a] = true
					r.nodes = append(r.nodes, a)
				}
			}
		}
		r.shards[ring.ShardID(sh.GetId())] = route
	}
	for _, id := range tbl.Shards() {
		if _, ok := r.shards[id]; !ok {
			return nil, fmt.Errorf("client: routing answer: shard %d owns slots but is not described", id)
		}
	}
	slices.Sort(r.nodes)
	return r, nil
}

// target is how a request picks its nodes.
type target uint8

const (
	toLeader  target = iota // writes and linearizable reads of one key
	toReplica               // stale reads of one key
	toAny                   // lists, which span every shard
)

// candidates returns the addresses to try for a request, best first and
// without duplicates, ending with endpoints: for toLeader the leader's
// node, then the other replicas; for toReplica the replicas starting at
// turn (mod their number), then the leader; for toAny every known node
// starting at turn. With r nil (routing unknown) it is endpoints alone.
func (r *routes) candidates(t target, key string, turn uint64, endpoints []string) []string {
	var out []string
	add := func(addrs ...string) {
		for _, a := range addrs {
			if a != "" && !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
	}
	if r != nil {
		switch t {
		case toAny:
			add(rotate(r.nodes, turn)...)
		default:
			_, id := r.table.Route(key)
			sr := r.shards[id]
			if t == toLeader {
				add(sr.leader)
				add(sr.replicas...)
			} else {
				add(rotate(sr.replicas, turn)...)
				add(sr.leader)
			}
		}
	}
	add(endpoints...)
	return out
}

// rotate returns a new slice of s starting at s[turn mod len(s)].
func rotate(s []string, turn uint64) []string {
	if len(s) == 0 {
		return nil
	}
	i := int(turn % uint64(len(s)))
	return append(slices.Clone(s[i:]), s[:i]...)
}
