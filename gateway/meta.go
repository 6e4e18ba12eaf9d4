package gateway

import (
	"context"
	"errors"

	"github.com/cavedb/cave/auth"
	"github.com/cavedb/cave/node"
	"github.com/cavedb/cave/secrets"
)

// NodeMeta is auth.Store and secrets.Store over the meta shard of Node,
// through its MetaGet and MetaSwap: the keys of auth.MetaNamespace and
// secrets.MetaNamespace.
type NodeMeta struct {
	Node *node.Node
}

var (
	_ auth.Store    = NodeMeta{}
	_ secrets.Store = NodeMeta{}
)

// Get implements auth.Store and secrets.Store with node.MetaGet.
func (m NodeMeta) Get(ctx context.Context, key string, stale bool) ([]byte, int64, bool, error) {
	kv, err := m.Node.MetaGet(ctx, key, stale)
	if err != nil || kv == nil {
		return nil, 0, false, err
	}
	return kv.Value, kv.ModRevision, true, nil
}

// Swap implements auth.Store and secrets.Store with node.MetaSwap.
func (m NodeMeta) Swap(ctx context.Context, key string, value []byte, prev int64) (int64, bool, error) {
	return m.Node.MetaSwap(ctx, key, value, prev)
}

// expectedMetaError reports whether err is what the meta shard returns
// while this node starts or joins its cluster: no cluster or meta replica
// here yet, or, before a policy has loaded, no leader yet. The access
// policy's reload loop does not warn about those.
func expectedMetaError(err error, loaded bool) bool {
	return errors.Is(err, node.ErrNotInitialized) || errors.Is(err, node.ErrNoReplica) || !loaded && errors.Is(err, node.ErrNotReady)
}
