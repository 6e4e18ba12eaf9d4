package node

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cavedb/cave/placement"
	"github.com/cavedb/cave/shard"
)

// Config configures a Node. Fields map one to one to cave's flags; the
// comments name the flag, its unit and default.
type Config struct {
	// Name is the node's unique name in the cluster (--node-name). Required.
	Name string
	// DataDir holds the Raft log, the state machines' Pebble DB and the
	// gossip snapshot (--data-dir). Required.
	DataDir string
	// RaftAddr is the HOST:PORT the Raft transport listens on (--raft-addr).
	// It is also the address peers dial, so it must be reachable by them and
	// must not change across restarts of the same data dir.
	RaftAddr string
	// RaftListenAddr, when set, is the HOST:PORT the Raft transport binds
	// instead of RaftAddr (when the advertised address is not local).
	RaftListenAddr string
	// GossipAddr is the HOST:PORT serf listens on (--gossip-addr).
	GossipAddr string
	// AdvertiseHost, when set, replaces the host part of GossipAddr in what
	// peers are told to dial (--advertise-host).
	AdvertiseHost string
	// HTTPAddr and GRPCAddr are the advertised API addresses published to
	// peers through gossip; the node itself does not listen on them.
	HTTPAddr, GRPCAddr string
	// Bootstrap creates a new cluster when DataDir holds no Raft state
	// (--bootstrap). With existing state it is a no-op.
	Bootstrap bool
	// Join lists addresses of existing members (--join): their gossip
	// addresses, or with TLS their gRPC addresses, which the node asks for
	// the gossip address and key (see TLS). Ignored when DataDir already
	// holds state and the gossip snapshot knows peers.
	Join []string
	// TLS, when its files are set, secures node-to-node traffic: the Raft
	// transport uses mutual TLS with these files, and gossip is encrypted
	// with a cluster key (see TLSFiles). Zero means plain Raft and gossip
	// (--insecure, dev mode).
	TLS TLSFiles
	// Shards is the number of data shards created at bootstrap (--shards).
	// Default 4. Ignored after bootstrap.
	Shards int
	// Replicas is the replication factor of data shards (--replicas).
	// Default 3; it is capped by the number of live nodes.
	Replicas int
	// MetaVoters is the number of voting replicas of the meta shard; nodes
	// beyond it get a non-voting meta replica. Default 5.
	MetaVoters int
	// DeadNodeTimeout is how long a member must be failed or gone before its
	// replicas are re-created elsewhere (--dead-node-timeout). Default 5m.
	DeadNodeTimeout time.Duration
	// ProposeTimeout caps every Raft proposal and read. Default 5s.
	ProposeTimeout time.Duration
	// ReconcileInterval is how often the reconciler runs. Default 1s.
	ReconcileInterval time.Duration
	// Rebalance throttles the planner: how many moves one plan may start
	// in all (--rebalance-max-moves) and per node (--rebalance-moves-per-node).
	// Default placement.DefaultConfig's.
	Rebalance placement.Config
	// SnapshotBytesPerSecond caps the rate at which this node streams a
	// shard snapshot to a new replica, the bulk of a replica move
	// (--snapshot-bytes-per-sec), so moves leave foreground traffic room.
	// Zero means no cap. Default 128 MiB/s.
	SnapshotBytesPerSecond uint64
	// WatchHistoryRevisions is how many of its latest revisions each shard
	// keeps the change events of, for watches to resume from
	// (--watch-history-revisions): shard.Config.HistoryRevisions. Default
	// 100,000; at least 16.
	WatchHistoryRevisions uint64
	// Expert holds engine settings operators should leave alone.
	Expert Expert
	// MetaNamespaces are the key prefixes of the meta shard that other
	// packages may read and write through MetaGet and MetaSwap (the access
	// policy, the secrets keyring), registered by whoever assembles the
	// node. Each must end in "/" and must not overlap the node's own schema
	// (cluster/, replicas/). Empty: none.
	MetaNamespaces []string
	// Peers calls other nodes' Control and Data services. Required.
	Peers Peers
	// Logger receives the node's logs. Required.
	Logger *slog.Logger
	// Metrics registers the node's metrics (cave_node_*, cave_store_*).
	// Required; give each node its own registry, never the global one.
	Metrics prometheus.Registerer
}

// TLSFiles are the node's PEM files (--tls-ca, --tls-cert, --tls-key).
//
// With them, dragonboat's Raft transport requires and verifies a
// certificate on both ends and checks that the certificate of the node it
// dials names the host of that node's --raft-addr (so node certificates
// carry every host peers dial). It trusts only the intermediate CA that
// issued the node certificate, when the certificate file carries one (as
// `cave certs node` writes it), so client certificates of the cluster CA
// cannot speak Raft; see raftCAFile. Dragonboat reads the files
// once, when the node starts: a renewed certificate reaches the Raft
// transport at the next restart, while the gRPC and HTTP ports reload it
// on SIGHUP.
//
// Gossip is then encrypted with a 32-byte key that the bootstrap node (a
// node started with no --join and no key) generates into DataDir/gossip.key
// (mode 0600). A node that joins with no key asks a member given in --join,
// over the gRPC port with its node certificate (Peer.JoinInfo), for the key
// and the member's gossip address, and keeps the key in its own data dir;
// a restarted node reuses its file. Until it has the key, the joining node
// gossips under a random key nobody shares, so it talks to no one.
type TLSFiles struct {
	CAFile, CertFile, KeyFile string
}

// enabled reports whether TLS is configured.
func (f TLSFiles) enabled() bool { return f.CAFile != "" }

// Expert holds Raft engine settings. The defaults come from measurements on
// a 2-core machine (docs/architecture.md, "Engine settings"); change them
// only with a benchmark in hand.
type Expert struct {
	// RTTMillisecond is the Raft tick in milliseconds. Default 20.
	RTTMillisecond uint64
	// ElectionRTT is the election timeout in ticks. Default 25 (500 ms).
	ElectionRTT uint64
	// HeartbeatRTT is the heartbeat interval in ticks. Default 2.
	HeartbeatRTT uint64
	// SnapshotEntries is how many applied entries trigger a snapshot and log
	// compaction. Default 10000.
	SnapshotEntries uint64
	// CompactionOverhead is how many entries are kept behind a snapshot.
	// Default 5000.
	CompactionOverhead uint64
	// LogDBShards is the number of Pebble instances in the Raft log store.
	// Default 1: one write-ahead log, so one fdatasync covers the entries
	// of every shard the engine saves at once (on 2 cores, 1 instance puts
	// 12,400–13,300 ops/s on one node where 2 put 7,650). It cannot change
	// after the data dir is created.
	LogDBShards uint64
	// EngineShards is the number of workers in each stage of the Raft
	// execution engine. Default: half the usable CPUs, at least 1 and at
	// most 16 (defaultEngineShards); fewer workers batch more entries per
	// log write, more run shards in parallel.
	EngineShards uint64
}

// defaultEngineShards is EngineShards for a process with procs usable
// CPUs: one worker per two CPUs, from 1 to 16. On 2 CPUs one worker beat
// four by 60% for single-node puts and 30% for three-node puts, with the
// same reads; larger machines keep workers for parallel shards.
func defaultEngineShards(procs int) uint64 {
	return uint64(min(max(procs/2, 1), 16))
}

// DefaultConfig returns a Config with every optional field set to its
// default. Name, DataDir, the addresses and Logger are left for the caller.
func DefaultConfig() Config {
	return Config{
		Shards:                 4,
		Replicas:               3,
		MetaVoters:             5,
		DeadNodeTimeout:        5 * time.Minute,
		ProposeTimeout:         5 * time.Second,
		ReconcileInterval:      time.Second,
		Rebalance:              placement.DefaultConfig(),
		SnapshotBytesPerSecond: 128 << 20,
		WatchHistoryRevisions:  shard.DefaultConfig().HistoryRevisions,
		Expert: Expert{
			RTTMillisecond:     20,
			ElectionRTT:        25,
			HeartbeatRTT:       2,
			SnapshotEntries:    10000,
			CompactionOverhead: 5000,
			LogDBShards:        1,
			EngineShards:       defaultEngineShards(runtime.GOMAXPROCS(0)),
		},
	}
}

// Validate reports every problem with c at once. It never changes c.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("node: "+format, args...)) }
	if c.Name == "" {
		bad("--node-name must not be empty")
	} else if strings.ContainsAny(c.Name, " /,\t\n") {
		bad("--node-name must not contain spaces, commas or slashes, got %q", c.Name)
	}
	if c.DataDir == "" {
		bad("--data-dir must not be empty")
	}
	for flag, addr := range map[string]string{"--raft-addr": c.RaftAddr, "--gossip-addr": c.GossipAddr, "--http-addr": c.HTTPAddr, "--grpc-addr": c.GRPCAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad("%s must be HOST:PORT, got %q", flag, addr)
		}
	}
	for _, j := range c.Join {
		if _, _, err := net.SplitHostPort(j); err != nil {
			bad("--join entries must be HOST:PORT, got %q", j)
		}
	}
	if c.WatchHistoryRevisions < 16 {
		bad("--watch-history-revisions must be >= 16, got %d", c.WatchHistoryRevisions)
	}
	if c.Shards < 1 || c.Shards > 1024 {
		bad("--shards must be in [1, 1024], got %d", c.Shards)
	}
	if c.Replicas < 1 || c.Replicas > 7 {
		bad("--replicas must be in [1, 7], got %d", c.Replicas)
	}
	if c.MetaVoters < 1 {
		bad("meta voters must be >= 1, got %d", c.MetaVoters)
	}
	if c.DeadNodeTimeout <= 0 {
		bad("--dead-node-timeout must be > 0, got %s", c.DeadNodeTimeout)
	}
	if c.ProposeTimeout <= 0 {
		bad("propose timeout must be > 0, got %s", c.ProposeTimeout)
	}
	if c.ReconcileInterval <= 0 {
		bad("reconcile interval must be > 0, got %s", c.ReconcileInterval)
	}
	if c.Rebalance.MaxActions < 1 {
		bad("--rebalance-max-moves must be >= 1, got %d", c.Rebalance.MaxActions)
	}
	if c.Rebalance.MaxMovesPerNode < 1 {
		bad("--rebalance-moves-per-node must be >= 1, got %d", c.Rebalance.MaxMovesPerNode)
	}
	if err := c.Rebalance.Validate(); err != nil {
		errs = append(errs, err)
	}
	e := c.Expert
	if e.RTTMillisecond == 0 || e.ElectionRTT <= 2*e.HeartbeatRTT || e.HeartbeatRTT == 0 {
		bad("raft timing must satisfy rtt > 0, heartbeat > 0 and election > 2*heartbeat, got rtt=%d election=%d heartbeat=%d",
			e.RTTMillisecond, e.ElectionRTT, e.HeartbeatRTT)
	}
	if e.SnapshotEntries == 0 || e.LogDBShards == 0 || e.EngineShards == 0 {
		bad("snapshot entries, logdb shards and engine shards must be > 0")
	}
	if t := c.TLS; t.enabled() && (t.CertFile == "" || t.KeyFile == "") || !t.enabled() && (t.CertFile != "" || t.KeyFile != "") {
		bad("--tls-ca, --tls-cert and --tls-key must be set together")
	}
	for _, ns := range c.MetaNamespaces {
		if err := checkNamespace(ns); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Peers == nil {
		bad("Peers must be set")
	}
	if c.Logger == nil {
		bad("Logger must be set")
	}
	if c.Metrics == nil {
		bad("Metrics must be set")
	}
	return errors.Join(errs...)
}
