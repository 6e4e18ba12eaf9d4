package router

import (
	"context"
	"errors"
	"time"

	"github.com/cavedb/cave/node"
	"github.com/cavedb/cave/ring"
	"github.com/cavedb/cave/shard"
)

// Forwarder runs shard-level operations on other nodes' replicas (the Data
// service); *peer.Client implements it. Its errors are node's sentinels:
// node.ErrNoReplica and node.ErrNotReady mean nothing was applied.
type Forwarder interface {
	Propose(ctx context.Context, addr string, id ring.ShardID, cmd []byte) ([]shard.OpResult, error)
	Get(ctx context.Context, addr string, id ring.ShardID, key []byte, stale bool) (*shard.KeyValue, error)
	List(ctx context.Context, addr string, id ring.ShardID, q shard.ListQuery, stale bool) (*shard.ListResult, error)
	History(ctx context.Context, addr string, id ring.ShardID, q shard.HistoryQuery, wait time.Duration) (*shard.HistoryResult, error)
}

// eachHost calls f for each host in order until f succeeds or fails with
// something other than "no replica there", and returns f's last error.
func eachHost(hosts []node.Host, f func(addr string) error) error {
	if len(hosts) == 0 {
		return errNoHost
	}
	var err error
	for _, h := range hosts {
		if err = f(h.GRPCAddr); !errors.Is(err, node.ErrNoReplica) {
			return err
		}
	}
	return err
}
