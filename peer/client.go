package peer

import (
	"context"
	"time"

	"github.com/cavedb/cave/node"
	peerv1 "github.com/cavedb/cave/proto/cave/peer/v1"
	"github.com/cavedb/cave/ring"
	"github.com/cavedb/cave/shard"
)

// Client calls other nodes' Data and Control services over the connections
// of a Pool. Every method names the node by its gRPC address (HOST:PORT)
// and returns node's sentinels, mapped back from the wire by fromStatus:
// node.ErrNoReplica and node.ErrNotReady mean nothing was applied, and a
// Propose that fails otherwise has an unknown outcome
// (node.ErrUnknownOutcome). It is safe for concurrent use.
type Client struct{ pool *Pool }

// NewClient returns a Client over pool.
func NewClient(pool *Pool) *Client { return &Client{pool: pool} }

var _ node.Peers = (*Client)(nil)

func (c *Client) data(addr string) (peerv1.DataClient, error) {
	conn, err := c.pool.Conn(addr)
	if err != nil {
		return nil, err
	}
	return peerv1.NewDataClient(conn), nil
}

func (c *Client) control(addr string) (peerv1.ControlClient, error) {
	conn, err := c.pool.Conn(addr)
	if err != nil {
		return nil, err
	}
	return peerv1.NewControlClient(conn), nil
}

// Propose replicates cmd through addr's replica of shard id and returns
// one result per op.
func (c *Client) Propose(ctx context.Context, addr string, id ring.ShardID, cmd []byte) ([]shard.OpResult, error) {
	dc, err := c.data(addr)
	if err != nil {
		return nil, err
	}
	resp, err := dc.Propose(ctx, &peerv1.ProposeRequest{ShardId: uint64(id), Command: cmd})
	if err != nil {
		return nil, fromStatus(err, true)
	}
	out := make([]shard.OpResult, len(resp.Results))
	for i, r := range resp.Results {
		out[i] = shard.OpResult{Code: shard.ResultCode(r.Code), Revision: r.Revision}
	}
	return out, nil
}

// Get reads key from addr's replica of shard id; nil, nil when absent.
func (c *Client) Get(ctx context.Context, addr string, id ring.ShardID, key []byte, stale bool) (*shard.KeyValue, error) {
	dc, err := c.data(addr)
	if err != nil {
		return nil, err
	}
	resp, err := dc.Get(ctx, &peerv1.GetRequest{ShardId: uint64(id), Key: string(key), Stale: stale})
	if err != nil {
		return nil, fromStatus(err, false)
	}
	if !resp.Found {
		return nil, nil
	}
	return &shard.KeyValue{Key: key, Value: resp.Value, CreateRevision: resp.CreateRevision,
		ModRevision: resp.ModRevision, Version: resp.Version, Size: int64(len(resp.Value))}, nil
}

// List reads a page of keys (without values) from addr's replica of shard
// id. Only q's Prefix, StartAfter and Limit travel: the answer is always
// keys only.
func (c *Client) List(ctx context.Context, addr string, id ring.ShardID, q shard.ListQuery, stale bool) (*shard.ListResult, error) {
	dc, err := c.data(addr)
	if err != nil {
		return nil, err
	}
	resp, err := dc.List(ctx, &peerv1.ListRequest{ShardId: uint64(id), Prefix: string(q.Prefix),
		StartAfter: string(q.StartAfter), Limit: int32(q.Limit), Stale: stale})
	if err != nil {
		return nil, fromStatus(err, false)
	}
	res := &shard.ListResult{More: resp.More, Items: make([]shard.KeyValue, len(resp.Items))}
	for i, it := range resp.Items {
		res.Items[i] = shard.KeyValue{Key: []byte(it.Key), ModRevision: it.ModRevision, Size: it.Size}
	}
	return res, nil
}

// Stats returns the size and applied index of addr's replica of shard id.
func (c *Client) Stats(ctx context.Context, addr string, id ring.ShardID) (shard.Stats, error) {
	dc, err := c.data(addr)
	if err != nil {
		return shard.Stats{}, err
	}
	resp, err := dc.Stats(ctx, &peerv1.StatsRequest{ShardId: uint64(id)})
	if err != nil {
		return shard.Stats{}, fromStatus(err, false)
	}
	return shard.Stats{Keys: resp.Keys, Bytes: resp.Bytes, AppliedIndex: resp.AppliedIndex}, nil
}

// History reads shard id's change events after q.After from addr's
// replica, which waits up to wait for a commit when there are none yet.
func (c *Client) History(ctx context.Context, addr string, id ring.ShardID, q shard.HistoryQuery, wait time.Duration) (*shard.HistoryResult, error) {
	dc, err := c.data(addr)
	if err != nil {
		return nil, err
	}
	resp, err := dc.History(ctx, &peerv1.HistoryRequest{ShardId: uint64(id), After: q.After, Prefix: string(q.Prefix),
		Limit: int32(q.Limit), KeysOnly: q.KeysOnly, WaitMs: uint32(wait / time.Millisecond)})
	if err != nil {
		return nil, fromStatus(err, false)
	}
	res := &shard.HistoryResult{Next: resp.Next, Floor: resp.Floor, Events: make([]shard.Event, len(resp.Events))}
	for i, e := range resp.Events {
		res.Events[i] = shard.Event{Revision: e.Revision, Kind: shard.OpKind(e.Kind), Key: []byte(e.Key), Value: e.Value,
			CreateRevision: e.CreateRevision, PrevRevision: e.PrevRevision}
	}
	return res, nil
}

// StartReplica asks addr to start replica rid of shard id.
func (c *Client) StartReplica(ctx context.Context, addr string, id ring.ShardID, rid uint64, learner bool) error {
	cc, err := c.control(addr)
	if err != nil {
		return err
	}
	_, err = cc.StartReplica(ctx, &peerv1.StartReplicaRequest{ShardId: uint64(id), ReplicaId: rid, Learner: learner})
	return err
}

// JoinInfo asks addr for its gossip address and the gossip key.
func (c *Client) JoinInfo(ctx context.Context, addr string) (string, []byte, error) {
	cc, err := c.control(addr)
	if err != nil {
		return "", nil, err
	}
	resp, err := cc.JoinInfo(ctx, &peerv1.JoinInfoRequest{})
	if err != nil {
		return "", nil, err
	}
	return resp.GossipAddr, resp.GossipKey, nil
}
