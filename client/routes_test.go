package client

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	clusterv1 "github.com/cavedb/cave/proto/cave/cluster/v1"
	"github.com/cavedb/cave/ring"
)

// routingAnswer returns a Routing answer for a 3-shard table where shard
// s is led by node s ("a:1", "b:1", "c:1") and every node holds a replica,
// except that shard 3 has no known leader and node c is down.
func routingAnswer(t *testing.T) *clusterv1.RoutingResponse {
	t.Helper()
	tbl, err := ring.NewTable(3)
	require.NoError(t, err)
	resp := &clusterv1.RoutingResponse{Version: 7}
	for _, r := range tbl.Ranges() {
		resp.Slots = append(resp.Slots, &clusterv1.SlotRange{Start: uint32(r.Start), End: uint32(r.End), ShardId: uint64(r.Shard)})
	}
	reps := []*clusterv1.RouteReplica{{Node: "a", GrpcAddr: "a:1", Role: "voter"}, {Node: "b", GrpcAddr: "b:1", Role: "voter"}, {Node: "c", Role: "voter"}}
	resp.Shards = []*clusterv1.ShardRoute{
		{Id: 1, Leader: "a", LeaderGrpcAddr: "a:1", Replicas: reps},
		{Id: 2, Leader: "b", LeaderGrpcAddr: "b:1", Replicas: reps},
		{Id: 3, Replicas: reps},
	}
	return resp
}

// keyOf returns a key that the 3-shard table routes to shard id.
func keyOf(t *testing.T, r *routes, id ring.ShardID) string {
	t.Helper()
	for _, k := range []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"} {
		if _, s := r.table.Route(k); s == id {
			return k
		}
	}
	t.Fatalf("no key of shard %d", id)
	return ""
}

func TestCandidates(t *testing.T) {
	t.Parallel()
	r, err := newRoutes(routingAnswer(t))
	require.NoError(t, err)
	assert.Equal(t, uint64(7), r.version)
	assert.Equal(t, []string{"a:1", "b:1"}, r.nodes, "live nodes only, sorted")
	eps := []string{"e:1", "a:1"}
	k1, k2, k3 := keyOf(t, r, 1), keyOf(t, r, 2), keyOf(t, r, 3)
	cases := []struct {
		name   string
		r      *routes
		target target
		key    string
		turn   uint64
		want   []string
	}{
		{"leader first", r, toLeader, k1, 0, []string{"a:1", "b:1", "e:1"}},
		{"leader first, other shard", r, toLeader, k2, 5, []string{"b:1", "a:1", "e:1"}},
		{"no leader: replicas", r, toLeader, k3, 0, []string{"a:1", "b:1", "e:1"}},
		{"stale: replicas in turn", r, toReplica, k2, 0, []string{"a:1", "b:1", "e:1"}},
		{"stale: next turn", r, toReplica, k2, 1, []string{"b:1", "a:1", "e:1"}},
		{"stale: turn wraps", r, toReplica, k2, 2, []string{"a:1", "b:1", "e:1"}},
		{"any: nodes in turn", r, toAny, "", 1, []string{"b:1", "a:1", "e:1"}},
		{"unknown routing: endpoints", nil, toLeader, k1, 0, eps},
		{"unknown routing, stale", nil, toReplica, k1, 3, eps},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, tc.r.candidates(tc.target, tc.key, tc.turn, eps))
		})
	}
}

func TestNewRoutesBadAnswer(t *testing.T) {
	t.Parallel()
	gap := routingAnswer(t)
	gap.Slots = gap.Slots[1:]
	undescribed := routingAnswer(t)
	undescribed.Shards = undescribed.Shards[:2]
	for name, resp := range map[string]*clusterv1.RoutingResponse{
		"slots missing":       gap,
		"shard not described": undescribed,
		"empty answer":        {},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r, err := newRoutes(resp)
			assert.Error(t, err)
			assert.Nil(t, r)
		})
	}
	_, err := newRoutes(gap)
	assert.True(t, errors.Is(err, ring.ErrBadTable), "got %v", err)
}

func TestNext(t *testing.T) {
	t.Parallel()
	var tried []string
	c := []string{"a", "b"}
	assert.Equal(t, "a", next(c, &tried))
	assert.Equal(t, "b", next(c, &tried))
	assert.Equal(t, "a", next(c, &tried), "every candidate tried: start over")
	assert.Equal(t, "b", next(c, &tried))
	assert.Equal(t, "c", next([]string{"a", "c", "b"}, &tried), "a candidate that appeared since")
}
