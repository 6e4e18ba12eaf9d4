package node

import (
	"context"
	"fmt"
	"strings"

	"github.com/cavedb/cave/ring"
	"github.com/cavedb/cave/shard"
)

// Namespaces of the meta shard that other packages may read and write
// through MetaGet, MetaList and MetaWrite. The cluster's own schema
// (cluster/, replicas/) is not among them, so no caller can corrupt
// placement.
const (
	// MetaAuth holds users, roles, grants and tokens (package auth, acl).
	MetaAuth = "auth/"
	// MetaSecrets holds the wrapped secrets keyring (package secrets).
	MetaSecrets = "secrets/"
)

// checkMetaKey returns an error wrapping ErrBadMetaKey unless key lies in
// one of the exported namespaces and has a name after the prefix.
func checkMetaKey(key string) error {
	for _, ns := range []string{MetaAuth, MetaSecrets} {
		if rest, ok := strings.CutPrefix(key, ns); ok && rest != "" {
			return nil
		}
	}
	return fmt.Errorf("%w: %q is outside %s and %s", ErrBadMetaKey, key, MetaAuth, MetaSecrets)
}

// MetaGet reads key from the local meta replica: linearizably, or from
// the local state when stale. It returns nil, nil when the key is absent,
// ErrBadMetaKey for a key outside the exported namespaces, and
// ErrNoReplica before this node hosts a meta replica.
func (n *Node) MetaGet(ctx context.Context, key string, stale bool) (*shard.KeyValue, error) {
	if err := checkMetaKey(key); err != nil {
		return nil, err
	}
	return n.metaGet(ctx, key, stale)
}

// MetaList returns every key under prefix (a namespace or a path inside
// one) with its value, in key order, reading page by page from the local
// meta replica. Errors are those of MetaGet.
func (n *Node) MetaList(ctx context.Context, prefix string, stale bool) ([]shard.KeyValue, error) {
	if err := checkMetaKey(prefix + "x"); err != nil {
		return nil, err
	}
	var out []shard.KeyValue
	var after []byte
	for {
		v, err := n.Read(ctx, ring.MetaShard, shard.ListQuery{Prefix: []byte(prefix), StartAfter: after, Limit: 1000}, stale)
		if err != nil {
			return nil, err
		}
		res := v.(*shard.ListResult)
		out = append(out, res.Items...)
		if !res.More || len(res.Items) == 0 {
			return out, nil
		}
		after = res.Items[len(res.Items)-1].Key
	}
}

// MetaWrite applies ops to the meta shard atomically, in one Raft entry,
// and returns one result per op (a failed condition is a result, not an
// error). Every op's key must lie in an exported namespace, else nothing
// is proposed and the error wraps ErrBadMetaKey. Other errors are those of
// Propose: ErrUnknownOutcome means the ops may or may not have applied.
func (n *Node) MetaWrite(ctx context.Context, ops ...shard.Op) ([]shard.OpResult, error) {
	for _, op := range ops {
		if err := checkMetaKey(string(op.Key)); err != nil {
			return nil, err
		}
	}
	return n.metaWrite(ctx, ops...)
}
