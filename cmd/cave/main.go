// Command cave runs one node of a cave cluster.
//
//	cave --mode=dev                                    # one node in ./cave-data
//	cave certs init --dir certs                        # the cluster CA; then certs node, certs client
//	cave --mode=prod --tls-ca ... --bootstrap ...      # first node of a cluster
//	cave --mode=prod --tls-ca ... --join HOST:PORT ... # every other node
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/urfave/cli/v2"
	"google.golang.org/grpc"

	"github.com/cavedb/cave/gateway"
	"github.com/cavedb/cave/internal/logbuf"
	"github.com/cavedb/cave/internal/peer"
	"github.com/cavedb/cave/node"
	"github.com/cavedb/cave/router"
	"github.com/cavedb/cave/secrets"
)

// Set by the linker: -X main.version=... -X main.commit=... -X main.date=...
var (
	version = "dev"
	commit  = "unknown"
	date    = "unknown"
)

func main() {
	if err := newApp().Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "cave:", err)
		os.Exit(1)
	}
}

func newApp() *cli.App {
	flags := serverFlags()
	return &cli.App{
		Name:    "cave",
		Usage:   "a distributed, sharded key-value database",
		Version: version,
		Flags:   flags,
		Before:  loadSettings(flags),
		Action:  run,
		Commands: []*cli.Command{certsCommand(), {
			Name:  "version",
			Usage: "print the version, commit, build date and Go version",
			Action: func(*cli.Context) error {
				fmt.Printf("cave %s (commit %s, built %s, %s)\n", version, commit, date, runtime.Version())
				return nil
			},
		}},
	}
}

// logBufferEntries is how many recent log records /api/v1/perf/logs keeps.
const logBufferEntries = 2000

// newLogger returns the node's logger: records at level or above go to
// stderr in format and into the returned buffer behind /api/v1/perf/logs.
func newLogger(level, format string) (*slog.Logger, *logbuf.Buffer, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, nil, fmt.Errorf("--log-level must be debug, info, warn or error, got %q", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	var out slog.Handler = slog.NewTextHandler(os.Stderr, opts)
	if format == "json" {
		out = slog.NewJSONHandler(os.Stderr, opts)
	}
	buf := logbuf.NewBuffer(logBufferEntries)
	return slog.New(logbuf.NewHandler(out, buf, lv)), buf, nil
}

// newRegistry returns the node's metrics registry with the Go runtime and
// process collectors; every package registers its own metrics on it.
func newRegistry() (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, err
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, err
	}
	return reg, nil
}

func run(c *cli.Context) error {
	started := time.Now()
	s, err := parseSettings(c)
	if err != nil {
		return err
	}
	lg, logs, err := newLogger(s.LogLevel, s.LogFormat)
	if err != nil {
		return err
	}
	reg, err := newRegistry()
	if err != nil {
		return err
	}
	if s.Mode == "dev" {
		lg.Warn("dev mode: one node, no TLS, no access control; do not use in production", "data_dir", s.DataDir)
	} else if s.Insecure {
		lg.Warn("insecure mode: no TLS and no access control on any port")
	}
	tlsSrc, err := loadTLS(s, lg)
	if err != nil {
		return err
	}
	auditLog, closeAudit, err := openAudit(s.AuditLog, lg)
	if err != nil {
		return err
	}
	defer closeAudit()
	var kek []byte
	if s.KEKFile != "" {
		if kek, err = secrets.LoadKEKFile(s.KEKFile); err != nil {
			return err
		}
	} else {
		lg.Warn("no --kek-file: secret values are encrypted under a key derived from the cluster id, which protects nothing")
	}
	httpLn, err := net.Listen("tcp", s.HTTPAddr)
	if err != nil {
		return fmt.Errorf("--http-addr: %w", err)
	}
	grpcLn, err := net.Listen("tcp", s.GRPCAddr)
	if err != nil {
		return fmt.Errorf("--grpc-addr: %w", err)
	}
	peers := peer.New(peer.TransportCredentials(tlsSrc), grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(s.MaxValueBytes+64<<10)))
	defer peers.Close()

	ncfg := node.DefaultConfig()
	ncfg.Name = s.NodeName
	ncfg.DataDir = s.DataDir
	ncfg.RaftAddr = advertised(s.RaftAddr, s.AdvertiseHost)
	ncfg.RaftListenAddr = s.RaftAddr
	ncfg.GossipAddr = s.GossipAddr
	ncfg.AdvertiseHost = s.AdvertiseHost
	ncfg.HTTPAddr = advertised(s.HTTPAddr, s.AdvertiseHost)
	ncfg.GRPCAddr = advertised(s.GRPCAddr, s.AdvertiseHost)
	ncfg.Bootstrap = s.Bootstrap
	ncfg.TLS = node.TLSFiles{CAFile: s.TLSCA, CertFile: s.TLSCert, KeyFile: s.TLSKey}
	ncfg.Join = s.Join
	ncfg.Shards = s.Shards
	ncfg.Replicas = s.Replicas
	ncfg.DeadNodeTimeout = s.DeadNodeTimeout
	ncfg.Logger, ncfg.Metrics = lg, reg
	nd, err := node.New(ncfg, peers)
	if err != nil {
		return err
	}
	rcfg := router.DefaultConfig()
	rcfg.Backend, rcfg.Peers, rcfg.Logger, rcfg.Metrics = nd, peers, lg, reg
	rt, err := router.New(rcfg)
	if err != nil {
		nd.Close()
		return err
	}
	gcfg := gateway.DefaultConfig()
	gcfg.Router, gcfg.Cluster, gcfg.Peer, gcfg.Logger = rt, nd, router.NewPeerServer(nd, nd), lg
	gcfg.MaxValueBytes = s.MaxValueBytes
	gcfg.Metrics, gcfg.Gatherer, gcfg.Logs = reg, reg, logs
	dataDir, err := filepath.Abs(s.DataDir)
	if err != nil {
		dataDir = s.DataDir
	}
	gcfg.System = gateway.SystemInfo{Version: version, Commit: commit, BuildDate: date, Mode: s.Mode,
		Insecure: s.Insecure, DataDir: dataDir, Started: started}
	gcfg.Settings = configEntries(c, s)
	gcfg.TLS = tlsSrc
	// Access control is on exactly when TLS is: dev mode and --insecure
	// stay open, as their startup warning says.
	gcfg.Auth.Enabled, gcfg.Auth.Meta, gcfg.Auth.Audit = tlsSrc != nil, gateway.NodeMeta{Node: nd}, auditLog
	gcfg.Secrets = gateway.SecretsConfig{Meta: gateway.NodeMeta{Node: nd}, KEK: gateway.DevKEK(nd)}
	if kek != nil {
		gcfg.Secrets.KEK = func(context.Context) ([]byte, error) { return kek, nil }
	}
	gw, err := gateway.New(gcfg)
	if err != nil {
		nd.Close()
		return err
	}
	gw.Serve(httpLn, grpcLn)
	scheme := "http://"
	if tlsSrc != nil {
		scheme = "https://"
		reloadCtx, stopReload := context.WithCancel(context.Background())
		defer stopReload()
		go reloadTLS(reloadCtx, tlsSrc, lg)
	}
	lg.Info("serving", "node", s.NodeName, "mode", s.Mode, "tls", tlsSrc != nil, "http", scheme+httpLn.Addr().String()+"/api/v1",
		"grpc", grpcLn.Addr().String(), "raft", s.RaftAddr, "gossip", s.GossipAddr)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	got := <-sig
	lg.Info("shutting down", "signal", got.String())
	// Hand the leaderships over while the API still serves, so requests
	// forwarded to this node's leaders keep working; then drain the API and
	// close the node.
	nd.PrepareClose(3 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	gw.Shutdown(ctx)
	return nd.Close()
}
