package node

import (
	"context"

	"github.com/cavedb/cave/ring"
	"github.com/cavedb/cave/shard"
)

// Peers is how a node calls other nodes: the Control service (starting
// replicas, joining) and the Data service's Stats. Each call names the
// other node by its gRPC address. *peer.Client implements it; node never
// dials itself.
type Peers interface {
	// StartReplica asks the node at addr to start replica rid of shard id
	// (idempotent).
	StartReplica(ctx context.Context, addr string, id ring.ShardID, rid uint64, learner bool) error
	// JoinInfo asks the node at addr for its gossip address and the gossip
	// key (nil when gossip is not encrypted).
	JoinInfo(ctx context.Context, addr string) (gossipAddr string, key []byte, err error)
	// Stats returns the size and applied index of addr's replica of shard
	// id; ErrNoReplica when it hosts none.
	Stats(ctx context.Context, addr string, id ring.ShardID) (shard.Stats, error)
}
