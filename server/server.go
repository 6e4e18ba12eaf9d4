// Package server assembles one cave node: the peer connection pool, the
// node (Raft host, gossip, reconciler), the router and the gateway (gRPC
// and REST), started and stopped in order. It is the only place that wires
// the layers together; cmd/cave and internal/nodetest both build nodes
// through it. See docs/architecture.md for the layers.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"

	"github.com/cavedb/cave/gateway"
	"github.com/cavedb/cave/internal/logbuf"
	"github.com/cavedb/cave/node"
	"github.com/cavedb/cave/peer"
	"github.com/cavedb/cave/router"
	"github.com/cavedb/cave/tlsconfig"
)

// Config configures a Server. Node, Router and Gateway are the layers' own
// configs; New fills in the collaborators that link them (node.Config's
// Peers, Logger, Metrics and MetaNamespaces; router.Config's Backend,
// Forwarder, Logger and Metrics; gateway.Config's Router, Cluster, Peer,
// Logger, Metrics, Gatherer, TLS, Secrets.Meta and Auth.Meta), so callers
// set only what an operator chooses. A nil Gateway.Secrets.KEK means the
// development key derived from the cluster id (gateway.DevKEK), which
// protects nothing: production passes --kek-file's key.
type Config struct {
	Node    node.Config
	Router  router.Config
	Gateway gateway.Config
	// TLS is the node's certificate material (--tls-*), used by the gRPC
	// and HTTP ports and by the connections to other nodes; nil serves and
	// dials in plaintext (--insecure, dev mode). Node.TLS names the same
	// files for the Raft transport.
	TLS *tlsconfig.Source
	// HTTPListener and GRPCListener are the bound API ports. Required; New
	// takes them over and Stop closes them.
	HTTPListener, GRPCListener net.Listener
	// Logger receives every layer's logs. Required.
	Logger *slog.Logger
	// Registry holds every layer's metrics and is what
	// /api/v1/perf/metrics serves (NewRegistry makes one). Required.
	Registry *prometheus.Registry
}

// DefaultConfig returns the layers' default configs.
func DefaultConfig() Config {
	return Config{Node: node.DefaultConfig(), Router: router.DefaultConfig(), Gateway: gateway.DefaultConfig()}
}

// Validate checks what New needs beyond the layers' own Validate, which
// New calls as it builds each layer, and the settings of the router and
// the gateway (their ValidateSettings), which New checks together with
// the node's config before anything is written to the data dir.
func (c Config) Validate() error {
	errs := []error{c.Router.ValidateSettings(), c.Gateway.ValidateSettings()}
	if c.HTTPListener == nil || c.GRPCListener == nil {
		errs = append(errs, errors.New("server: HTTPListener and GRPCListener must be set"))
	}
	if c.Logger == nil {
		errs = append(errs, errors.New("server: Logger must be set"))
	}
	if c.Registry == nil {
		errs = append(errs, errors.New("server: Registry must be set"))
	}
	return errors.Join(errs...)
}

// NewRegistry returns a metrics registry with the Go runtime and process
// collectors, for Config.Registry. Give each node its own.
func NewRegistry() (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, err
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, err
	}
	return reg, nil
}

// logBufferEntries is how many recent log records /api/v1/perf/logs keeps.
const logBufferEntries = 2000

// NewLogger returns a logger that writes records at level or above to h
// and into the returned buffer, which serves /api/v1/perf/logs (set it as
// Config.Gateway.Logs).
func NewLogger(h slog.Handler, level slog.Level) (*slog.Logger, *logbuf.Buffer) {
	buf := logbuf.NewBuffer(logBufferEntries)
	return slog.New(logbuf.NewHandler(h, buf, level)), buf
}

// Server is one running node with its APIs.
type Server struct {
	peers *peer.Pool
	node  *node.Node
	rt    *router.Router
	gw    *gateway.Server
}

// New builds the layers bottom up and starts serving on the listeners. It
// returns once the node runs and the APIs accept requests; the node may not
// be ready yet (see node.Node.Ready). Every setting of every layer is
// validated first, all problems reported at once, so a refused config
// leaves the data dir untouched. On error it closes what it started, the
// listeners included, and returns the first layer's error.
func New(cfg Config) (*Server, error) {
	// The pool carries forwarded values: allow the largest the gateway
	// accepts, with room for the envelope of a secret.
	peers := peer.New(peer.TransportCredentials(cfg.TLS),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(max(cfg.Gateway.MaxValueBytes, 0)+64<<10)))
	pc := peer.NewClient(peers)

	ncfg := cfg.Node
	ncfg.Peers, ncfg.Logger, ncfg.Metrics = pc, cfg.Logger, cfg.Registry
	ncfg.MetaNamespaces = gateway.MetaNamespaces()
	if err := errors.Join(cfg.Validate(), ncfg.Validate()); err != nil {
		closeListeners(cfg)
		return nil, errors.Join(err, peers.Close())
	}
	nd, err := node.New(ncfg)
	if err != nil {
		closeListeners(cfg)
		return nil, errors.Join(err, peers.Close())
	}
	s := &Server{peers: peers, node: nd}
	fail := func(err error) (*Server, error) {
		closeListeners(cfg)
		return nil, errors.Join(err, nd.Close(), peers.Close())
	}

	rcfg := cfg.Router
	rcfg.Backend, rcfg.Forwarder, rcfg.Logger, rcfg.Metrics = nd, pc, cfg.Logger, cfg.Registry
	if s.rt, err = router.New(rcfg); err != nil {
		return fail(err)
	}

	gcfg := cfg.Gateway
	gcfg.Router, gcfg.Cluster, gcfg.Admin, gcfg.Logger = s.rt, nd, nd, cfg.Logger
	gcfg.Peer = gateway.PeerServices{Data: peer.NewDataServer(nd), Control: peer.NewControlServer(nd)}
	gcfg.Metrics, gcfg.Gatherer, gcfg.TLS = cfg.Registry, cfg.Registry, cfg.TLS
	gcfg.Secrets.Meta, gcfg.Auth.Meta = gateway.NodeMeta{Node: nd}, gateway.NodeMeta{Node: nd}
	if gcfg.Secrets.KEK == nil {
		gcfg.Secrets.KEK = gateway.DevKEK(nd)
	}
	if s.gw, err = gateway.New(gcfg); err != nil {
		return fail(fmt.Errorf("server: %w", err))
	}
	s.gw.Serve(cfg.HTTPListener, cfg.GRPCListener)
	return s, nil
}

func closeListeners(cfg Config) {
	for _, ln := range []net.Listener{cfg.HTTPListener, cfg.GRPCListener} {
		if ln != nil {
			_ = ln.Close()
		}
	}
}

// Node returns the running node.
func (s *Server) Node() *node.Node { return s.node }

// Router returns the node's router.
func (s *Server) Router() *router.Router { return s.rt }

// Gateway returns the node's API server.
func (s *Server) Gateway() *gateway.Server { return s.gw }

// Stop stops the node gracefully, top down. With handover > 0 it first
// hands every leadership the node holds to another node while the APIs
// still serve (node.PrepareClose), so requests forwarded here keep working
// during the hand-over. Then the APIs drain until ctx is done (a done ctx
// drops requests in flight at once), and the node and the connections to
// other nodes close. It never removes the node's replicas from their
// shards: a restart with the same data dir resumes. It returns the node's
// and the pool's close errors.
func (s *Server) Stop(ctx context.Context, handover time.Duration) error {
	if handover > 0 {
		s.node.PrepareClose(handover)
	}
	s.gw.Shutdown(ctx)
	return errors.Join(s.node.Close(), s.peers.Close())
}
