package node

import (
	"context"
	"fmt"
	"strings"

	"github.com/cavedb/cave/shard"
)

// The meta shard's own schema: no registered namespace may overlap it, so
// no caller of MetaSwap can corrupt placement.
var reservedMetaPrefixes = []string{"cluster/", prefixReplicas, prefixMoves, prefixNodes}

// checkNamespace returns an error unless ns is a valid MetaNamespaces entry.
func checkNamespace(ns string) error {
	if !strings.HasSuffix(ns, "/") || len(ns) < 2 {
		return fmt.Errorf("node: meta namespace %q must be a non-empty prefix ending in /", ns)
	}
	for _, r := range reservedMetaPrefixes {
		if strings.HasPrefix(ns, r) || strings.HasPrefix(r, ns) {
			return fmt.Errorf("node: meta namespace %q overlaps the node's own %q", ns, r)
		}
	}
	return nil
}

// checkMetaKey returns an error wrapping ErrBadMetaKey unless key lies in
// one of the registered namespaces and has a name after the prefix.
func (n *Node) checkMetaKey(key string) error {
	for _, ns := range n.cfg.MetaNamespaces {
		if rest, ok := strings.CutPrefix(key, ns); ok && rest != "" {
			return nil
		}
	}
	return fmt.Errorf("%w: %q is outside the registered namespaces %q", ErrBadMetaKey, key, n.cfg.MetaNamespaces)
}

// MetaGet reads key from the local meta replica: linearizably, or from
// the local state when stale. It returns nil, nil when the key is absent,
// ErrBadMetaKey for a key outside the registered namespaces, and
// ErrNoReplica before this node hosts a meta replica.
func (n *Node) MetaGet(ctx context.Context, key string, stale bool) (*shard.KeyValue, error) {
	if err := n.checkMetaKey(key); err != nil {
		return nil, err
	}
	return n.metaGet(ctx, key, stale)
}

// MetaSwap stores value under key if the key's mod revision is still prev
// (0: the key must be absent). It returns the new revision and true, or
// false when the key has moved on (nothing was written: read it again and
// retry). A key outside the registered namespaces fails with ErrBadMetaKey
// and nothing is proposed; other errors are those of Propose, and
// ErrUnknownOutcome means the value may or may not have been stored.
func (n *Node) MetaSwap(ctx context.Context, key string, value []byte, prev int64) (int64, bool, error) {
	if err := n.checkMetaKey(key); err != nil {
		return 0, false, err
	}
	res, err := n.metaWrite(ctx, shard.Op{Kind: shard.OpPut, Key: []byte(key), Value: value, PrevRevision: prev, HasPrevRevision: true})
	if err != nil {
		return 0, false, err
	}
	switch res[0].Code {
	case shard.ResultOK:
		return res[0].Revision, true, nil
	case shard.ResultConditionFailed:
		return 0, false, nil
	}
	return 0, false, fmt.Errorf("node: meta write of %s: result %v", key, res[0].Code)
}
