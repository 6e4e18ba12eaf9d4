package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	keys   *gossipKeys // nil when gossip is not encrypted (no TLS)

	mu        sync.Mutex // guards downSince and tags
	downSince map[string]time.Time
	tags      map[string]string

	// snap is the member list as of the last gossip event (refresh): the
	// request path reads it without asking serf, which copies every
	// member's tags.
	snap atomic.Pointer[[]Member]
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
	var keys *gossipKeys
	if cfg.TLS.enabled() {
		keys, err = openGossipKeys(filepath.Join(cfg.DataDir, gossipKeyFile), len(cfg.Join) == 0, lg)
		if err != nil {
			return nil, err
		}
		ml.Keyring = keys.ring
	}
	m := &membership{
		keys:      keys,
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
	m.refresh()
}

// membersRefresh is how often run refreshes the member list even without
// a gossip event, as a safety net.
const membersRefresh = time.Second

// run consumes gossip events and publishes the local leader set until ctx
// is done.
func (m *membership) run(ctx context.Context) {
	tick := time.NewTicker(membersRefresh)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			m.refresh()
		case <-m.n.leaders.changed:
			m.setTag(tagLed, joinShards(m.n.leaders.led()))
		case ev := <-m.events:
			m.refresh()
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
// until one member answers or ctx is done. With encrypted gossip, addrs are
// gRPC addresses: each is asked for its gossip address (and the key, if
// this node lacks it) first.
func (m *membership) joinLoop(ctx context.Context, addrs []string) {
	if len(addrs) == 0 {
		return
	}
	for {
		gossip, err := addrs, error(nil)
		if m.keys != nil {
			gossip, err = m.joinInfo(ctx, addrs)
		}
		if err == nil {
			var n int
			n, err = m.serf.Join(gossip, true)
			if err == nil && n > 0 {
				m.lg.Info("joined cluster", "via", strings.Join(addrs, ","), "members", m.serf.NumNodes())
				return
			}
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

// members returns every known member with its state, sorted by name, as
// of the last gossip event. The caller must not modify the slice.
func (m *membership) members() []Member {
	if p := m.snap.Load(); p != nil {
		return *p
	}
	return m.refresh()
}

// refresh reads the member list from serf into the snapshot members
// returns, and returns it.
func (m *membership) refresh() []Member {
	out := m.read()
	m.snap.Store(&out)
	return out
}

// read returns every member serf knows with its state, sorted by name.
func (m *membership) read() []Member {
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

// gossipKeyFile is the name of the gossip key's file in the data dir.
const gossipKeyFile = "gossip.key"

// gossipKeyBytes is the length of the gossip key: AES-256.
const gossipKeyBytes = 32

// joinInfoTimeout bounds one Peer.JoinInfo call.
const joinInfoTimeout = 5 * time.Second

// gossipKeys is the gossip keyring and its file. Until the cluster's key is
// known (a joining node before its first JoinInfo answer), the keyring
// holds a random key shared with nobody.
type gossipKeys struct {
	ring  *memberlist.Keyring
	path  string
	lg    *slog.Logger
	known atomic.Bool

	installMu sync.Mutex // serialises install
}

// openGossipKeys loads the key from path. When the file is missing it
// generates and writes a new key if generate is set (a node that starts a
// cluster), and otherwise starts with an unshared random key for install
// to replace.
func openGossipKeys(path string, generate bool, lg *slog.Logger) (*gossipKeys, error) {
	k := &gossipKeys{path: path, lg: lg}
	key, err := os.ReadFile(path)
	switch {
	case err == nil:
		if len(key) != gossipKeyBytes {
			return nil, fmt.Errorf("node: gossip key file %s holds %d bytes, want %d", path, len(key), gossipKeyBytes)
		}
		k.known.Store(true)
	case errors.Is(err, fs.ErrNotExist):
		key = make([]byte, gossipKeyBytes)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("node: generate gossip key: %w", err)
		}
		if generate {
			if err := writeKeyFile(path, key); err != nil {
				return nil, err
			}
			k.known.Store(true)
			lg.Info("gossip key generated", "file", path)
		}
	default:
		return nil, fmt.Errorf("node: read gossip key: %w", err)
	}
	ring, err := memberlist.NewKeyring(nil, key)
	if err != nil {
		return nil, fmt.Errorf("node: gossip keyring: %w", err)
	}
	k.ring = ring
	return k, nil
}

// writeKeyFile creates path with mode 0600 holding key, durably. It never
// replaces an existing file.
func writeKeyFile(path string, key []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("node: write gossip key: %w", err)
	}
	_, err = f.Write(key)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("node: write gossip key: %w", err)
	}
	return nil
}

// current returns the cluster's gossip key, or nil while it is not known.
func (k *gossipKeys) current() []byte {
	if !k.known.Load() {
		return nil
	}
	return k.ring.GetPrimaryKey()
}

// install makes key, learned from a member, the gossip key: it is written
// to the data dir first, then replaces the unshared key in the keyring. A
// node that already knows the key keeps its own; a member answering with a
// different one is reported.
func (k *gossipKeys) install(key []byte) error {
	if len(key) != gossipKeyBytes {
		return fmt.Errorf("node: member sent a gossip key of %d bytes, want %d", len(key), gossipKeyBytes)
	}
	k.installMu.Lock()
	defer k.installMu.Unlock()
	old := k.ring.GetPrimaryKey()
	if k.known.Load() {
		if !bytes.Equal(old, key) {
			return errors.New("node: member uses a different gossip key than this node's " + gossipKeyFile)
		}
		return nil
	}
	if err := writeKeyFile(k.path, key); err != nil {
		return err
	}
	if err := k.ring.AddKey(key); err != nil {
		return fmt.Errorf("node: gossip keyring: %w", err)
	}
	if err := k.ring.UseKey(key); err != nil {
		return fmt.Errorf("node: gossip keyring: %w", err)
	}
	if err := k.ring.RemoveKey(old); err != nil {
		return fmt.Errorf("node: gossip keyring: %w", err)
	}
	k.known.Store(true)
	k.lg.Info("gossip key received", "file", k.path)
	return nil
}

// joinInfo asks each gRPC address in addrs for its gossip address, and for
// the gossip key while this node lacks it. It returns the gossip addresses
// of the members that answered, or why none did.
func (m *membership) joinInfo(ctx context.Context, addrs []string) ([]string, error) {
	var gossip []string
	var errs []error
	for _, addr := range addrs {
		cctx, cancel := context.WithTimeout(ctx, joinInfoTimeout)
		gossipAddr, key, err := m.n.peers.JoinInfo(cctx, addr)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("join info from %s (with TLS, --join names gRPC addresses): %w", addr, err))
			continue
		}
		if err := m.keys.install(key); err != nil {
			errs = append(errs, fmt.Errorf("join info from %s: %w", addr, err))
			continue
		}
		gossip = append(gossip, gossipAddr)
	}
	if len(gossip) == 0 {
		return nil, errors.Join(errs...)
	}
	return gossip, nil
}

// JoinInfo returns this node's advertised gossip address and the gossip key
// (nil when gossip is not encrypted), for a node that joins through this
// one. It fails with ErrNotReady while this node has not learned the key
// itself. The caller must hand the key only to authenticated nodes.
func (n *Node) JoinInfo() (string, []byte, error) {
	lm := n.ms.serf.LocalMember()
	addr := net.JoinHostPort(lm.Addr.String(), strconv.Itoa(int(lm.Port)))
	if n.ms.keys == nil {
		return addr, nil, nil
	}
	key := n.ms.keys.current()
	if key == nil {
		return "", nil, fmt.Errorf("%w: this node has not received the gossip key yet", ErrNotReady)
	}
	return addr, key, nil
}
