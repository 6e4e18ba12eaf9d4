// Package node runs one cave node: the dragonboat NodeHost with its shard
// replicas, the meta shard, serf membership and the reconciler that keeps
// every shard at its replication factor.
//
// A Node executes operations only against replicas it hosts; routing a
// request to a node that hosts the right replica is the router's job.
package node

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lni/dragonboat/v4"
	"github.com/lni/dragonboat/v4/client"
	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/dragonboat/v4/raftio"

	"github.com/cavedb/cave/node/internal/dblog"
	"github.com/cavedb/cave/ring"
	"github.com/cavedb/cave/shard"
)

// Node is one member of a cave cluster. It is safe for concurrent use.
//
// Background goroutines (reconciler, gossip event loop, join retries) are
// started by New and stopped by Close.
type Node struct {
	cfg   Config
	lg    *slog.Logger
	store *shard.Store
	nh    *dragonboat.NodeHost
	ms    *membership
	peers Peers
	met   *metrics

	table   atomic.Pointer[ring.Table]
	state   atomic.Pointer[metaState] // the meta records, cached by the reconciler
	leaders leaderSet
	sizes   shardSizes // the coordinator's cache of shard sizes
	// sessions caches each shard's no-op session (ring.ShardID ->
	// *client.Session).
	sessions sync.Map

	startMu sync.Mutex // serializes starting and stopping replicas

	ctx      context.Context // cancelled by Close
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	closed   atomic.Bool
	prepared atomic.Bool // PrepareClose has run

	removedLogged atomic.Bool // syncLocalReplicas has logged that this node is removed
}

// New opens the node's data dir, starts the replicas found there (or
// bootstraps a new cluster when cfg.Bootstrap is set and the dir is empty),
// joins the gossip pool and starts the reconciler. It returns once the node
// is running; the node may not be Ready yet. It returns cfg.Validate's
// error, or why the data dir, the Raft host or gossip could not start.
func New(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	dblog.Install(cfg.Logger)
	lg := cfg.Logger.With("node", cfg.Name)
	raftDir := filepath.Join(cfg.DataDir, "raft")
	for _, d := range []string{cfg.DataDir, raftDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("node: create data dir: %w", err)
		}
	}
	scfg := shard.DefaultConfig()
	scfg.Logger = lg
	scfg.SnapshotBytesPerSecond = cfg.SnapshotBytesPerSecond
	scfg.HistoryRevisions = cfg.WatchHistoryRevisions
	store, err := shard.Open(filepath.Join(cfg.DataDir, "state"), scfg)
	if err != nil {
		return nil, fmt.Errorf("node: open state store: %w", err)
	}
	n := &Node{cfg: cfg, lg: lg, store: store, peers: cfg.Peers, met: newMetrics(cfg.Metrics)}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.leaders.init()

	raftCA := ""
	if cfg.TLS.enabled() {
		if raftCA, err = raftCAFile(cfg.TLS, cfg.DataDir, lg); err != nil {
			store.Close()
			return nil, err
		}
	}
	logdb := config.GetTinyMemLogDBConfig()
	logdb.Shards = cfg.Expert.LogDBShards
	es := cfg.Expert.EngineShards
	nhc := config.NodeHostConfig{
		NodeHostDir:       raftDir,
		WALDir:            raftDir,
		RTTMillisecond:    cfg.Expert.RTTMillisecond,
		RaftAddress:       cfg.RaftAddr,
		ListenAddress:     cfg.RaftListenAddr,
		RaftEventListener: n,
		MutualTLS:         cfg.TLS.enabled(),
		CAFile:            raftCA,
		CertFile:          cfg.TLS.CertFile,
		KeyFile:           cfg.TLS.KeyFile,
		Expert: config.ExpertConfig{
			LogDB:  logdb,
			Engine: config.EngineConfig{ExecShards: es, CommitShards: es, ApplyShards: es, SnapshotShards: es, CloseShards: es},
		},
	}
	nh, err := dragonboat.NewNodeHost(nhc)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("node: start raft host: %w", err)
	}
	n.nh = nh

	bootstrap, err := n.startLocalReplicas()
	if err != nil {
		n.closeEngine()
		return nil, err
	}
	n.ms, err = startMembership(n, cfg, lg)
	if err != nil {
		n.closeEngine()
		return nil, err
	}
	n.spawn(func() { n.ms.run(n.ctx) })
	n.spawn(func() { n.ms.joinLoop(n.ctx, cfg.Join) })
	if bootstrap {
		n.spawn(n.initClusterLoop)
	}
	n.spawn(n.reconcileLoop)
	if err := n.met.register(newCollector(n)); err != nil {
		n.Close()
		return nil, fmt.Errorf("node: register metrics: %w", err)
	}
	lg.Info("node started", "raft_addr", cfg.RaftAddr, "gossip_addr", cfg.GossipAddr, "data_dir", cfg.DataDir, "bootstrap", bootstrap,
		"raft_tls", cfg.TLS.enabled(), "gossip_encrypted", n.ms.keys != nil)
	return n, nil
}

func (n *Node) spawn(f func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
}

// Name returns the node's name.
func (n *Node) Name() string { return n.cfg.Name }

// startLocalReplicas restarts every replica whose Raft log is in the data
// dir. With no log and cfg.Bootstrap set it creates the meta shard and the
// data shards with this node as their only member, and reports true so the
// caller writes the initial metadata. A restarted bootstrap node whose meta
// shard lacks the cluster id also reports true: the first attempt crashed
// before the metadata was committed.
func (n *Node) startLocalReplicas() (bool, error) {
	info := n.nh.GetNodeHostInfo(dragonboat.NodeHostInfoOption{SkipLogInfo: false})
	latest := map[uint64]uint64{} // shard -> highest replica id with a log here
	for _, li := range info.LogInfo {
		if li.ReplicaID > latest[li.ShardID] {
			latest[li.ShardID] = li.ReplicaID
		}
	}
	if len(latest) > 0 {
		for id, rid := range latest {
			if err := n.nh.StartOnDiskReplica(nil, false, n.store.StateMachineFactory(), n.shardConfig(id, rid, n.isLearner(ring.ShardID(id), rid))); err != nil {
				return false, fmt.Errorf("node: restart shard %d replica %d: %w", id, rid, err)
			}
		}
		n.lg.Info("restarted local replicas", "count", len(latest))
		return n.cfg.Bootstrap, nil
	}
	if !n.cfg.Bootstrap {
		return false, nil
	}
	members := map[uint64]dragonboat.Target{bootstrapReplicaID: n.cfg.RaftAddr}
	for id := uint64(0); id <= uint64(n.cfg.Shards); id++ {
		if err := n.nh.StartOnDiskReplica(members, false, n.store.StateMachineFactory(), n.shardConfig(id, bootstrapReplicaID, false)); err != nil {
			return false, fmt.Errorf("node: bootstrap shard %d: %w", id, err)
		}
	}
	n.lg.Info("bootstrapping new cluster", "shards", n.cfg.Shards)
	return true, nil
}

// bootstrapReplicaID is the replica id of every shard's first replica.
const bootstrapReplicaID = 1

func (n *Node) shardConfig(id, rid uint64, learner bool) config.Config {
	e := n.cfg.Expert
	return config.Config{
		ShardID:             id,
		ReplicaID:           rid,
		ElectionRTT:         e.ElectionRTT,
		HeartbeatRTT:        e.HeartbeatRTT,
		CheckQuorum:         true,
		PreVote:             true,
		OrderedConfigChange: true,
		SnapshotEntries:     e.SnapshotEntries,
		CompactionOverhead:  e.CompactionOverhead,
		IsNonVoting:         learner,
	}
}

// Propose replicates cmd (the output of shard.EncodeCommand) through the
// local replica of shard id and returns the state machine's results, one per
// op. Errors: ErrNoReplica and ErrNotReady mean nothing was applied;
// ErrUnknownOutcome means it may have been; ErrTooLarge.
func (n *Node) Propose(ctx context.Context, id ring.ShardID, cmd []byte) ([]shard.OpResult, error) {
	ctx, cancel := n.deadline(ctx)
	defer cancel()
	start := time.Now()
	res, err := n.nh.SyncPropose(ctx, n.session(id), cmd)
	err = translate(err, true)
	n.met.proposed(id, err, time.Since(start))
	if err != nil {
		return nil, err
	}
	return shard.DecodeResults(res)
}

// Get reads key from the local replica of shard id: linearizably through
// ReadIndex, or from local state when stale is true. It returns nil, nil
// when the key is absent. Errors: ErrNoReplica (no local replica),
// ErrNotReady (no leader, election, replica recovering); nothing is ever
// applied by a read.
func (n *Node) Get(ctx context.Context, id ring.ShardID, key []byte, stale bool) (*shard.KeyValue, error) {
	v, err := n.read(ctx, id, shard.GetQuery{Key: key}, stale)
	if err != nil {
		return nil, err
	}
	kv, ok := v.(*shard.KeyValue)
	if !ok && v != nil {
		return nil, fmt.Errorf("node: shard %d answered a get with %T", id, v)
	}
	return kv, nil
}

// List reads a page of keys of shard id from its local replica, as Get
// reads one key. Errors are those of Get.
func (n *Node) List(ctx context.Context, id ring.ShardID, q shard.ListQuery, stale bool) (*shard.ListResult, error) {
	v, err := n.read(ctx, id, q, stale)
	if err != nil {
		return nil, err
	}
	res, ok := v.(*shard.ListResult)
	if !ok {
		return nil, fmt.Errorf("node: shard %d answered a list with %T", id, v)
	}
	return res, nil
}

// Stats returns the size and applied index of the local replica of shard
// id, read from local state without a Raft round. It fails with
// ErrNoReplica when this node hosts no replica of the shard.
func (n *Node) Stats(id ring.ShardID) (shard.Stats, error) {
	v, err := n.read(context.Background(), id, shard.StatsQuery{}, true)
	if err != nil {
		return shard.Stats{}, err
	}
	st, ok := v.(shard.Stats)
	if !ok {
		return shard.Stats{}, fmt.Errorf("node: shard %d answered stats with %T", id, v)
	}
	return st, nil
}

// read runs query against the local replica of shard id, linearizably or
// stale, and counts it.
func (n *Node) read(ctx context.Context, id ring.ShardID, query any, stale bool) (any, error) {
	if stale {
		v, err := n.nh.StaleRead(uint64(id), query)
		err = translate(err, false)
		n.met.read(id, true, err)
		return v, err
	}
	ctx, cancel := n.deadline(ctx)
	defer cancel()
	v, err := n.nh.SyncRead(ctx, uint64(id), query)
	err = translate(err, false)
	n.met.read(id, false, err)
	return v, err
}

// session returns shard id's no-op client session, made once: a no-op
// session holds no state (every proposal is applied once, no dedup), so one
// serves every proposal to the shard, concurrent ones included.
func (n *Node) session(id ring.ShardID) *client.Session {
	if s, ok := n.sessions.Load(id); ok {
		return s.(*client.Session)
	}
	s, _ := n.sessions.LoadOrStore(id, n.nh.GetNoOPSession(uint64(id)))
	return s.(*client.Session)
}

// deadline caps ctx by the configured propose timeout, as every dragonboat
// Sync call needs a deadline.
func (n *Node) deadline(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, n.cfg.ProposeTimeout)
}

// HasReplica reports whether this node runs a replica of shard id.
func (n *Node) HasReplica(id ring.ShardID) bool {
	_, _, _, err := n.nh.GetLeaderID(uint64(id))
	return err == nil
}

// localLeader returns the replica id of shard id's leader as seen by the
// local replica.
func (n *Node) localLeader(id ring.ShardID) (uint64, bool) {
	lid, _, ok, err := n.nh.GetLeaderID(uint64(id))
	return lid, ok && err == nil
}

// LeaderUpdated implements raftio.IRaftEventListener. dragonboat calls it
// from its own goroutines; it must not block.
func (n *Node) LeaderUpdated(info raftio.LeaderInfo) {
	id := ring.ShardID(info.ShardID)
	if n.leaders.update(id, info.LeaderID, info.LeaderID != 0 && info.LeaderID == info.ReplicaID) {
		n.met.shard(id).leaderChanges.Inc()
	}
}

var _ raftio.IRaftEventListener = (*Node)(nil)

// Close leaves the cluster gracefully: it hands leadership of every shard it
// leads to another voter, leaves the gossip pool, stops all replicas and
// closes the state store. It never removes this node's replicas from their
// shards, so a restart with the same data dir resumes. Close is idempotent.
func (n *Node) Close() error {
	if !n.closed.CompareAndSwap(false, true) {
		return nil
	}
	n.met.unregister()
	handover := 2 * time.Second
	if n.prepared.Load() {
		handover = 300 * time.Millisecond
	}
	n.PrepareClose(handover)
	n.cancel()
	// Stop the gossip event loop before leaving: a tag update (the leader
	// set changes during the hand-over above) sent after our own leave can
	// never be broadcast, and serf waits its full timeout (5s) for it.
	n.wg.Wait()
	err := n.ms.leave()
	n.closeEngine()
	n.lg.Info("node stopped")
	return err
}

func (n *Node) closeEngine() {
	if n.nh != nil {
		n.nh.Close()
	}
	if err := n.store.Close(); err != nil {
		n.lg.Error("close state store", "err", err)
	}
}

// PrepareClose begins a graceful stop while the node keeps serving: it
// tells the cluster, through gossip, that this node is stopping, so that
// no other node hands it a leadership, and transfers every leadership it
// holds to a live voter on a node that is not stopping, waiting up to
// timeout for the transfers. Call it before the API servers stop, so that
// requests forwarded to this node's leaders keep being served during the
// hand-over. Close calls it too: for 2s when it was not called before,
// else only briefly, for leaderships won since (a transfer that failed
// once, to a lagging voter, rarely succeeds on a second try).
func (n *Node) PrepareClose(timeout time.Duration) {
	if n.ms == nil {
		return
	}
	n.prepared.Store(true)
	n.ms.setTag(tagStopping, "1")
	n.transferLeadership(timeout)
}

// transferLeadership asks every shard this node leads to elect a voter on
// another live node that is not stopping, and waits up to timeout for them
// to do so. It uses only local state (the cached placement and gossip),
// since the shards may have lost their quorum.
func (n *Node) transferLeadership(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	p := n.state.Load()
	if p == nil {
		return
	}
	targets := map[string]bool{}
	for _, m := range n.ms.members() {
		if m.State == StateAlive && !m.Stopping && m.Name != n.cfg.Name {
			targets[m.Name] = true
		}
	}
	var moving []ring.ShardID
	for _, id := range n.leaders.led() {
		for _, r := range p.byShard[id] {
			if r.Role != RoleVoter || !targets[r.Node] {
				continue
			}
			if err := n.nh.RequestLeaderTransfer(uint64(id), r.ID); err == nil {
				moving = append(moving, id)
				break
			}
		}
	}
	for len(moving) > 0 && time.Now().Before(deadline) {
		still := 0
		for _, id := range moving {
			if _, leading := n.leaders.leader(id); leading {
				still++
			}
		}
		if still == 0 {
			n.lg.Info("leadership handed over", "shards", len(moving))
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// localReplicaID returns the id of the local replica of shard id.
func (n *Node) localReplicaID(id ring.ShardID) (uint64, bool) {
	for _, si := range n.nh.GetNodeHostInfo(dragonboat.NodeHostInfoOption{SkipLogInfo: true}).ShardInfoList {
		if si.ShardID == uint64(id) {
			return si.ReplicaID, true
		}
	}
	return 0, false
}

// leaderSet tracks which shards the local replicas lead, from dragonboat's
// leader events, and signals changes on a channel of capacity one.
type leaderSet struct {
	mu      sync.Mutex
	leading map[ring.ShardID]bool
	last    map[ring.ShardID]uint64 // the last known leader replica of each shard
	current map[ring.ShardID]uint64 // the leader replica now, 0 while none is known
	changed chan struct{}
}

func (l *leaderSet) init() {
	l.leading = map[ring.ShardID]bool{}
	l.last = map[ring.ShardID]uint64{}
	l.current = map[ring.ShardID]uint64{}
	l.changed = make(chan struct{}, 1)
}

// update records shard id's leader as seen by the local replica: leaderID
// is its replica id (0: none known) and leading whether it is the local
// one. It reports whether a leader other than the last known one appeared.
func (l *leaderSet) update(id ring.ShardID, leaderID uint64, leading bool) bool {
	l.mu.Lock()
	newLeader := leaderID != 0 && leaderID != l.last[id]
	if leaderID != 0 {
		l.last[id] = leaderID
	}
	l.current[id] = leaderID
	if leading {
		l.leading[id] = true
	} else {
		delete(l.leading, id)
	}
	l.mu.Unlock()
	select {
	case l.changed <- struct{}{}:
	default:
	}
	return newLeader
}

// leader returns the replica id of shard id's leader as the local replica
// last saw it (0: none known) and whether it is the local replica.
func (l *leaderSet) leader(id ring.ShardID) (rid uint64, leading bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.current[id], l.leading[id]
}

// led returns the shards led locally, sorted.
func (l *leaderSet) led() []ring.ShardID {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]ring.ShardID, 0, len(l.leading))
	for id := range l.leading {
		out = append(out, id)
	}
	sortShards(out)
	return out
}
