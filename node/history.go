package node

import (
	"context"
	"fmt"
	"time"

	"github.com/cavedb/cave/ring"
	"github.com/cavedb/cave/shard"
)

// History reads the change events of shard id after q.After from the local
// replica's applied state (no Raft round: every replica applies the same
// log, so its events are the shard's commit order, only possibly behind the
// leader's). When the replica has applied nothing after q.After it waits up
// to wait for the next commit, or until ctx is done, and reads once more;
// a result with no events and Next == q.After means nothing new in that
// time. A negative q.After returns at once with the replica's position.
//
// Errors: ErrNoReplica (no local replica), ErrNotReady (replica
// recovering), ErrCompacted (events after q.After no longer retained here;
// another replica may have them), ErrClosed. A read never applies anything.
func (n *Node) History(ctx context.Context, id ring.ShardID, q shard.HistoryQuery, wait time.Duration) (*shard.HistoryResult, error) {
	changed := n.store.Changed(id)
	res, err := n.history(id, q)
	if err != nil || q.After < 0 || wait <= 0 || res.Next > q.After {
		return res, err
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-changed:
	case <-t.C:
		return res, nil
	case <-ctx.Done():
		return res, nil
	}
	return n.history(id, q)
}

func (n *Node) history(id ring.ShardID, q shard.HistoryQuery) (*shard.HistoryResult, error) {
	v, err := n.read(context.Background(), id, q, true)
	if err != nil {
		return nil, err
	}
	res, ok := v.(*shard.HistoryResult)
	if !ok {
		return nil, fmt.Errorf("node: shard %d answered a history query with %T", id, v)
	}
	return res, nil
}
