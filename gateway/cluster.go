package gateway

import (
	"context"
	"log/slog"

	"github.com/cavedb/cave/node"
	clusterv1 "github.com/cavedb/cave/proto/cave/cluster/v1"
)

// ClusterView is what the gateway shows of the cluster and of the local
// node; *node.Node implements it.
type ClusterView interface {
	Members() []node.Member
	Shards(ctx context.Context) ([]node.ShardStatus, error)
	Ready(ctx context.Context) error
	Name() string
	ClusterID(ctx context.Context) (string, error)
	LocalShards() (led, followed int)
}

var _ ClusterView = (*node.Node)(nil)

// clusterService implements cave.cluster.v1.Cluster.
type clusterService struct {
	clusterv1.UnimplementedClusterServer
	view ClusterView
	lg   *slog.Logger
}

// Members implements clusterv1.ClusterServer.
func (s *clusterService) Members(context.Context, *clusterv1.MembersRequest) (*clusterv1.MembersResponse, error) {
	out := &clusterv1.MembersResponse{}
	for _, m := range s.view.Members() {
		out.Members = append(out.Members, &clusterv1.Member{Name: m.Name, HttpAddr: m.HTTPAddr, GrpcAddr: m.GRPCAddr,
			RaftAddr: m.RaftAddr, GossipAddr: m.GossipAddr, State: string(m.State)})
	}
	return out, nil
}

// Shards implements clusterv1.ClusterServer.
func (s *clusterService) Shards(ctx context.Context, _ *clusterv1.ShardsRequest) (*clusterv1.ShardsResponse, error) {
	shards, err := s.view.Shards(ctx)
	if err != nil {
		return nil, toStatus(s.lg, err)
	}
	out := &clusterv1.ShardsResponse{}
	for _, sh := range shards {
		ps := &clusterv1.Shard{Id: uint64(sh.ID), Leader: sh.Leader, Keys: sh.Keys, Bytes: sh.Bytes}
		for _, r := range sh.Replicas {
			ps.Replicas = append(ps.Replicas, &clusterv1.Replica{Node: r.Node, ReplicaId: r.ID, Role: r.Role.String()})
		}
		out.Shards = append(out.Shards, ps)
	}
	return out, nil
}
