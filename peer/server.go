package peer

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cavedb/cave/node"
	peerv1 "github.com/cavedb/cave/proto/cave/peer/v1"
	"github.com/cavedb/cave/ring"
	"github.com/cavedb/cave/shard"
)

// Replicas runs operations on the local node's replicas; *node.Node
// implements it, and its methods' contracts are node's.
type Replicas interface {
	Propose(ctx context.Context, id ring.ShardID, cmd []byte) ([]shard.OpResult, error)
	Get(ctx context.Context, id ring.ShardID, key []byte, stale bool) (*shard.KeyValue, error)
	List(ctx context.Context, id ring.ShardID, q shard.ListQuery, stale bool) (*shard.ListResult, error)
	Stats(id ring.ShardID) (shard.Stats, error)
	History(ctx context.Context, id ring.ShardID, q shard.HistoryQuery, wait time.Duration) (*shard.HistoryResult, error)
}

// Local is what the Control service asks of the local node; *node.Node
// implements it.
type Local interface {
	// StartReplica starts replica rid of shard id here (idempotent); it
	// fails with node.ErrReplicaConflict when a newer replica runs.
	StartReplica(ctx context.Context, id ring.ShardID, rid uint64, learner bool) error
	// JoinInfo returns the advertised gossip address and the gossip key
	// (nil when gossip is not encrypted); node.ErrNotReady while the key
	// is not known yet.
	JoinInfo() (gossipAddr string, key []byte, err error)
}

var (
	_ Replicas = (*node.Node)(nil)
	_ Local    = (*node.Node)(nil)
)

// DataServer is the server side of the Data service. It runs every call on
// the local replica only and never forwards again, so a request crosses at
// most one hop. Who may call it is decided by the gRPC server it is
// registered on (see NodeOnlyUnary).
type DataServer struct {
	peerv1.UnimplementedDataServer
	rs Replicas
}

// NewDataServer returns the Data service over rs.
func NewDataServer(rs Replicas) *DataServer { return &DataServer{rs: rs} }

// Propose implements peerv1.DataServer.
func (s *DataServer) Propose(ctx context.Context, req *peerv1.ProposeRequest) (*peerv1.ProposeResponse, error) {
	res, err := s.rs.Propose(ctx, ring.ShardID(req.ShardId), req.Command)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &peerv1.ProposeResponse{Results: make([]*peerv1.OpResult, len(res))}
	for i, r := range res {
		out.Results[i] = &peerv1.OpResult{Code: uint32(r.Code), Revision: r.Revision}
	}
	return out, nil
}

// Get implements peerv1.DataServer.
func (s *DataServer) Get(ctx context.Context, req *peerv1.GetRequest) (*peerv1.GetResponse, error) {
	kv, err := s.rs.Get(ctx, ring.ShardID(req.ShardId), []byte(req.Key), req.Stale)
	if err != nil {
		return nil, toStatus(err)
	}
	if kv == nil {
		return &peerv1.GetResponse{}, nil
	}
	return &peerv1.GetResponse{Found: true, Value: kv.Value, CreateRevision: kv.CreateRevision,
		ModRevision: kv.ModRevision, Version: kv.Version}, nil
}

// List implements peerv1.DataServer.
func (s *DataServer) List(ctx context.Context, req *peerv1.ListRequest) (*peerv1.ListResponse, error) {
	q := shard.ListQuery{Prefix: []byte(req.Prefix), Limit: int(req.Limit), KeysOnly: true}
	if req.StartAfter != "" {
		q.StartAfter = []byte(req.StartAfter)
	}
	res, err := s.rs.List(ctx, ring.ShardID(req.ShardId), q, req.Stale)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &peerv1.ListResponse{More: res.More, Items: make([]*peerv1.ListItem, len(res.Items))}
	for i, kv := range res.Items {
		out.Items[i] = &peerv1.ListItem{Key: string(kv.Key), ModRevision: kv.ModRevision, Size: kv.Size}
	}
	return out, nil
}

// Stats implements peerv1.DataServer.
func (s *DataServer) Stats(_ context.Context, req *peerv1.StatsRequest) (*peerv1.StatsResponse, error) {
	st, err := s.rs.Stats(ring.ShardID(req.ShardId))
	if err != nil {
		return nil, toStatus(err)
	}
	return &peerv1.StatsResponse{Keys: st.Keys, Bytes: st.Bytes, AppliedIndex: st.AppliedIndex}, nil
}

// maxHistoryWait caps a History request's wait_ms.
const maxHistoryWait = 30 * time.Second

// History implements peerv1.DataServer.
func (s *DataServer) History(ctx context.Context, req *peerv1.HistoryRequest) (*peerv1.HistoryResponse, error) {
	q := shard.HistoryQuery{After: req.After, Prefix: []byte(req.Prefix), Limit: int(req.Limit), KeysOnly: req.KeysOnly}
	wait := min(time.Duration(req.WaitMs)*time.Millisecond, maxHistoryWait)
	res, err := s.rs.History(ctx, ring.ShardID(req.ShardId), q, wait)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &peerv1.HistoryResponse{Next: res.Next, Floor: res.Floor, Events: make([]*peerv1.Event, len(res.Events))}
	for i, e := range res.Events {
		out.Events[i] = &peerv1.Event{Revision: e.Revision, Kind: uint32(e.Kind), Key: string(e.Key), Value: e.Value,
			CreateRevision: e.CreateRevision, PrevRevision: e.PrevRevision}
	}
	return out, nil
}

// ControlServer is the server side of the Control service.
type ControlServer struct {
	peerv1.UnimplementedControlServer
	local Local
}

// NewControlServer returns the Control service over local.
func NewControlServer(local Local) *ControlServer { return &ControlServer{local: local} }

// StartReplica implements peerv1.ControlServer.
func (s *ControlServer) StartReplica(ctx context.Context, req *peerv1.StartReplicaRequest) (*peerv1.StartReplicaResponse, error) {
	if err := s.local.StartReplica(ctx, ring.ShardID(req.ShardId), req.ReplicaId, req.Learner); err != nil {
		if errors.Is(err, node.ErrReplicaConflict) {
			return nil, status.Error(codes.FailedPrecondition, err.Error())
		}
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	return &peerv1.StartReplicaResponse{}, nil
}

// JoinInfo implements peerv1.ControlServer.
func (s *ControlServer) JoinInfo(context.Context, *peerv1.JoinInfoRequest) (*peerv1.JoinInfoResponse, error) {
	addr, key, err := s.local.JoinInfo()
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	return &peerv1.JoinInfoResponse{GossipAddr: addr, GossipKey: key}, nil
}
