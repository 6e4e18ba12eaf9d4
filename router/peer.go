package router

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cavedb/cave/internal/peer"
	"github.com/cavedb/cave/node"
	peerv1 "github.com/cavedb/cave/proto/cave/peer/v1"
	"github.com/cavedb/cave/ring"
	"github.com/cavedb/cave/shard"
)

// forwarder is the client side of the peer protocol: it runs shard-level
// operations on other nodes.
type forwarder struct{ peers *peer.Pool }

// each calls f with a client for each host in order until f succeeds or
// fails with something other than "no replica there".
func (f *forwarder) each(hosts []node.Host, call func(peerv1.PeerClient) error) error {
	if len(hosts) == 0 {
		return errNoHost
	}
	var err error
	for _, h := range hosts {
		conn, cerr := f.peers.Conn(h.GRPCAddr)
		if cerr != nil {
			return cerr
		}
		if err = call(peerv1.NewPeerClient(conn)); !errors.Is(err, node.ErrNoReplica) {
			return err
		}
	}
	return err
}

func (f *forwarder) propose(ctx context.Context, hosts []node.Host, id ring.ShardID, cmd []byte) ([]shard.OpResult, error) {
	var out []shard.OpResult
	err := f.each(hosts, func(c peerv1.PeerClient) error {
		resp, err := c.Propose(ctx, &peerv1.ProposeRequest{ShardId: uint64(id), Command: cmd})
		if err != nil {
			return fromStatus(err, true)
		}
		out = make([]shard.OpResult, len(resp.Results))
		for i, r := range resp.Results {
			out[i] = shard.OpResult{Code: shard.ResultCode(r.Code), Revision: r.Revision}
		}
		return nil
	})
	return out, err
}

func (f *forwarder) get(ctx context.Context, hosts []node.Host, id ring.ShardID, key string, stale bool) (*shard.KeyValue, error) {
	var kv *shard.KeyValue
	err := f.each(hosts, func(c peerv1.PeerClient) error {
		resp, err := c.Get(ctx, &peerv1.GetRequest{ShardId: uint64(id), Key: key, Stale: stale})
		if err != nil {
			return fromStatus(err, false)
		}
		if resp.Found {
			kv = &shard.KeyValue{Key: []byte(key), Value: resp.Value, CreateRevision: resp.CreateRevision,
				ModRevision: resp.ModRevision, Version: resp.Version, Size: int64(len(resp.Value))}
		}
		return nil
	})
	return kv, err
}

func (f *forwarder) list(ctx context.Context, hosts []node.Host, id ring.ShardID, prefix, after string, limit int, stale bool) ([]ListItem, bool, error) {
	var items []ListItem
	more := false
	err := f.each(hosts, func(c peerv1.PeerClient) error {
		resp, err := c.List(ctx, &peerv1.ListRequest{ShardId: uint64(id), Prefix: prefix, StartAfter: after, Limit: int32(limit), Stale: stale})
		if err != nil {
			return fromStatus(err, false)
		}
		items = make([]ListItem, len(resp.Items))
		for i, it := range resp.Items {
			items[i] = ListItem{Key: it.Key, ModRevision: it.ModRevision, Size: it.Size}
		}
		more = resp.More
		return nil
	})
	return items, more, err
}

// fromStatus turns a peer's gRPC error back into a node sentinel. Any error
// of a write other than the two "not applied" codes leaves the outcome
// unknown: the request may have reached the peer before the failure.
func fromStatus(err error, write bool) error {
	switch status.Code(err) {
	case codes.FailedPrecondition:
		return fmt.Errorf("%w: %w", node.ErrNoReplica, err)
	case codes.Aborted:
		return fmt.Errorf("%w: %w", node.ErrNotReady, err)
	case codes.ResourceExhausted:
		return fmt.Errorf("%w: %w", node.ErrTooLarge, err)
	}
	if write {
		return fmt.Errorf("%w: forwarded write: %w", node.ErrUnknownOutcome, err)
	}
	return fmt.Errorf("%w: forwarded read: %w", node.ErrNotReady, err)
}

// toPeerStatus is the server side of fromStatus.
func toPeerStatus(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, node.ErrNoReplica):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, node.ErrNotReady), errors.Is(err, node.ErrNotInitialized), errors.Is(err, node.ErrClosed):
		return status.Error(codes.Aborted, err.Error())
	case errors.Is(err, node.ErrTooLarge):
		return status.Error(codes.ResourceExhausted, err.Error())
	case errors.Is(err, node.ErrUnknownOutcome):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

// ReplicaStarter starts replicas on request of a shard's leader; *node.Node
// implements it.
type ReplicaStarter interface {
	StartReplica(ctx context.Context, id ring.ShardID, rid uint64, learner bool) error
}

// JoinInfoSource tells joining nodes how to enter the gossip pool;
// *node.Node implements it.
type JoinInfoSource interface {
	// JoinInfo returns the advertised gossip address and the gossip key
	// (nil when gossip is not encrypted). It fails with node.ErrNotReady
	// while the key is not known yet.
	JoinInfo() (gossipAddr string, key []byte, err error)
}

// LocalNode is what the peer service asks of the local node beyond its
// replicas; *node.Node implements it.
type LocalNode interface {
	ReplicaStarter
	JoinInfoSource
}

// PeerServer is the server side of the peer protocol. It runs every call on
// the local replica only and never forwards again, so a request crosses at
// most one hop. Who may call it is decided by the gRPC server it is
// registered on (see NodeOnlyUnary).
type PeerServer struct {
	peerv1.UnimplementedPeerServer
	be Backend
	nd LocalNode
}

// NewPeerServer returns the peer service backed by be and nd.
func NewPeerServer(be Backend, nd LocalNode) *PeerServer {
	return &PeerServer{be: be, nd: nd}
}

// Propose implements peerv1.PeerServer.
func (s *PeerServer) Propose(ctx context.Context, req *peerv1.ProposeRequest) (*peerv1.ProposeResponse, error) {
	res, err := s.be.Propose(ctx, ring.ShardID(req.ShardId), req.Command)
	if err != nil {
		return nil, toPeerStatus(err)
	}
	out := &peerv1.ProposeResponse{Results: make([]*peerv1.OpResult, len(res))}
	for i, r := range res {
		out.Results[i] = &peerv1.OpResult{Code: uint32(r.Code), Revision: r.Revision}
	}
	return out, nil
}

// Get implements peerv1.PeerServer.
func (s *PeerServer) Get(ctx context.Context, req *peerv1.GetRequest) (*peerv1.GetResponse, error) {
	v, err := s.be.Read(ctx, ring.ShardID(req.ShardId), shard.GetQuery{Key: []byte(req.Key)}, req.Stale)
	if err != nil {
		return nil, toPeerStatus(err)
	}
	kv, _ := v.(*shard.KeyValue)
	if kv == nil {
		return &peerv1.GetResponse{}, nil
	}
	return &peerv1.GetResponse{Found: true, Value: kv.Value, CreateRevision: kv.CreateRevision,
		ModRevision: kv.ModRevision, Version: kv.Version}, nil
}

// List implements peerv1.PeerServer.
func (s *PeerServer) List(ctx context.Context, req *peerv1.ListRequest) (*peerv1.ListResponse, error) {
	q := shard.ListQuery{Prefix: []byte(req.Prefix), Limit: int(req.Limit), KeysOnly: true}
	if req.StartAfter != "" {
		q.StartAfter = []byte(req.StartAfter)
	}
	v, err := s.be.Read(ctx, ring.ShardID(req.ShardId), q, req.Stale)
	if err != nil {
		return nil, toPeerStatus(err)
	}
	res := v.(*shard.ListResult)
	out := &peerv1.ListResponse{More: res.More, Items: make([]*peerv1.ListItem, len(res.Items))}
	for i, kv := range res.Items {
		out.Items[i] = &peerv1.ListItem{Key: string(kv.Key), ModRevision: kv.ModRevision, Size: kv.Size}
	}
	return out, nil
}

// StartReplica implements peerv1.PeerServer.
func (s *PeerServer) StartReplica(ctx context.Context, req *peerv1.StartReplicaRequest) (*peerv1.StartReplicaResponse, error) {
	if err := s.nd.StartReplica(ctx, ring.ShardID(req.ShardId), req.ReplicaId, req.Learner); err != nil {
		if errors.Is(err, node.ErrReplicaConflict) {
			return nil, status.Error(codes.FailedPrecondition, err.Error())
		}
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	return &peerv1.StartReplicaResponse{}, nil
}

// Stats implements peerv1.PeerServer.
func (s *PeerServer) Stats(ctx context.Context, req *peerv1.StatsRequest) (*peerv1.StatsResponse, error) {
	v, err := s.be.Read(ctx, ring.ShardID(req.ShardId), shard.StatsQuery{}, true)
	if err != nil {
		return nil, toPeerStatus(err)
	}
	st := v.(shard.Stats)
	return &peerv1.StatsResponse{Keys: st.Keys, Bytes: st.Bytes}, nil
}

// JoinInfo implements peerv1.PeerServer.
func (s *PeerServer) JoinInfo(context.Context, *peerv1.JoinInfoRequest) (*peerv1.JoinInfoResponse, error) {
	addr, key, err := s.nd.JoinInfo()
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	return &peerv1.JoinInfoResponse{GossipAddr: addr, GossipKey: key}, nil
}
