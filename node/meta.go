package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cavedb/cave/ring"
	"github.com/cavedb/cave/shard"
)

// Keys of the meta shard. The meta shard is an ordinary shard state
// machine; these keys are its schema.
const (
	keyClusterID   = "cluster/id"               // random hex id, written last at bootstrap
	keySlots       = "cluster/slots"            // ring.Table.Encode()
	keyNextReplica = "cluster/next-replica-id"  // decimal counter, advanced by CAS
	keyPaused      = "cluster/rebalance-paused" // "1" while automatic rebalancing is paused
	prefixReplicas = "replicas/"                // replicas/<shard>/<replica> -> "<node> <role>"
	prefixMoves    = "moves/"                   // moves/<shard> -> JSON move (moves.go)
	prefixNodes    = "nodes/"                   // nodes/<name> -> "draining" | "removed"
)

// Node states an operator sets (nodes/<name>); a node without a record is
// active.
const (
	nodeDraining = "draining"
	nodeRemoved  = "removed"
)

func replicaKey(id ring.ShardID, rid uint64) string {
	return fmt.Sprintf("%s%020d/%020d", prefixReplicas, uint64(id), rid)
}

func parseReplicaKey(k string) (ring.ShardID, uint64, bool) {
	rest, ok := strings.CutPrefix(k, prefixReplicas)
	if !ok {
		return 0, 0, false
	}
	a, b, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, false
	}
	id, err1 := strconv.ParseUint(a, 10, 64)
	rid, err2 := strconv.ParseUint(b, 10, 64)
	return ring.ShardID(id), rid, err1 == nil && err2 == nil
}

func replicaValue(node string, role Role) []byte { return []byte(node + " " + role.String()) }

func parseReplicaValue(v []byte) (string, Role) {
	node, role, _ := strings.Cut(string(v), " ")
	if role == RoleLearner.String() {
		return node, RoleLearner
	}
	return node, RoleVoter
}

// metaState is a snapshot of the cluster's records in the meta shard:
// replicas, moves in flight, node states and the rebalancing switch.
type metaState struct {
	clusterID  string
	byShard    map[ring.ShardID][]ReplicaView
	moves      map[ring.ShardID]*recordedMove
	nodeStates map[string]string // nodeDraining or nodeRemoved
	paused     bool
}

// nodeOf returns the node of replica rid of shard id, or "".
func (p *metaState) nodeOf(id ring.ShardID, rid uint64) string {
	for _, r := range p.byShard[id] {
		if r.ID == rid {
			return r.Node
		}
	}
	return ""
}

// readMetaState reads every replica, move and node record from the local
// meta replica. It fails with ErrNoReplica when this node has no meta
// replica yet and with ErrNotInitialized before bootstrap has committed.
func (n *Node) readMetaState(ctx context.Context, stale bool) (*metaState, error) {
	id, err := n.metaGet(ctx, keyClusterID, stale)
	if err != nil {
		return nil, err
	}
	if id == nil {
		return nil, ErrNotInitialized
	}
	p := &metaState{clusterID: string(id.Value), byShard: map[ring.ShardID][]ReplicaView{},
		moves: map[ring.ShardID]*recordedMove{}, nodeStates: map[string]string{}}
	err = n.scanMeta(ctx, prefixReplicas, stale, func(kv shard.KeyValue) {
		if sid, rid, ok := parseReplicaKey(string(kv.Key)); ok {
			node, role := parseReplicaValue(kv.Value)
			p.byShard[sid] = append(p.byShard[sid], ReplicaView{ID: rid, Node: node, Role: role})
		}
	})
	if err == nil {
		err = n.scanMeta(ctx, prefixMoves, stale, func(kv shard.KeyValue) {
			sid, perr := strconv.ParseUint(strings.TrimPrefix(string(kv.Key), prefixMoves), 10, 64)
			var m move
			if perr != nil || json.Unmarshal(kv.Value, &m) != nil {
				n.lg.Warn("malformed move record ignored", "key", string(kv.Key))
				return
			}
			p.moves[ring.ShardID(sid)] = &recordedMove{move: m, rev: kv.ModRevision}
		})
	}
	if err == nil {
		err = n.scanMeta(ctx, prefixNodes, stale, func(kv shard.KeyValue) {
			p.nodeStates[strings.TrimPrefix(string(kv.Key), prefixNodes)] = string(kv.Value)
		})
	}
	if err != nil {
		return nil, err
	}
	paused, err := n.metaGet(ctx, keyPaused, stale)
	if err != nil {
		return nil, err
	}
	p.paused = paused != nil && string(paused.Value) == "1"
	return p, nil
}

// scanMeta calls f for every meta key with prefix, in order.
func (n *Node) scanMeta(ctx context.Context, prefix string, stale bool, f func(shard.KeyValue)) error {
	var after []byte
	for {
		res, err := n.List(ctx, ring.MetaShard, shard.ListQuery{Prefix: []byte(prefix), StartAfter: after, Limit: 1000}, stale)
		if err != nil {
			return err
		}
		for _, kv := range res.Items {
			f(kv)
			after = kv.Key
		}
		if !res.More {
			return nil
		}
	}
}

// metaGet reads one meta key; it returns nil when the key is absent.
func (n *Node) metaGet(ctx context.Context, key string, stale bool) (*shard.KeyValue, error) {
	return n.Get(ctx, ring.MetaShard, []byte(key), stale)
}

// metaWrite proposes ops to the meta shard and returns their results.
func (n *Node) metaWrite(ctx context.Context, ops ...shard.Op) ([]shard.OpResult, error) {
	return n.Propose(ctx, ring.MetaShard, shard.EncodeCommand(nil, ops))
}

// initClusterLoop writes the bootstrap metadata, retrying until it is
// committed or the node closes.
func (n *Node) initClusterLoop() {
	for n.ctx.Err() == nil {
		err := n.initCluster(n.ctx)
		if err == nil {
			return
		}
		if !errors.Is(err, ErrNotReady) && !errors.Is(err, ErrUnknownOutcome) {
			n.lg.Warn("bootstrap metadata not written yet", "err", err)
		}
		select {
		case <-n.ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// initCluster writes the slot table, the first replica records and the
// cluster id in one entry, each create-only, unless the cluster id exists.
func (n *Node) initCluster(ctx context.Context) error {
	kv, err := n.metaGet(ctx, keyClusterID, false)
	if err != nil || kv != nil {
		return err
	}
	tbl, err := ring.NewTable(n.cfg.Shards)
	if err != nil {
		return err
	}
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return err
	}
	clusterID := hex.EncodeToString(raw[:])
	create := func(k string, v []byte) shard.Op {
		return shard.Op{Kind: shard.OpPut, Key: []byte(k), Value: v, HasPrevRevision: true}
	}
	var ops []shard.Op
	for id := 0; id <= n.cfg.Shards; id++ {
		ops = append(ops, create(replicaKey(ring.ShardID(id), bootstrapReplicaID), replicaValue(n.cfg.Name, RoleVoter)))
	}
	ops = append(ops,
		create(keySlots, tbl.Encode()),
		create(keyNextReplica, []byte(strconv.Itoa(bootstrapReplicaID+1))),
		create(keyClusterID, []byte(clusterID)))
	if _, err := n.metaWrite(ctx, ops...); err != nil {
		return err
	}
	n.lg.Info("cluster bootstrapped", "cluster_id", clusterID, "shards", n.cfg.Shards)
	return nil
}

// allocReplicaID takes the next replica id from the meta counter with a
// compare-and-swap, so two reconcilers never hand out the same id.
func (n *Node) allocReplicaID(ctx context.Context) (uint64, error) {
	for attempt := 0; attempt < 10; attempt++ {
		kv, err := n.metaGet(ctx, keyNextReplica, false)
		if err != nil {
			return 0, err
		}
		if kv == nil {
			return 0, ErrNotInitialized
		}
		next, err := strconv.ParseUint(string(kv.Value), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("node: corrupt %s: %w", keyNextReplica, err)
		}
		res, err := n.metaWrite(ctx, shard.Op{Kind: shard.OpPut, Key: []byte(keyNextReplica),
			Value: []byte(strconv.FormatUint(next+1, 10)), PrevRevision: kv.ModRevision, HasPrevRevision: true})
		if err != nil {
			return 0, err
		}
		if res[0].Code == shard.ResultOK {
			return next, nil
		}
	}
	return 0, fmt.Errorf("node: replica id counter contended: %w", ErrNotReady)
}

// ClusterID returns the cluster's id as recorded at bootstrap.
func (n *Node) ClusterID(ctx context.Context) (string, error) {
	if p := n.state.Load(); p != nil {
		return p.clusterID, nil
	}
	kv, err := n.metaGet(ctx, keyClusterID, true)
	if err != nil {
		return "", err
	}
	if kv == nil {
		return "", ErrNotInitialized
	}
	return string(kv.Value), nil
}

// Table returns the slot table. It is read from the meta shard once and
// cached: the table is written once, at bootstrap, in the entry that
// creates the cluster. So a local stale read that finds it has found the
// committed table, and a restarted node routes from its own disk before
// its meta replica has heard from a leader; only a node whose replica has
// not applied that entry yet reads linearizably.
func (n *Node) Table(ctx context.Context) (*ring.Table, error) {
	if t := n.table.Load(); t != nil {
		return t, nil
	}
	kv, err := n.metaGet(ctx, keySlots, true)
	if err == nil && kv == nil {
		kv, err = n.metaGet(ctx, keySlots, false)
	}
	if err != nil {
		return nil, err
	}
	if kv == nil {
		return nil, ErrNotInitialized
	}
	t, err := ring.Decode(kv.Value)
	if err != nil {
		return nil, err
	}
	n.table.Store(t)
	return t, nil
}

// Ready returns nil when the node can serve requests: it runs a meta
// replica that answers linearizable reads and the cluster is initialized.
func (n *Node) Ready(ctx context.Context) error {
	if n.closed.Load() {
		return ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	kv, err := n.metaGet(ctx, keyClusterID, false)
	if err != nil {
		return err
	}
	if kv == nil {
		return ErrNotInitialized
	}
	_, err = n.Table(ctx)
	return err
}
