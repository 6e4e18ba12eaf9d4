package node

import (
	"context"
	"fmt"
	"strings"

	"github.com/cavedb/cave/shard"
)

// Namespaces of the meta shard that other packages may read and write
// through MetaGet and MetaSwap. The cluster's own schema (cluster/,
// replicas/) is not among them, so no caller can corrupt placement.
const (
	// MetaAuth holds the access policy: users, roles, grants and tokens.
	MetaAuth = "auth/"
	// MetaSecrets holds the wrapped secrets keyring.
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

// MetaSwap stores value under key if the key's mod revision is still prev
// (0: the key must be absent). It returns the new revision and true, or
// false when the key has moved on (nothing was written: read it again and
// retry). A key outside the exported namespaces fails with ErrBadMetaKey
// and nothing is proposed; other errors are those of Propose, and
// ErrUnknownOutcome means the value may or may not have been stored.
func (n *Node) MetaSwap(ctx context.Context, key string, value []byte, prev int64) (int64, bool, error) {
	if err := checkMetaKey(key); err != nil {
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
