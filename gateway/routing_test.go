package gateway

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"google.golang.org/protobuf/proto"

	clusterv1 "github.com/cavedb/cave/proto/cave/cluster/v1"
)

// TestRoutingVersion checks that equal answers get equal versions and
// that any change, a moved string boundary included, changes it.
func TestRoutingVersion(t *testing.T) {
	t.Parallel()
	base := &clusterv1.RoutingResponse{
		Slots: []*clusterv1.SlotRange{{Start: 0, End: 2048, ShardId: 1}, {Start: 2048, End: 4096, ShardId: 2}},
		Shards: []*clusterv1.ShardRoute{
			{Id: 1, Leader: "ab", LeaderGrpcAddr: "c:1", Replicas: []*clusterv1.RouteReplica{{Node: "ab", GrpcAddr: "c:1", Role: "voter"}}},
			{Id: 2, Replicas: []*clusterv1.RouteReplica{{Node: "ab", GrpcAddr: "c:1", Role: "voter"}}},
		},
	}
	v := routingVersion(base)
	same := proto.Clone(base).(*clusterv1.RoutingResponse)
	same.Version = 99
	assert.Equal(t, v, routingVersion(same), "the version field itself is not hashed")

	changes := map[string]func(r *clusterv1.RoutingResponse){
		"leader moved":    func(r *clusterv1.RoutingResponse) { r.Shards[1].Leader, r.Shards[1].LeaderGrpcAddr = "ab", "c:1" },
		"string boundary": func(r *clusterv1.RoutingResponse) { r.Shards[0].Leader, r.Shards[0].LeaderGrpcAddr = "a", "bc:1" },
		"replica address": func(r *clusterv1.RoutingResponse) { r.Shards[0].Replicas[0].GrpcAddr = "" },
		"replica role":    func(r *clusterv1.RoutingResponse) { r.Shards[0].Replicas[0].Role = "learner" },
		"replica added": func(r *clusterv1.RoutingResponse) {
			r.Shards[1].Replicas = append(r.Shards[1].Replicas, &clusterv1.RouteReplica{})
		},
		"slot range":       func(r *clusterv1.RoutingResponse) { r.Slots[0].End, r.Slots[1].Start = 2047, 2047 },
		"shard of a range": func(r *clusterv1.RoutingResponse) { r.Slots[1].ShardId = 3 },
		"shard id":         func(r *clusterv1.RoutingResponse) { r.Shards[1].Id = 3 },
	}
	for name, change := range changes {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := proto.Clone(base).(*clusterv1.RoutingResponse)
			change(r)
			assert.NotEqual(t, v, routingVersion(r))
		})
	}
}
