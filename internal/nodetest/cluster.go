// Package nodetest starts in-process cave clusters for tests: real nodes
// (dragonboat NodeHosts over Pebble), each with its router and its gateway
// serving gRPC and REST on 127.0.0.1, wired as cmd/cave wires them.
//
//	c := nodetest.NewCluster(t, 3, nodetest.WithShards(4))
//	rev, err := c.Router(1).Put(ctx, "users/42", []byte("v"), nil)
//	resp, err := http.Get(c.HTTPURL(2) + "/api/v1/kv/users/42")
//
// NewCluster registers t.Cleanup to close every node, so callers never
// close a Cluster themselves. Each node logs to t.Log with its name as a
// prefix; the logs show when a test fails or runs with -v.
//
// dragonboat's logger is process-wide and set once (node/internal/dblog):
// its lines go to the first node ever started in the test binary, under
// that node's name, and vanish once that node's test has ended.
//
// A Cluster keeps no package-level state, so tests that use one may call
// t.Parallel. Its methods fail the test with t.Fatalf, so call them from
// the test's goroutine; Node, Router, HTTPURL and GRPCAddr may also be
// called from other goroutines for a node that exists and runs.
package nodetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cavedb/cave/audit"
	"github.com/cavedb/cave/gateway"
	"github.com/cavedb/cave/node"
	"github.com/cavedb/cave/ring"
	"github.com/cavedb/cave/router"
	"github.com/cavedb/cave/server"
)

// Option changes how NewCluster configures its nodes.
type Option func(*settings)

type settings struct {
	shards            int
	replicas          int
	deadNodeTimeout   time.Duration
	reconcileInterval time.Duration
	maxValueBytes     int
	httpReadTimeout   time.Duration
	logLevel          slog.Level
	timeout           time.Duration
	metaVoters        int
	kek               func(node string) []byte
	snapshotEntries   uint64
	acl               bool
	audit             io.Writer
	tls               bool
	watch             gateway.WatchConfig
	watchHistory      uint64
	// pickAddrs chooses a new member's Raft and gossip addresses; nil means
	// freeAddrs. Tests of the port retry set it.
	pickAddrs func(taken map[string]bool) (raft, gossip string, err error)
}

func defaultSettings() settings {
	nd, gw := node.DefaultConfig(), gateway.DefaultConfig()
	return settings{
		shards:            nd.Shards,
		replicas:          nd.Replicas,
		deadNodeTimeout:   nd.DeadNodeTimeout,
		reconcileInterval: 200 * time.Millisecond,
		maxValueBytes:     gw.MaxValueBytes,
		httpReadTimeout:   gw.HTTPReadTimeout,
		logLevel:          slog.LevelInfo,
		timeout:           60 * time.Second,
		watch:             gw.Watch,
		watchHistory:      nd.WatchHistoryRevisions,
	}
}

// WithShards sets the number of data shards created at bootstrap
// (--shards). Default: node.DefaultConfig's, 4.
func WithShards(k int) Option { return func(s *settings) { s.shards = k } }

// WithReplicas sets the replication factor of data shards (--replicas).
// Default: node.DefaultConfig's, 3.
func WithReplicas(r int) Option { return func(s *settings) { s.replicas = r } }

// WithMetaVoters sets the number of voting replicas of the meta shard.
// Default: node.DefaultConfig's, 5. A node holding a meta voter drains only
// once the other nodes can hold that many, so tests that drain a node of a
// small cluster lower it.
func WithMetaVoters(n int) Option { return func(s *settings) { s.metaVoters = n } }

// WithDeadNodeTimeout sets how long a node must be gone before its replicas
// are re-created elsewhere (--dead-node-timeout). Default:
// node.DefaultConfig's, 5 minutes, so that no test re-replicates by accident.
func WithDeadNodeTimeout(d time.Duration) Option {
	return func(s *settings) { s.deadNodeTimeout = d }
}

// WithReconcileInterval sets how often each node's reconciler runs.
// Default 200ms, a fifth of node.DefaultConfig's 1s, so that clusters form
// and heal quickly.
func WithReconcileInterval(d time.Duration) Option {
	return func(s *settings) { s.reconcileInterval = d }
}

// WithMaxValueBytes sets the gateways' largest accepted value
// (--max-value-bytes). Default: gateway.DefaultConfig's, 1 MiB.
func WithMaxValueBytes(n int) Option { return func(s *settings) { s.maxValueBytes = n } }

// WithHTTPReadTimeout sets how long the HTTP port waits for a whole
// request (--http-read-timeout). Default: gateway.DefaultConfig's.
func WithHTTPReadTimeout(d time.Duration) Option { return func(s *settings) { s.httpReadTimeout = d } }

// WithLogLevel sets the level of the nodes' logs. Default slog.LevelInfo.
func WithLogLevel(l slog.Level) Option { return func(s *settings) { s.logLevel = l } }

// WithSnapshotEntries sets how many applied entries make a replica take a
// snapshot and compact its Raft log (node.Expert.SnapshotEntries), so that
// tests can put snapshots on disk with few writes. Default:
// node.DefaultConfig's, 10000.
func WithSnapshotEntries(n uint64) Option { return func(s *settings) { s.snapshotEntries = n } }

// WithKEK sets the key-encryption key of each node's secrets keyring
// (--kek-file): kek returns it for the node named node ("node-<i>"), or nil
// for the default. Default: gateway.DevKEK, derived from the cluster id.
func WithKEK(kek func(node string) []byte) Option { return func(s *settings) { s.kek = kek } }

// WithACL turns access control on (gateway.AuthConfig.Enabled): callers
// authenticate with bearer tokens from Token and, with WithTLS, with client
// certificates from ClientTLS (ClientTLS(auth.RootUser) is an
// administrator). Default off, as in dev mode.
func WithACL() Option { return func(s *settings) { s.acl = true } }

// WithAuditLog makes every node write its audit log (--audit-log) to w,
// which must be safe for concurrent use. Default: no audit log.
func WithAuditLog(w io.Writer) Option { return func(s *settings) { s.audit = w } }

// WithWatch sets the gateways' watch limits and pacing. Default:
// gateway.DefaultWatchConfig.
func WithWatch(w gateway.WatchConfig) Option { return func(s *settings) { s.watch = w } }

// WithWatchHistory sets how many revisions of change events each shard
// keeps (--watch-history-revisions). Default: node.DefaultConfig's.
func WithWatchHistory(n uint64) Option { return func(s *settings) { s.watchHistory = n } }

// WithTimeout sets how long NewCluster, AddNode, Restart and the Wait
// helpers wait before failing the test. Default 60s.
func WithTimeout(d time.Duration) Option { return func(s *settings) { s.timeout = d } }

// Cluster is a set of in-process cave nodes. Node i is named "node-<i>";
// node 0 bootstraps the cluster and the others join through gossip.
type Cluster struct {
	t    testing.TB
	set  settings
	base string // parent of the nodes' data dirs
	sink *logSink
	// certs is the TLS material with WithTLS, else nil. Set by NewCluster.
	certs *certs

	mu      sync.Mutex // guards members and the running state of each
	members []*member
}

// member is one node of the cluster. Its addresses and data dir are fixed
// for its lifetime; the running parts are nil while it is stopped.
type member struct {
	name       string
	dir        string
	raftAddr   string
	gossipAddr string
	httpAddr   string
	grpcAddr   string
	bootstrap  bool
	lg         *slog.Logger

	srv   *server.Server // nil while stopped
	audit *audit.Logger
}

// NewCluster starts n nodes, node 0 with Bootstrap and the others joining
// through gossip, and returns once the cluster is stable as WaitStable
// defines it: every shard has a leader, every data shard min(n, replicas)
// voters and the meta shard a replica on every node, all started; every node is
// ready and knows each shard's hosts; and leaders have stopped moving. It
// fails the test after the timeout (WithTimeout), showing the last cluster
// view. t.Cleanup closes the cluster.
func NewCluster(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("nodetest: NewCluster needs at least one node, got %d", n)
	}
	s := defaultSettings()
	for _, o := range opts {
		o(&s)
	}
	// TempDir first: its removal must run after the cluster is closed, and
	// cleanups run last registered first.
	c := &Cluster{t: t, set: s, base: t.TempDir(), sink: &logSink{t: t}}
	if s.tls {
		c.certs = newCerts(t, c.base)
	}
	t.Cleanup(c.sink.stop)
	t.Cleanup(c.closeAll)
	start := time.Now()
	for range n {
		c.startNew()
	}
	c.WaitStable(t)
	t.Logf("nodetest: %d-node cluster ready in %s", n, since(start))
	return c
}

// N returns the number of nodes ever started, running or not.
func (c *Cluster) N() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.members)
}

// Name returns node i's name, "node-<i>".
func (c *Cluster) Name(i int) string {
	c.t.Helper()
	return c.member(i).name
}

// Index returns the index of the node named name, or -1.
func (c *Cluster) Index(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, m := range c.members {
		if m.name == name {
			return i
		}
	}
	return -1
}

// Running reports whether node i runs (it was not killed, or restarted
// since).
func (c *Cluster) Running(i int) bool {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.memberLocked(i).srv != nil
}

// RunningNodes returns the indexes of the running nodes, in order.
func (c *Cluster) RunningNodes() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []int
	for i, m := range c.members {
		if m.srv != nil {
			out = append(out, i)
		}
	}
	return out
}

// Node returns node i's node. It fails the test if node i is not running.
func (c *Cluster) Node(i int) *node.Node {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.memberLocked(i)
	if m.srv == nil {
		c.t.Fatalf("nodetest: %s is not running", m.name)
	}
	return m.srv.Node()
}

// Router returns node i's router. It fails the test if node i is not
// running.
func (c *Cluster) Router(i int) *router.Router {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.memberLocked(i)
	if m.srv == nil {
		c.t.Fatalf("nodetest: %s is not running", m.name)
	}
	return m.srv.Router()
}

// Gateway returns node i's gateway server. It fails the test if node i is
// not running.
func (c *Cluster) Gateway(i int) *gateway.Server {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.memberLocked(i)
	if m.srv == nil {
		c.t.Fatalf("nodetest: %s is not running", m.name)
	}
	return m.srv.Gateway()
}

// HTTPURL returns the base URL of node i's REST API, "http://HOST:PORT"
// (append "/api/v1/..."). It stays the same across restarts.
func (c *Cluster) HTTPURL(i int) string {
	c.t.Helper()
	if c.certs != nil {
		return "https://" + c.member(i).httpAddr
	}
	return "http://" + c.member(i).httpAddr
}

// GRPCAddr returns node i's gRPC address, HOST:PORT. It stays the same
// across restarts.
func (c *Cluster) GRPCAddr(i int) string {
	c.t.Helper()
	return c.member(i).grpcAddr
}

// DataDir returns node i's data directory (Pebble, Raft log, snapshots).
// It stays the same across restarts; read it only while the node is
// stopped if the content matters.
func (c *Cluster) DataDir(i int) string {
	c.t.Helper()
	return c.member(i).dir
}

func (c *Cluster) member(i int) *member {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.memberLocked(i)
}

func (c *Cluster) memberLocked(i int) *member {
	c.t.Helper()
	if i < 0 || i >= len(c.members) {
		c.t.Fatalf("nodetest: no node %d in a cluster of %d", i, len(c.members))
	}
	return c.members[i]
}

// AddNode starts a new node that joins through the running nodes' gossip
// addresses, waits until it is ready (it reads cluster metadata from its
// own meta replica) and returns its index. It does not wait for data shard
// replicas: use WaitReplicas or WaitStable.
func (c *Cluster) AddNode() int {
	c.t.Helper()
	i := c.startNew()
	c.waitReady(i)
	return i
}

// Kill stops node i as abruptly as an in-process node allows: its gateway
// stops at once, dropping open gRPC streams, and then its node closes. Note
// that node.Close hands leadership to other voters and leaves the gossip
// pool first, so Kill is a fast graceful stop, not a crash; the
// multi-process tests in test/e2e crash nodes with SIGKILL. The node's data
// dir and addresses are kept for Restart.
func (c *Cluster) Kill(i int) {
	c.t.Helper()
	m := c.member(i)
	if !c.Running(i) {
		c.t.Fatalf("nodetest: Kill(%d): %s is not running", i, m.name)
	}
	start := time.Now()
	if err := c.stop(m); err != nil {
		c.t.Logf("nodetest: %s closed with error: %v", m.name, err)
	}
	c.t.Logf("nodetest: %s killed in %s", m.name, since(start))
}

// Restart starts the stopped node i again on its data dir and addresses,
// with Bootstrap set if it is node 0 (a no-op on existing data, as with
// cave --bootstrap) and joining through the running nodes, and waits until
// it is ready. It does not wait for its replicas to catch up.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	m := c.member(i)
	if c.Running(i) {
		c.t.Fatalf("nodetest: Restart(%d): %s is running; Kill it first", i, m.name)
	}
	start := time.Now()
	httpLn, err := net.Listen("tcp", m.httpAddr)
	if err != nil {
		c.t.Fatalf("nodetest: restart %s: listen on its HTTP address again: %v", m.name, err)
	}
	grpcLn, err := net.Listen("tcp", m.grpcAddr)
	if err != nil {
		httpLn.Close()
		c.t.Fatalf("nodetest: restart %s: listen on its gRPC address again: %v", m.name, err)
	}
	if err := c.start(m, httpLn, grpcLn); err != nil {
		c.t.Fatalf("nodetest: restart %s: %v", m.name, err)
	}
	c.waitReady(i)
	c.t.Logf("nodetest: %s restarted and ready in %s", m.name, since(start))
}

// startAttempts bounds how often startNew tries fresh ports for one node.
const startAttempts = 5

// startNew creates, starts and appends a new member. Ports are chosen
// free, but another process may take one between choosing and binding it:
// the HTTP and gRPC listeners are held from the start, while dragonboat
// binds Raft and memberlist binds gossip (TCP, then UDP) inside node.New.
// A start that fails because any of these is in use is retried, up to
// startAttempts times, on fresh ports and a fresh data dir.
func (c *Cluster) startNew() int {
	c.t.Helper()
	c.mu.Lock()
	i := len(c.members)
	c.mu.Unlock()
	name := "node-" + strconv.Itoa(i)
	var err error
	for range startAttempts {
		var m *member
		if m, err = c.newMember(name, i == 0); err == nil {
			c.mu.Lock()
			c.members = append(c.members, m)
			c.mu.Unlock()
			return i
		}
		if !addrInUse(err) {
			break
		}
		c.t.Logf("nodetest: %s: port taken between choosing and binding it, retrying: %v", name, err)
	}
	c.t.Fatalf("nodetest: start %s: %v", name, err)
	return -1
}

// addrInUse reports whether err is a failure to bind an address already
// in use. memberlist and dragonboat flatten the errors they return into
// text, so the message is matched as well as the errno.
func addrInUse(err error) bool {
	return errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use")
}

func (c *Cluster) newMember(name string, bootstrap bool) (*member, error) {
	dir, err := os.MkdirTemp(c.base, name+"-")
	if err != nil {
		return nil, err
	}
	pick := c.set.pickAddrs
	if pick == nil {
		pick = freeAddrs
	}
	raftAddr, gossipAddr, err := pick(c.addrsInUse())
	if err != nil {
		return nil, err
	}
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	grpcLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		httpLn.Close()
		return nil, err
	}
	m := &member{
		name:       name,
		dir:        dir,
		raftAddr:   raftAddr,
		gossipAddr: gossipAddr,
		httpAddr:   httpLn.Addr().String(),
		grpcAddr:   grpcLn.Addr().String(),
		bootstrap:  bootstrap,
		lg:         c.sink.logger(name, c.set.logLevel),
	}
	if err := c.start(m, httpLn, grpcLn); err != nil {
		return nil, err
	}
	return m, nil
}

// addrsInUse returns every address of the cluster's members, stopped ones
// included: a stopped member binds its addresses again on Restart, so no
// new member may take them while they are free.
func (c *Cluster) addrsInUse() map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	taken := make(map[string]bool, 4*len(c.members))
	for _, m := range c.members {
		for _, a := range []string{m.raftAddr, m.gossipAddr, m.httpAddr, m.grpcAddr} {
			taken[a] = true
		}
	}
	return taken
}

// freeAddrs returns two distinct free loopback addresses, none of them in
// taken: one for Raft (TCP) and one for gossip (TCP and UDP on the same
// port). Their listeners are closed before returning, so another process
// may take them before the node binds them; startNew retries then.
func freeAddrs(taken map[string]bool) (raft, gossip string, err error) {
	// Every candidate stays bound until the end, so none is offered twice.
	var held []io.Closer
	defer func() {
		for _, h := range held {
			h.Close()
		}
	}()
	next := func(udp bool) (string, error) {
		for range 20 {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return "", err
			}
			held = append(held, l)
			addr := l.Addr().String()
			if taken[addr] {
				continue
			}
			if udp {
				pc, err := net.ListenPacket("udp", addr)
				if err != nil {
					continue
				}
				held = append(held, pc)
			}
			return addr, nil
		}
		return "", errors.New("nodetest: no free loopback port in 20 tries")
	}
	if raft, err = next(false); err != nil {
		return "", "", err
	}
	if gossip, err = next(true); err != nil {
		return "", "", err
	}
	return raft, gossip, nil
}

// start runs m's node, router and gateway on the given listeners, joining
// through the gossip addresses of the other running members (their gRPC
// addresses with WithTLS). On error it closes what it opened, the listeners
// included.
func (c *Cluster) start(m *member, httpLn, grpcLn net.Listener) error {
	var join []string
	c.mu.Lock()
	for _, o := range c.members {
		if o != m && o.srv != nil {
			if c.certs != nil {
				join = append(join, o.grpcAddr)
			} else {
				join = append(join, o.gossipAddr)
			}
		}
	}
	c.mu.Unlock()
	fail := func(err error) error {
		httpLn.Close()
		grpcLn.Close()
		return err
	}

	tlsSrc, err := c.certs.source(m.lg)
	if err != nil {
		return fail(err)
	}
	reg, err := server.NewRegistry()
	if err != nil {
		return fail(err)
	}
	// As cmd/cave does: one registry per running node, and logs teed into
	// the buffer behind /api/v1/perf/logs.
	lg, logs := server.NewLogger(m.lg.Handler(), c.set.logLevel)
	cfg := server.DefaultConfig()
	cfg.Logger, cfg.Registry, cfg.TLS = lg, reg, tlsSrc
	cfg.HTTPListener, cfg.GRPCListener = httpLn, grpcLn
	nc := &cfg.Node
	if c.certs != nil {
		nc.TLS = c.certs.files()
	}
	nc.Name = m.name
	nc.DataDir = m.dir
	nc.RaftAddr = m.raftAddr
	nc.GossipAddr = m.gossipAddr
	nc.HTTPAddr = m.httpAddr
	nc.GRPCAddr = m.grpcAddr
	nc.Bootstrap = m.bootstrap
	nc.WatchHistoryRevisions = c.set.watchHistory
	nc.Join = join
	nc.Shards = c.set.shards
	nc.Replicas = c.set.replicas
	if c.set.metaVoters > 0 {
		nc.MetaVoters = c.set.metaVoters
	}
	nc.DeadNodeTimeout = c.set.deadNodeTimeout
	nc.ReconcileInterval = c.set.reconcileInterval
	if c.set.snapshotEntries > 0 {
		nc.Expert.SnapshotEntries = c.set.snapshotEntries
		nc.Expert.CompactionOverhead = min(nc.Expert.CompactionOverhead, c.set.snapshotEntries/2)
	}
	gc := &cfg.Gateway
	gc.MaxValueBytes = c.set.maxValueBytes
	gc.Watch = c.set.watch
	gc.HTTPReadTimeout = c.set.httpReadTimeout
	gc.Logs = logs
	gc.System = gateway.SystemInfo{Version: "test", Commit: "test", BuildDate: "test", Mode: "test", Insecure: tlsSrc == nil, DataDir: m.dir}
	if c.set.kek != nil {
		if kek := c.set.kek(m.name); kek != nil {
			gc.Secrets.KEK = func(context.Context) ([]byte, error) { return kek, nil }
		}
	}
	gc.Auth.Enabled = c.set.acl
	if c.set.audit != nil {
		acfg := audit.DefaultConfig()
		acfg.Writer, acfg.Logger = c.set.audit, lg
		if gc.Auth.Audit, err = audit.New(acfg); err != nil {
			return fail(err)
		}
	}
	srv, err := server.New(cfg)
	if err != nil {
		return errors.Join(err, gc.Auth.Audit.Close())
	}
	c.mu.Lock()
	m.srv, m.audit = srv, gc.Auth.Audit
	c.mu.Unlock()
	return nil
}

// Token returns a bearer token for user, which must exist, issued by node
// i without an access check and valid for ttl. It waits, up to the
// cluster's timeout, for the access policy to be created at bootstrap.
// The bootstrap policy has the user auth.RootUser, an administrator.
func (c *Cluster) Token(i int, user string, ttl time.Duration) string {
	c.t.Helper()
	c.mu.Lock()
	srv := c.memberLocked(i).srv
	c.mu.Unlock()
	if srv == nil {
		c.t.Fatalf("nodetest: Token(%d): node is not running", i)
	}
	gw := srv.Gateway()
	var tok string
	Eventually(c.t, c.set.timeout, fmt.Sprintf("nodetest: issue a token for %q on node %d", user, i), func(ctx context.Context) string {
		var err error
		tok, err = gw.IssueToken(ctx, user, ttl)
		switch {
		case err == nil:
			return ""
		case status.Code(err) != codes.Unavailable:
			c.t.Fatalf("nodetest: issue a token for %q on node %d: %v", user, i, err)
		}
		return err.Error()
	})
	return tok
}

// stop shuts m's gateway down at once, then closes its node and its peer
// connections. It is a no-op for a stopped member.
func (c *Cluster) stop(m *member) error {
	c.mu.Lock()
	srv, al := m.srv, m.audit
	m.srv, m.audit = nil, nil
	c.mu.Unlock()
	if srv == nil {
		return nil
	}
	// A done context makes Shutdown close the listeners and idle
	// connections and stop gRPC without waiting for requests in flight.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return errors.Join(srv.Stop(ctx, 0), al.Close())
}

// closeAll stops every running member. All but one close at once, so
// their leadership hand-overs overlap; the one left running gives their
// gossip leave messages a live receiver (memberlist waits its whole
// broadcast timeout, 5s, for a leave that no live member can receive).
// The survivor closes last.
func (c *Cluster) closeAll() {
	start := time.Now()
	c.mu.Lock()
	var ms []*member
	for _, m := range c.members {
		if m.srv != nil {
			ms = append(ms, m)
		}
	}
	c.mu.Unlock()
	if len(ms) == 0 {
		return
	}
	stop := func(m *member) {
		if err := c.stop(m); err != nil {
			c.t.Logf("nodetest: %s closed with error: %v", m.name, err)
		}
	}
	var wg sync.WaitGroup
	for _, m := range ms[1:] {
		wg.Go(func() { stop(m) })
	}
	wg.Wait()
	stop(ms[0])
	c.t.Logf("nodetest: cluster closed in %s", since(start))
}

// running is one running member as seen at one moment.
type running struct {
	idx  int
	name string
	node *node.Node
}

func (c *Cluster) running() []running {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []running
	for i, m := range c.members {
		if m.srv != nil {
			out = append(out, running{i, m.name, m.srv.Node()})
		}
	}
	return out
}

// shards returns the cluster view of the first running node that answers.
func (c *Cluster) shards(ctx context.Context, run []running) ([]node.ShardStatus, error) {
	var errs []error
	for _, r := range run {
		ss, err := r.node.Shards(ctx)
		if err == nil {
			return ss, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", r.name, err))
	}
	if len(errs) == 0 {
		return nil, errors.New("no node is running")
	}
	return nil, errors.Join(errs...)
}

// Eventually calls check until it reports nothing wrong (returns "") and
// fails t with what and check's last complaint when timeout passes or t's
// context ends first. check gets a context that ends at the deadline.
func Eventually(t testing.TB, timeout time.Duration, what string, check func(ctx context.Context) string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	start := time.Now()
	last := ""
	for {
		if last = check(ctx); last == "" {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not done after %s: %s", what, since(start), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// WaitStable waits until the rebalancer has no move in flight and none to
// start (unless it is paused), every shard has a leader on a running node, every
// data shard has min(running nodes, replicas) replicas on running nodes and
// the meta shard one on every running node, each started there, every
// running node is ready and knows every shard's running replicas, and no
// leader has moved for three reconcile intervals (the reconciler spreads
// leadership one shard per round, and a write that reaches a follower while
// its leader hands over waits out the propose timeout). Replicas still
// recorded on stopped nodes are tolerated: the reconciler keeps them until
// the dead-node timeout passes and a spare node exists. It fails t after
// the cluster's timeout, showing the last cluster view.
func (c *Cluster) WaitStable(t testing.TB) {
	t.Helper()
	var (
		leaders string    // shard leaders at the last check
		since   time.Time // when they last changed
	)
	Eventually(t, c.set.timeout, "nodetest: cluster not stable", func(ctx context.Context) string {
		problem, ss := c.unstable(ctx)
		if problem != "" {
			leaders = ""
			return problem
		}
		now := leaderMap(ss)
		if now != leaders {
			leaders, since = now, time.Now()
		}
		if settle := 3 * c.set.reconcileInterval; time.Since(since) < settle {
			return fmt.Sprintf("leaders moved within the last %s: %s", settle, leaders)
		}
		return ""
	})
}

func leaderMap(ss []node.ShardStatus) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = fmt.Sprintf("%d:%s", s.ID, s.Leader)
	}
	return strings.Join(parts, " ")
}

// unstable returns what keeps the cluster from being stable, apart from
// moving leaders, and the cluster view it judged.
func (c *Cluster) unstable(ctx context.Context) (string, []node.ShardStatus) {
	run := c.running()
	var problems []string
	for _, r := range run {
		if err := r.node.Ready(ctx); err != nil {
			problems = append(problems, fmt.Sprintf("%s not ready: %v", r.name, err))
		}
	}
	if len(problems) > 0 {
		return strings.Join(problems, "; "), nil
	}
	ss, err := c.shards(ctx, run)
	if err != nil {
		return "reading shards: " + err.Error(), nil
	}
	// The rebalancer is done: no move in flight and none it would start.
	// Otherwise leaders and replicas keep moving after the wait, and a test
	// meets the brief unavailability of a leader transfer.
	if st, err := run[0].node.Moves(ctx); err != nil {
		problems = append(problems, fmt.Sprintf("%s: moves: %v", run[0].name, err))
	} else if len(st.Moves) > 0 {
		problems = append(problems, fmt.Sprintf("%d moves in flight", len(st.Moves)))
	} else if plan, err := run[0].node.Plan(ctx); err != nil {
		problems = append(problems, fmt.Sprintf("%s: plan: %v", run[0].name, err))
	} else if len(plan) > 0 && !st.Paused {
		problems = append(problems, fmt.Sprintf("%d moves planned, the first: %s", len(plan), plan[0]))
	}
	if len(ss) != c.set.shards+1 {
		problems = append(problems, fmt.Sprintf("%d shards listed, want %d", len(ss), c.set.shards+1))
	}
	byName := map[string]*node.Node{}
	for _, r := range run {
		byName[r.name] = r.node
	}
	for _, s := range ss {
		want := min(len(run), c.set.replicas)
		if s.ID == ring.MetaShard {
			want = len(run)
		}
		if byName[s.Leader] == nil {
			problems = append(problems, fmt.Sprintf("shard %d has no leader on a running node", s.ID))
		}
		have := 0
		for _, r := range s.Replicas {
			if nd := byName[r.Node]; nd != nil {
				have++
				if !nd.HasReplica(s.ID) {
					problems = append(problems, fmt.Sprintf("shard %d replica %d not started on %s", s.ID, r.ID, r.Node))
				}
			}
		}
		if have < want {
			problems = append(problems, fmt.Sprintf("shard %d has %d replicas on running nodes, want %d", s.ID, have, want))
			continue
		}
		if s.ID == ring.MetaShard {
			continue
		}
		if voters := countVoters(s, byName); voters < want {
			// A learner on its way to being a voter does not count: the
			// shard could not lose a node yet.
			problems = append(problems, fmt.Sprintf("shard %d has %d voters on running nodes, want %d", s.ID, voters, want))
			continue
		}
		for _, r := range run {
			if got := len(r.node.ShardHosts(s.ID)); got < want {
				problems = append(problems, fmt.Sprintf("%s knows %d hosts of shard %d, want %d", r.name, got, s.ID, want))
			}
		}
	}
	if len(problems) == 0 {
		return "", ss
	}
	return strings.Join(problems, "; ") + "\nlast view: " + FormatShards(ss), ss
}

// countVoters returns how many of s's voters are on nodes in running.
func countVoters(s node.ShardStatus, running map[string]*node.Node) int {
	n := 0
	for _, r := range s.Replicas {
		if r.Role == node.RoleVoter && running[r.Node] != nil {
			n++
		}
	}
	return n
}

// WaitReplicas waits until shard id has exactly n replicas, all on distinct
// running nodes and started there, its leader among them, and every running
// node names all n as the shard's hosts. It fails t after the cluster's
// timeout, showing the last cluster view.
func (c *Cluster) WaitReplicas(t testing.TB, id ring.ShardID, n int) {
	t.Helper()
	Eventually(t, c.set.timeout, fmt.Sprintf("nodetest: shard %d does not have %d replicas", id, n), func(ctx context.Context) string {
		run := c.running()
		ss, err := c.shards(ctx, run)
		if err != nil {
			return "reading shards: " + err.Error()
		}
		i := slices.IndexFunc(ss, func(s node.ShardStatus) bool { return s.ID == id })
		if i < 0 {
			return "shard not listed; last view: " + FormatShards(ss)
		}
		s := ss[i]
		byName := map[string]*node.Node{}
		for _, r := range run {
			byName[r.name] = r.node
		}
		var problems []string
		seen := map[string]bool{}
		for _, r := range s.Replicas {
			nd := byName[r.Node]
			switch {
			case nd == nil:
				problems = append(problems, fmt.Sprintf("replica %d is on %s, which is not running", r.ID, r.Node))
			case seen[r.Node]:
				problems = append(problems, fmt.Sprintf("two replicas on %s", r.Node))
			case !nd.HasReplica(id):
				problems = append(problems, fmt.Sprintf("replica %d not started on %s", r.ID, r.Node))
			}
			seen[r.Node] = true
		}
		if len(s.Replicas) != n {
			problems = append(problems, fmt.Sprintf("%d replicas, want %d", len(s.Replicas), n))
		}
		if !seen[s.Leader] || byName[s.Leader] == nil {
			problems = append(problems, fmt.Sprintf("leader %q is not a running replica", s.Leader))
		}
		if id != ring.MetaShard {
			for _, r := range run {
				if got := len(r.node.ShardHosts(id)); got != n {
					problems = append(problems, fmt.Sprintf("%s knows %d hosts, want %d", r.name, got, n))
				}
			}
		}
		if len(problems) == 0 {
			return ""
		}
		return strings.Join(problems, "; ") + "\nlast view: " + FormatShards(ss)
	})
}

// WaitLeader waits until a running node hosts the leader of shard id and
// returns that node's name. Each running node is asked in turn, so the
// leader comes from a local Raft view where one exists. It fails the test
// when ctx ends, or after the cluster's timeout if ctx has no deadline.
func (c *Cluster) WaitLeader(ctx context.Context, id ring.ShardID) string {
	c.t.Helper()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.set.timeout)
		defer cancel()
	}
	start := time.Now()
	last := ""
	for {
		run := c.running()
		// Nodes hosting the shard know its leader first hand; ask them first.
		slices.SortStableFunc(run, func(a, b running) int {
			return cmpBool(b.node.HasReplica(id), a.node.HasReplica(id))
		})
		names := map[string]bool{}
		for _, r := range run {
			names[r.name] = true
		}
		for _, r := range run {
			ss, err := r.node.Shards(ctx)
			if err != nil {
				last = fmt.Sprintf("%s: %v", r.name, err)
				continue
			}
			for _, s := range ss {
				if s.ID == id && names[s.Leader] {
					return s.Leader
				}
			}
			last = fmt.Sprintf("%s sees: %s", r.name, FormatShards(ss))
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("nodetest: shard %d has no leader on a running node after %s; last: %s", id, since(start), last)
			return ""
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// waitReady waits until node i answers Ready.
func (c *Cluster) waitReady(i int) {
	c.t.Helper()
	nd, name := c.Node(i), c.Name(i)
	Eventually(c.t, c.set.timeout, "nodetest: "+name+" not ready", func(ctx context.Context) string {
		if err := nd.Ready(ctx); err != nil {
			return err.Error()
		}
		return ""
	})
}

// FormatShards renders a cluster view on one line for failure messages:
// "shard 1 leader=node-0 keys=3 [node-0#1 node-1#4 node-2#7(learner)]".
func FormatShards(ss []node.ShardStatus) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		reps := make([]string, len(s.Replicas))
		for j, r := range s.Replicas {
			reps[j] = fmt.Sprintf("%s#%d", r.Node, r.ID)
			if r.Role != node.RoleVoter {
				reps[j] += "(" + r.Role.String() + ")"
			}
		}
		parts[i] = fmt.Sprintf("shard %d leader=%s keys=%d [%s]", s.ID, s.Leader, s.Keys, strings.Join(reps, " "))
	}
	return strings.Join(parts, "; ")
}

// since returns the time elapsed since start, rounded for messages.
func since(start time.Time) time.Duration { return time.Since(start).Round(time.Millisecond) }
