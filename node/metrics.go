package node

import (
	"cmp"
	"errors"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/lni/dragonboat/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cavedb/cave/ring"
)

// Label values of cave_node_raft_proposals_total and
// cave_node_raft_reads_total's result label: one per node error sentinel.
const (
	resultOK = iota
	resultNoReplica
	resultNotReady
	resultUnknownOutcome
	resultTooLarge
	resultClosed
	resultError
	numResults
)

var resultNames = [numResults]string{"ok", "no_replica", "not_ready", "unknown_outcome", "too_large", "closed", "error"}

// resultOf classifies an error returned by Propose or Read.
func resultOf(err error) int {
	switch {
	case err == nil:
		return resultOK
	case errors.Is(err, ErrNoReplica):
		return resultNoReplica
	case errors.Is(err, ErrUnknownOutcome):
		return resultUnknownOutcome
	case errors.Is(err, ErrNotReady), errors.Is(err, ErrNotInitialized):
		return resultNotReady
	case errors.Is(err, ErrTooLarge):
		return resultTooLarge
	case errors.Is(err, ErrClosed):
		return resultClosed
	}
	return resultError
}

// Read kinds, the kind label of cave_node_raft_reads_total.
const (
	readLinearizable = 0
	readStale        = 1
)

var readKinds = [2]string{"linearizable", "stale"}

// reconcileKinds are the kind label values of
// cave_node_reconcile_actions_total: the steps of a move this node's
// reconciler takes (moves.go), and the leadership hand-overs before a
// leader's own replica is removed.
var reconcileKinds = []string{stepRecord, stepAdd, stepCatchUp, stepPromote, stepRemove, stepTransfer, stepRollback, kindLeaderTransfer}

const kindLeaderTransfer = "leader-transfer"

// moveKinds and moveResults label cave_node_moves_total.
var (
	moveKinds   = []string{moveAdd, movePromote, moveRemove, moveTransfer}
	moveResults = []string{"done", "rolled back", "dropped"}
)

// metrics holds a node's Prometheus metrics. Counters are updated on the
// request path; the shard, membership and storage gauges are computed by
// collector at scrape time. It is safe for concurrent use.
type metrics struct {
	proposals        *prometheus.CounterVec // shard, result
	proposeSeconds   prometheus.Histogram
	reads            *prometheus.CounterVec // shard, kind, result
	leaderChanges    *prometheus.CounterVec // shard
	reconcileActions *prometheus.CounterVec // kind, result
	moves            *prometheus.CounterVec // kind, result
	movesInFlight    prometheus.Gauge

	// shards caches each shard's curried counters, so the request path
	// neither formats labels nor allocates.
	shards sync.Map // ring.ShardID -> *shardCounters

	reg        prometheus.Registerer
	registered []prometheus.Collector
}

// shardCounters are one shard's series. Only the "ok" results are made up
// front; a failure result's series appears when it first happens, so an
// idle shard costs three series, not twenty-one.
type shardCounters struct {
	label         string
	proposalsOK   prometheus.Counter
	readsOK       [2]prometheus.Counter
	leaderChanges prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		reg: reg,
		proposals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cave_node_raft_proposals_total",
			Help: "Raft proposals made through local replicas, by shard and result (ok, no_replica, not_ready, unknown_outcome, too_large, closed, error).",
		}, []string{"shard", "result"}),
		proposeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cave_node_raft_propose_duration_seconds",
			Help:    "Time from proposing a command to a local replica until it is applied or fails.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		reads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cave_node_raft_reads_total",
			Help: "Reads served by local replicas, by shard, kind (linearizable through ReadIndex, or stale) and result; the node's own reads of the meta shard (placement, every reconcile) included.",
		}, []string{"shard", "kind", "result"}),
		leaderChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cave_node_leader_changes_total",
			Help: "Leader changes seen by the local replica of each shard, the first leader seen after start included.",
		}, []string{"shard"}),
		reconcileActions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cave_node_reconcile_actions_total",
			Help: "Move steps taken by this node's reconciler, by step (record, add, catch-up, promote, remove, transfer, rollback, leader-transfer) and result (ok, error).",
		}, []string{"kind", "result"}),
		moves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cave_node_moves_total",
			Help: "Replica and leader moves this node finished as the shard's leader, by kind (add, promote, remove, transfer) and result (done, rolled back, dropped).",
		}, []string{"kind", "result"}),
		movesInFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cave_node_moves_in_flight",
			Help: "Moves recorded in the meta shard and not finished, as the coordinator (the meta shard's leader) last saw them; 0 on other nodes.",
		}),
	}
	for _, k := range moveKinds {
		for _, r := range moveResults {
			m.moves.WithLabelValues(k, r)
		}
	}
	for _, k := range reconcileKinds {
		m.reconcileActions.WithLabelValues(k, "ok")
		m.reconcileActions.WithLabelValues(k, "error")
	}
	return m
}

// register registers the counters and c on the registerer, all or none.
func (m *metrics) register(c prometheus.Collector) error {
	for _, col := range []prometheus.Collector{m.proposals, m.proposeSeconds, m.reads, m.leaderChanges, m.reconcileActions, m.moves, m.movesInFlight, c} {
		if err := m.reg.Register(col); err != nil {
			m.unregister()
			return err
		}
		m.registered = append(m.registered, col)
	}
	return nil
}

// unregister removes every registered collector, so a later node may use
// the same registerer.
func (m *metrics) unregister() {
	for _, col := range m.registered {
		m.reg.Unregister(col)
	}
	m.registered = nil
}

func (m *metrics) shard(id ring.ShardID) *shardCounters {
	if c, ok := m.shards.Load(id); ok {
		return c.(*shardCounters)
	}
	label := strconv.FormatUint(uint64(id), 10)
	c := &shardCounters{
		label:         label,
		proposalsOK:   m.proposals.WithLabelValues(label, resultNames[resultOK]),
		leaderChanges: m.leaderChanges.WithLabelValues(label),
	}
	for k := range readKinds {
		c.readsOK[k] = m.reads.WithLabelValues(label, readKinds[k], resultNames[resultOK])
	}
	actual, _ := m.shards.LoadOrStore(id, c)
	return actual.(*shardCounters)
}

func (m *metrics) proposed(id ring.ShardID, err error, took time.Duration) {
	c := m.shard(id)
	if r := resultOf(err); r == resultOK {
		c.proposalsOK.Inc()
	} else {
		m.proposals.WithLabelValues(c.label, resultNames[r]).Inc()
	}
	m.proposeSeconds.Observe(took.Seconds())
}

func (m *metrics) read(id ring.ShardID, stale bool, err error) {
	k := readLinearizable
	if stale {
		k = readStale
	}
	c := m.shard(id)
	if r := resultOf(err); r == resultOK {
		c.readsOK[k].Inc()
	} else {
		m.reads.WithLabelValues(c.label, readKinds[k], resultNames[r]).Inc()
	}
}

// moveDone counts a finished move.
func (m *metrics) moveDone(kind, result string) { m.moves.WithLabelValues(kind, result).Inc() }

func (m *metrics) action(kind string, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.reconcileActions.WithLabelValues(kind, result).Inc()
}

// collector computes the node's gauges at scrape time: per local replica
// whether it leads and its shard's size, the membership by state, and the
// state store's engine metrics.
type collector struct {
	n *Node

	leader, keys, bytes, members *prometheus.Desc

	diskUsage, memtable, compactions, flushes, readAmp, walBytes, walWritten, tables,
	cacheBytes, cacheHits, cacheMisses, snapSent, snapReceived *prometheus.Desc
}

func newCollector(n *Node) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &collector{
		n:            n,
		leader:       d("cave_node_shard_leader", "1 if the local replica of the shard is its leader, else 0; one series per local replica.", "shard"),
		keys:         d("cave_node_shard_keys", "Keys in each shard with a local replica, as of its last applied entry.", "shard"),
		bytes:        d("cave_node_shard_size_bytes", "Sum of key and value lengths in each shard with a local replica.", "shard"),
		members:      d("cave_node_members", "Cluster members known to gossip, by state (alive, failed, left).", "state"),
		diskUsage:    d("cave_store_disk_usage_bytes", "Disk space used by the node's state store (Pebble), WAL and obsolete files included."),
		memtable:     d("cave_store_memtable_bytes", "Size of the state store's memtables."),
		compactions:  d("cave_store_compactions_total", "Compactions run by the state store since it was opened."),
		flushes:      d("cave_store_flushes_total", "Memtable flushes by the state store since it was opened."),
		readAmp:      d("cave_store_read_amplification", "Read amplification of the state store: L0 sublevels plus non-empty levels."),
		walBytes:     d("cave_store_wal_bytes", "Live data in the state store's write-ahead log."),
		walWritten:   d("cave_store_wal_written_bytes_total", "Bytes written to the state store's write-ahead log since it was opened."),
		tables:       d("cave_store_sstables", "Number of sstables in the state store."),
		cacheBytes:   d("cave_store_block_cache_bytes", "Bytes in use by the state store's block cache."),
		cacheHits:    d("cave_store_block_cache_hits_total", "Block cache hits of the state store."),
		cacheMisses:  d("cave_store_block_cache_misses_total", "Block cache misses of the state store."),
		snapSent:     d("cave_store_snapshot_sent_bytes_total", "Bytes of shard snapshots this node streamed to new or lagging replicas (replica moves), since it started."),
		snapReceived: d("cave_store_snapshot_received_bytes_total", "Bytes of shard snapshots this node loaded from other replicas, since it started."),
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.leader, c.keys, c.bytes, c.members, c.diskUsage, c.memtable, c.compactions,
		c.flushes, c.readAmp, c.walBytes, c.walWritten, c.tables, c.cacheBytes, c.cacheHits, c.cacheMisses, c.snapSent, c.snapReceived} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. It reads only local state: the
// NodeHost's replica list, one Pebble point read per local shard, gossip's
// member list and Pebble's metrics.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	if n.closed.Load() {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	for _, ls := range n.localShards() {
		label := strconv.FormatUint(uint64(ls.id), 10)
		lead := 0.0
		if ls.leader {
			lead = 1
		}
		gauge(c.leader, lead, label)
		if st, err := n.store.Stats(ls.id); err == nil {
			gauge(c.keys, float64(st.Keys), label)
			gauge(c.bytes, float64(st.Bytes), label)
		}
	}
	counts := map[MemberState]int{StateAlive: 0, StateFailed: 0, StateLeft: 0}
	for _, m := range n.ms.members() {
		counts[m.State]++
	}
	for st, v := range counts {
		gauge(c.members, float64(v), string(st))
	}
	if em, err := n.store.Metrics(); err == nil {
		gauge(c.diskUsage, float64(em.DiskUsageBytes))
		gauge(c.memtable, float64(em.MemTableBytes))
		counter(c.compactions, float64(em.Compactions))
		counter(c.flushes, float64(em.Flushes))
		gauge(c.readAmp, float64(em.ReadAmplification))
		gauge(c.walBytes, float64(em.WALBytes))
		counter(c.walWritten, float64(em.WALWrittenBytes))
		gauge(c.tables, float64(em.Tables))
		gauge(c.cacheBytes, float64(em.BlockCacheBytes))
		counter(c.cacheHits, float64(em.BlockCacheHits))
		counter(c.cacheMisses, float64(em.BlockCacheMisses))
		counter(c.snapSent, float64(em.SnapshotSentBytes))
		counter(c.snapReceived, float64(em.SnapshotReceivedBytes))
	}
}

// localShard is one replica running on this node.
type localShard struct {
	id     ring.ShardID
	leader bool
}

// localShards lists the replicas running on this node, sorted by shard,
// and whether each leads its shard.
func (n *Node) localShards() []localShard {
	infos := n.nh.GetNodeHostInfo(dragonboat.NodeHostInfoOption{SkipLogInfo: true}).ShardInfoList
	out := make([]localShard, 0, len(infos))
	for _, si := range infos {
		out = append(out, localShard{id: ring.ShardID(si.ShardID), leader: si.LeaderID != 0 && si.LeaderID == si.ReplicaID})
	}
	slices.SortFunc(out, func(a, b localShard) int { return cmp.Compare(a.id, b.id) })
	return out
}

// LocalShards returns how many shards have a replica on this node, split
// into those the local replica leads and those it follows (as a voter or a
// learner). It reads local state only and never blocks.
func (n *Node) LocalShards() (led, followed int) {
	if n.closed.Load() {
		return 0, 0
	}
	for _, ls := range n.localShards() {
		if ls.leader {
			led++
		} else {
			followed++
		}
	}
	return led, followed
}
