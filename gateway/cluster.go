package gateway

import (
	"context"
	"encoding/binary"
	"hash/fnv"
	"log/slog"

	"github.com/cavedb/cave/node"
	clusterv1 "github.com/cavedb/cave/proto/cave/cluster/v1"
	"github.com/cavedb/cave/ring"
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
	Table(ctx context.Context) (*ring.Table, error)
	Routes() ([]node.ShardRoute, error)
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

// Routing implements clusterv1.ClusterServer from the node's cached slot
// table and routes.
func (s *clusterService) Routing(ctx context.Context, _ *clusterv1.RoutingRequest) (*clusterv1.RoutingResponse, error) {
	tbl, err := s.view.Table(ctx)
	if err != nil {
		return nil, toStatus(s.lg, err)
	}
	routes, err := s.view.Routes()
	if err != nil {
		return nil, toStatus(s.lg, err)
	}
	out := &clusterv1.RoutingResponse{}
	for _, r := range tbl.Ranges() {
		out.Slots = append(out.Slots, &clusterv1.SlotRange{Start: uint32(r.Start), End: uint32(r.End), ShardId: uint64(r.Shard)})
	}
	for _, rt := range routes {
		ps := &clusterv1.ShardRoute{Id: uint64(rt.ID), Leader: rt.Leader.Name, LeaderGrpcAddr: rt.Leader.GRPCAddr}
		for _, r := range rt.Replicas {
			ps.Replicas = append(ps.Replicas, &clusterv1.RouteReplica{Node: r.Name, GrpcAddr: r.GRPCAddr, Role: r.Role.String()})
		}
		out.Shards = append(out.Shards, ps)
	}
	out.Version = routingVersion(out)
	return out, nil
}

// routingVersion returns a 64-bit FNV-1a hash of every field of r but its
// version, each string length-prefixed, so equal answers get equal
// versions on every node.
func routingVersion(r *clusterv1.RoutingResponse) uint64 {
	h := fnv.New64a()
	var b [8]byte
	num := func(v uint64) {
		binary.BigEndian.PutUint64(b[:], v)
		_, _ = h.Write(b[:])
	}
	str := func(v string) {
		num(uint64(len(v)))
		_, _ = h.Write([]byte(v))
	}
	num(uint64(len(r.Slots)))
	for _, sr := range r.Slots {
		num(uint64(sr.Start))
		num(uint64(sr.End))
		num(sr.ShardId)
	}
	num(uint64(len(r.Shards)))
	for _, sh := range r.Shards {
		num(sh.Id)
		str(sh.Leader)
		str(sh.LeaderGrpcAddr)
		num(uint64(len(sh.Replicas)))
		for _, rp := range sh.Replicas {
			str(rp.Node)
			str(rp.GrpcAddr)
			str(rp.Role)
		}
	}
	return h.Sum64()
}
