package node

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"

	"github.com/cavedb/cave/node/internal/dblog"
	"github.com/cavedb/cave/ring"
)

// Gossip tags every node publishes. They are part of the wire contract
// between nodes of different versions, so their names never change.
const (
	tagHTTP = "http"
	tagGRPC = "grpc"
	tagRaft = "raft"
	tagLed  = "led"  // comma-separated ids of the shards this node leads
	tagMeta = "meta" // "1" while the node runs a meta shard replica
	// tagStopping is "1" once the node has begun a graceful stop: it is
	// handing its leaderships over and must not be given new ones.
	tagStopping = "stopping"
)

// MemberState is a member's liveness as gossip sees it.
type MemberState string

// Member states, spelled as in the API contract.
const (
	StateAlive  MemberState = "alive"
	StateFailed MemberState = "failed"
	StateLeft   MemberState = "left"
)

// Member is one node of the cluster as gossip sees it.
type Member struct {
	Name       string
	HTTPAddr   string
	GRPCAddr   string
	RaftAddr   string
	GossipAddr string
	State      MemberState
	// Leads lists the shards the member reported leading, sorted.
	Leads []ring.ShardID
	// Stopping is true once the member has begun a graceful stop.
	Stopping bool
}

// membership wraps serf. It records when each member stopped being alive,
// which the reconciler compares to the dead-node timeout, and publishes the
// local node's tags.
type membership struct {
	n      *Node
	lg     *slog.Logger
	serf   *serf.Serf
	events chan serf.Event

	mu        sync.Mutex // guards downSince and tags
	downSince map[string]time.Time
	tags      map[string]string
}

func startMembership(n *Node, cfg Config, lg *slog.Logger) (*membership, error) {
	host, portStr, err := net.SplitHostPort(cfg.GossipAddr)
	if err != nil {
		return nil, fmt.Errorf("node: --gossip-addr: %w", err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("node: --gossip-addr port: %w", err)
	}
	ml := memberlist.DefaultLANConfig()
	ml.BindAddr = host
	ml.BindPort = port
	ml.AdvertisePort = port
	if adv := cfg.AdvertiseHost; adv != "" {
		ips, err := net.LookupIP(adv)
		if err != nil || len(ips) == 0 {
			return nil, fmt.Errorf("node: --advertise-host %q does not resolve: %w", adv, err)
		}
		ml.AdvertiseAddr = ips[0].String()
	} else if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		ml.AdvertiseAddr = host
	}
	ml.Logger = dblog.StdLogger(lg.With("component", "memberlist"))
	m := &membership{
		n:         n,
		lg:        lg,
		events:    make(chan serf.Event, 256),
		downSince: map[string]time.Time{},
		tags: map[string]string{
			tagHTTP: cfg.HTTPAddr,
			tagGRPC: cfg.GRPCAddr,
			tagRaft: cfg.RaftAddr,
		},
	}
	sc := serf.DefaultConfig()
	sc.NodeName = cfg.Name
	sc.MemberlistConfig = ml
	sc.Tags = m.tagsCopy()
	sc.EventCh = m.events
	sc.Logger = dblog.StdLogger(lg.With("component", "serf"))
	sc.SnapshotPath = filepath.Join(cfg.DataDir, "serf.snapshot")
	sc.RejoinAfterLeave = true
	s, err := serf.Create(sc)
	if err != nil {
		return nil, fmt.Errorf("node: start gossip on %s: %w", cfg.GossipAddr, err)
	}
	m.serf = s
	return m, nil
}

func (m *membership) tagsCopy() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]string, len(m.tags))
	for k, v := range m.tags {
		out[k] = v
	}
	return out
}

// setTag publishes a changed tag value; unchanged values are not gossiped.
func (m *membership) setTag(k, v string) {
	m.mu.Lock()
	if m.tags[k] == v {
		m.mu.Unlock()
		return
	}
	m.tags[k] = v
	m.mu.Unlock()
	if err := m.serf.SetTags(m.tagsCopy()); err != nil {
		m.lg.Warn("publish gossip tags", "err", err)
	}
}

// run consumes gossip events and publishes the local leader set until ctx
// is done.
func (m *membership) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.n.leaders.changed:
			m.setTag(tagLed, joinShards(m.n.leaders.led()))
		case ev := <-m.events:
			me, ok := ev.(serf.MemberEvent)
			if !ok {
				continue
			}
			m.mu.Lock()
			for _, mem := range me.Members {
				switch me.Type {
				case serf.EventMemberJoin, serf.EventMemberUpdate:
					delete(m.downSince, mem.Name)
				case serf.EventMemberFailed, serf.EventMemberLeave:
					if _, ok := m.downSince[mem.Name]; !ok {
						m.downSince[mem.Name] = time.Now()
					}
				case serf.EventMemberReap:
					delete(m.downSince, mem.Name)
				}
			}
			m.mu.Unlock()
			if me.Type != serf.EventMemberUpdate {
				for _, mem := range me.Members {
					m.lg.Info("member "+strings.TrimPrefix(me.Type.String(), "member-"), "member", mem.Name, "addr", net.JoinHostPort(mem.Addr.String(), strconv.Itoa(int(mem.Port))))
				}
			}
		}
	}
}

// joinLoop joins the gossip pool through addrs, retrying every two seconds
// until one member answers or ctx is done.
func (m *membership) joinLoop(ctx context.Context, addrs []string) {
	if len(addrs) == 0 {
		return
	}
	for {
		n, err := m.serf.Join(addrs, true)
		if err == nil && n > 0 {
			m.lg.Info("joined cluster", "via", strings.Join(addrs, ","), "members", m.serf.NumNodes())
			return
		}
		m.lg.Warn("join failed, retrying", "via", strings.Join(addrs, ","), "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
	}
}

// leave announces a graceful leave and stops gossip.
func (m *membership) leave() error {
	if err := m.serf.Leave(); err != nil {
		m.lg.Warn("gossip leave", "err", err)
	}
	return m.serf.Shutdown()
}

// members returns every known member with its state, sorted by name.
func (m *membership) members() []Member {
	var out []Member
	for _, sm := range m.serf.Members() {
		mem := Member{
			Name:       sm.Name,
			HTTPAddr:   sm.Tags[tagHTTP],
			GRPCAddr:   sm.Tags[tagGRPC],
			RaftAddr:   sm.Tags[tagRaft],
			GossipAddr: net.JoinHostPort(sm.Addr.String(), strconv.Itoa(int(sm.Port))),
			Leads:      splitShards(sm.Tags[tagLed]),
			Stopping:   sm.Tags[tagStopping] == "1",
		}
		switch sm.Status {
		case serf.StatusAlive:
			mem.State = StateAlive
		case serf.StatusLeft, serf.StatusLeaving:
			mem.State = StateLeft
		default:
			mem.State = StateFailed
		}
		out = append(out, mem)
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// views returns the planner's view of every member at time now.
func (m *membership) views(now time.Time) []NodeView {
	mems := m.members()
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]NodeView, 0, len(mems))
	for _, mem := range mems {
		nv := NodeView{Name: mem.Name, Alive: mem.State == StateAlive}
		if !nv.Alive {
			since, ok := m.downSince[mem.Name]
			if !ok {
				since = now
				m.downSince[mem.Name] = now
			}
			nv.DownFor = now.Sub(since)
		}
		out = append(out, nv)
	}
	return out
}

// member returns the named member.
func (m *membership) member(name string) (Member, bool) {
	for _, mem := range m.members() {
		if mem.Name == name {
			return mem, true
		}
	}
	return Member{}, false
}

func joinShards(ids []ring.ShardID) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.FormatUint(uint64(id), 10)
	}
	return strings.Join(parts, ",")
}

func splitShards(s string) []ring.ShardID {
	var out []ring.ShardID
	for _, p := range strings.Split(s, ",") {
		if v, err := strconv.ParseUint(p, 10, 64); err == nil {
			out = append(out, ring.ShardID(v))
		}
	}
	sortShards(out)
	return out
}

func sortShards(ids []ring.ShardID) { slices.Sort(ids) }

// hasMeta reports whether the named member publishes a running meta
// replica.
func (m *membership) hasMeta(name string) bool {
	for _, sm := range m.serf.Members() {
		if sm.Name == name {
			return sm.Tags[tagMeta] == "1"
		}
	}
	return false
}
