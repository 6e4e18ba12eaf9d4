// Package router executes key-value operations on the cluster: it maps a
// key to its shard through the slot table and runs the operation on a local
// replica of that shard, or forwards it to a node that hosts one.
package router

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cavedb/cave/node"
	"github.com/cavedb/cave/ring"
	"github.com/cavedb/cave/shard"
)

// Backend is what the router needs from the local node. *node.Node
// implements it; its methods' contracts are node's.
type Backend interface {
	Table(ctx context.Context) (*ring.Table, error)
	HasReplica(id ring.ShardID) bool
	Propose(ctx context.Context, id ring.ShardID, cmd []byte) ([]shard.OpResult, error)
	Get(ctx context.Context, id ring.ShardID, key []byte, stale bool) (*shard.KeyValue, error)
	List(ctx context.Context, id ring.ShardID, q shard.ListQuery, stale bool) (*shard.ListResult, error)
	History(ctx context.Context, id ring.ShardID, q shard.HistoryQuery, wait time.Duration) (*shard.HistoryResult, error)
	ShardHosts(id ring.ShardID) []node.Host
	LeaderHost(id ring.ShardID) (node.Host, bool)
}

var _ Backend = (*node.Node)(nil)

// Config configures a Router.
type Config struct {
	// Backend runs operations on local replicas. Required.
	Backend Backend
	// Forwarder runs operations on other nodes. Required.
	Forwarder Forwarder
	// Logger receives warnings about retries and forwards. Required.
	Logger *slog.Logger
	// Metrics registers the router's metrics (cave_router_*). Required;
	// give each node its own registry, never the global one.
	Metrics prometheus.Registerer
	// Attempts is how many times an operation is tried when it fails
	// without being applied (no leader yet, replica moving). Default 20.
	Attempts int
	// Backoff is the first retry delay; it doubles up to 200ms. Default 10ms.
	Backoff time.Duration
	// MaxListLimit caps List's page size. Default 1000.
	MaxListLimit int
}

// DefaultConfig returns a Config with the optional fields set.
func DefaultConfig() Config {
	return Config{Attempts: 20, Backoff: 10 * time.Millisecond, MaxListLimit: 1000}
}

// Validate reports every problem with c.
func (c Config) Validate() error {
	var errs []error
	if c.Backend == nil {
		errs = append(errs, errors.New("router: Backend must be set"))
	}
	if c.Forwarder == nil {
		errs = append(errs, errors.New("router: Forwarder must be set"))
	}
	if c.Logger == nil {
		errs = append(errs, errors.New("router: Logger must be set"))
	}
	if c.Metrics == nil {
		errs = append(errs, errors.New("router: Metrics must be set"))
	}
	return errors.Join(append(errs, c.ValidateSettings())...)
}

// ValidateSettings reports every problem with the settings of c, the
// fields other than the collaborators (Backend, Forwarder, Logger,
// Metrics), so that a caller can check them before it builds those.
// Validate includes it.
func (c Config) ValidateSettings() error {
	var errs []error
	if c.Attempts < 1 {
		errs = append(errs, fmt.Errorf("router: Attempts must be >= 1, got %d", c.Attempts))
	}
	if c.Backoff <= 0 {
		errs = append(errs, fmt.Errorf("router: Backoff must be > 0, got %s", c.Backoff))
	}
	if c.MaxListLimit < 1 {
		errs = append(errs, fmt.Errorf("router: MaxListLimit must be >= 1, got %d", c.MaxListLimit))
	}
	return errors.Join(errs...)
}

// Router routes key-value operations. It is safe for concurrent use and
// holds no per-request goroutines.
type Router struct {
	cfg Config
	be  Backend
	fw  Forwarder
	met *metrics
}

// New returns a Router, or the error from cfg.Validate or from registering
// its metrics.
func New(cfg Config) (*Router, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	met, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	return &Router{cfg: cfg, be: cfg.Backend, fw: cfg.Forwarder, met: met}, nil
}

// Route returns the shard that owns key.
func (r *Router) Route(ctx context.Context, key string) (ring.ShardID, error) {
	t, err := r.be.Table(ctx)
	if err != nil {
		return 0, final(err)
	}
	_, id := t.Route(key)
	return id, nil
}

// Get returns key's value and metadata, linearizably unless stale is set.
// Errors: ErrKeyNotFound, ErrUnavailable.
func (r *Router) Get(ctx context.Context, key string, stale bool) (*shard.KeyValue, error) {
	id, err := r.Route(ctx, key)
	if err != nil {
		return nil, err
	}
	var kv *shard.KeyValue
	err = r.retry(ctx, opGet, func() error {
		var err error
		kv, err = r.getOnce(ctx, id, key, stale)
		return err
	})
	if err != nil {
		return nil, final(err)
	}
	if kv == nil {
		return nil, ErrKeyNotFound
	}
	return kv, nil
}

func (r *Router) getOnce(ctx context.Context, id ring.ShardID, key string, stale bool) (kv *shard.KeyValue, err error) {
	hosts, local := r.targets(id, stale)
	if local {
		return r.be.Get(ctx, id, []byte(key), stale)
	}
	r.met.forwards[opGet].Inc()
	err = eachHost(hosts, func(addr string) error {
		kv, err = r.fw.Get(ctx, addr, id, []byte(key), stale)
		return err
	})
	return kv, err
}

// targets says where to run an operation on shard id: on the local replica
// (local true) or on hosts, in order. A linearizable operation goes to the
// leader's node when another node leads (see remoteLeader); anything else
// runs locally when this node hosts a replica, and otherwise on the
// shard's hosts.
func (r *Router) targets(id ring.ShardID, stale bool) (hosts []node.Host, local bool) {
	if h, ok := r.remoteLeader(id, stale); ok {
		return []node.Host{h}, false
	}
	if r.be.HasReplica(id) {
		return nil, true
	}
	return r.hosts(id), false
}

// Put writes value under key and returns the write's revision. With prev
// set, it writes only if the key's mod_revision equals *prev (0: only if the
// key does not exist) and otherwise returns a *ConditionError. Errors:
// ErrUnavailable (not applied), ErrUnknownOutcome (maybe applied),
// ErrTooLarge.
func (r *Router) Put(ctx context.Context, key string, value []byte, prev *int64) (int64, error) {
	op := shard.Op{Kind: shard.OpPut, Key: []byte(key), Value: value}
	if prev != nil {
		op.PrevRevision, op.HasPrevRevision = *prev, true
	}
	res, err := r.write(ctx, opPut, key, op)
	if err != nil {
		return 0, err
	}
	if res.Code == shard.ResultConditionFailed {
		return 0, &ConditionError{Key: key, Current: res.Revision}
	}
	return res.Revision, nil
}

// Delete removes key and returns the revision of the deletion. With prev
// set it deletes only if the key's mod_revision equals *prev. Errors:
// ErrKeyNotFound (unconditional delete of a missing key), *ConditionError,
// ErrUnavailable, ErrUnknownOutcome.
func (r *Router) Delete(ctx context.Context, key string, prev *int64) (int64, error) {
	op := shard.Op{Kind: shard.OpDelete, Key: []byte(key)}
	if prev != nil {
		op.PrevRevision, op.HasPrevRevision = *prev, true
	}
	res, err := r.write(ctx, opDelete, key, op)
	if err != nil {
		return 0, err
	}
	switch res.Code {
	case shard.ResultConditionFailed:
		return 0, &ConditionError{Key: key, Current: res.Revision}
	case shard.ResultNotFound:
		return 0, ErrKeyNotFound
	}
	return res.Revision, nil
}

// write proposes one op to key's shard. It retries only errors that mean the
// op was not applied, so a conditional write is never applied twice.
func (r *Router) write(ctx context.Context, kind opKind, key string, op shard.Op) (shard.OpResult, error) {
	id, err := r.Route(ctx, key)
	if err != nil {
		return shard.OpResult{}, err
	}
	cmd := shard.EncodeCommand(nil, []shard.Op{op})
	var res []shard.OpResult
	err = r.retry(ctx, kind, func() error {
		hosts, local := r.targets(id, false)
		if local {
			var err error
			res, err = r.be.Propose(ctx, id, cmd)
			return err
		}
		r.met.forwards[kind].Inc()
		return eachHost(hosts, func(addr string) error {
			var err error
			res, err = r.fw.Propose(ctx, addr, id, cmd)
			return err
		})
	})
	if err != nil {
		return shard.OpResult{}, final(err)
	}
	if len(res) != 1 {
		return shard.OpResult{}, fmt.Errorf("router: shard %d returned %d results for 1 op", id, len(res))
	}
	if res[0].Code == shard.ResultBadCommand {
		return shard.OpResult{}, fmt.Errorf("router: shard %d rejected the command as malformed", id)
	}
	return res[0], nil
}

// retry runs f until it succeeds, fails with an error that is not
// retryable, the attempts run out or ctx is done. Each attempt after the
// first counts in cave_router_retries_total under kind.
func (r *Router) retry(ctx context.Context, kind opKind, f func() error) error {
	delay := r.cfg.Backoff
	var err error
	for attempt := 0; attempt < r.cfg.Attempts; attempt++ {
		if attempt > 0 {
			r.met.retries[kind].Inc()
		}
		if err = f(); err == nil || !retryable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(2*delay, 200*time.Millisecond)
	}
	return err
}

func (r *Router) hosts(id ring.ShardID) []node.Host { return r.be.ShardHosts(id) }

// remoteLeader returns the node to run a linearizable operation on shard
// id on when this node hosts a follower of it: the leader's node, as the
// local replica knows it. A proposal or read index made on a follower is
// forwarded inside Raft, and when the leader drops it (while handing
// leadership over) the follower learns nothing until its timeout; made on
// the leader's node, the drop is reported at once and the operation is
// retried. Stale reads stay local.
func (r *Router) remoteLeader(id ring.ShardID, stale bool) (node.Host, bool) {
	if stale {
		return node.Host{}, false
	}
	return r.be.LeaderHost(id)
}

// ListLimit returns the largest page List returns (Config.MaxListLimit).
func (r *Router) ListLimit() int { return r.cfg.MaxListLimit }

// ListItem is one key of a List page.
type ListItem struct {
	Key         string
	ModRevision int64
	Size        int64
}

// List returns up to limit keys with prefix, in lexicographic order across
// all shards, starting after the position encoded in pageToken. The returned
// token is empty on the last page. limit <= 0 means MaxListLimit; larger
// values are capped. Errors: ErrBadPageToken, ErrUnavailable.
func (r *Router) List(ctx context.Context, prefix, pageToken string, limit int, stale bool) ([]ListItem, string, error) {
	if limit <= 0 || limit > r.cfg.MaxListLimit {
		limit = r.cfg.MaxListLimit
	}
	after, err := decodeToken(prefix, pageToken)
	if err != nil {
		return nil, "", err
	}
	t, err := r.be.Table(ctx)
	if err != nil {
		return nil, "", final(err)
	}
	// Every shard holds part of any prefix: ask them all at once, so a page
	// costs the slowest shard's round, not the sum of them.
	shards := t.Shards()
	pages := make([][]ListItem, len(shards))
	mores := make([]bool, len(shards))
	errs := make([]error, len(shards))
	var wg sync.WaitGroup
	for i, id := range shards {
		wg.Go(func() {
			errs[i] = r.retry(ctx, opList, func() error {
				var err error
				pages[i], mores[i], err = r.listShard(ctx, id, prefix, after, limit, stale)
				return err
			})
		})
	}
	wg.Wait()
	more := false
	for i := range shards {
		if errs[i] != nil {
			return nil, "", final(errs[i])
		}
		more = more || mores[i]
	}
	merged, truncated := mergePages(pages, limit)
	next := ""
	if (more || truncated) && len(merged) > 0 {
		next = encodeToken(prefix, merged[len(merged)-1].Key)
	}
	return merged, next, nil
}

func (r *Router) listShard(ctx context.Context, id ring.ShardID, prefix, after string, limit int, stale bool) ([]ListItem, bool, error) {
	q := shard.ListQuery{Prefix: []byte(prefix), Limit: limit, KeysOnly: true}
	if after != "" {
		q.StartAfter = []byte(after)
	}
	var res *shard.ListResult
	hosts, local := r.targets(id, stale)
	if local {
		var err error
		if res, err = r.be.List(ctx, id, q, stale); err != nil {
			return nil, false, err
		}
	} else {
		r.met.forwards[opList].Inc()
		err := eachHost(hosts, func(addr string) error {
			var err error
			res, err = r.fw.List(ctx, addr, id, q, stale)
			return err
		})
		if err != nil {
			return nil, false, err
		}
	}
	items := make([]ListItem, len(res.Items))
	for i, kv := range res.Items {
		items[i] = ListItem{Key: string(kv.Key), ModRevision: kv.ModRevision, Size: kv.Size}
	}
	return items, res.More, nil
}

// mergePages merges sorted, disjoint pages into the first limit items, and
// reports whether items were left out.
func mergePages(pages [][]ListItem, limit int) ([]ListItem, bool) {
	var out []ListItem
	idx := make([]int, len(pages))
	for len(out) < limit {
		best := -1
		for p := range pages {
			if idx[p] < len(pages[p]) && (best < 0 || pages[p][idx[p]].Key < pages[best][idx[best]].Key) {
				best = p
			}
		}
		if best < 0 {
			return out, false
		}
		out = append(out, pages[best][idx[best]])
		idx[best]++
	}
	for p := range pages {
		if idx[p] < len(pages[p]) {
			return out, true
		}
	}
	return out, false
}

// tokenVersion is the first byte of every page token.
const tokenVersion = 1

// encodeToken returns the page token that resumes a List of prefix after
// key, the last key of the page: base64url of tokenVersion, key and a
// CRC-32C of prefix and key, so that a token that is not one List gave
// for this prefix is refused rather than read as a position. Clients treat
// tokens as opaque.
func encodeToken(prefix, key string) string {
	b := make([]byte, 0, 1+len(key)+4)
	b = append(append(b, tokenVersion), key...)
	b = binary.BigEndian.AppendUint32(b, tokenSum(prefix, key))
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeToken returns the key a List of prefix resumes after, "" for the
// empty token (the first page). A token that encodeToken did not make for
// prefix, whatever its form, is ErrBadPageToken.
func decodeToken(prefix, tok string) (string, error) {
	if tok == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(b) < 1+1+4 || b[0] != tokenVersion {
		return "", ErrBadPageToken
	}
	key, sum := string(b[1:len(b)-4]), binary.BigEndian.Uint32(b[len(b)-4:])
	if sum != tokenSum(prefix, key) || !strings.HasPrefix(key, prefix) {
		return "", ErrBadPageToken
	}
	return key, nil
}

// tokenSum is the checksum of a page token: CRC-32C of prefix, a zero
// byte and key.
func tokenSum(prefix, key string) uint32 {
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	_, _ = h.Write([]byte(prefix))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(key))
	return h.Sum32()
}
