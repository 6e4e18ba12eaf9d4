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

	"github.com/urfave/cli/v2"

	"github.com/cavedb/cave/gateway"
	"github.com/cavedb/cave/internal/logbuf"
	"github.com/cavedb/cave/node"
	"github.com/cavedb/cave/secrets"
	"github.com/cavedb/cave/server"
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
	lg, buf := server.NewLogger(out, lv)
	return lg, buf, nil
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
	reg, err := server.NewRegistry()
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
	cfg := server.DefaultConfig()
	cfg.Logger, cfg.Registry, cfg.TLS = lg, reg, tlsSrc
	cfg.HTTPListener, cfg.GRPCListener = httpLn, grpcLn
	nc := &cfg.Node
	nc.Name = s.NodeName
	nc.DataDir = s.DataDir
	nc.RaftAddr = advertised(s.RaftAddr, s.AdvertiseHost)
	nc.RaftListenAddr = s.RaftAddr
	nc.GossipAddr = s.GossipAddr
	nc.AdvertiseHost = s.AdvertiseHost
	nc.HTTPAddr = advertised(s.HTTPAddr, s.AdvertiseHost)
	nc.GRPCAddr = advertised(s.GRPCAddr, s.AdvertiseHost)
	nc.Bootstrap = s.Bootstrap
	nc.TLS = node.TLSFiles{CAFile: s.TLSCA, CertFile: s.TLSCert, KeyFile: s.TLSKey}
	nc.Join = s.Join
	nc.Shards = s.Shards
	nc.Replicas = s.Replicas
	nc.DeadNodeTimeout = s.DeadNodeTimeout
	nc.Rebalance.MaxActions, nc.Rebalance.MaxMovesPerNode = s.RebalanceMaxMoves, s.RebalanceMovesPerNode
	if s.SnapshotBytesPerSec < 0 {
		return fmt.Errorf("--snapshot-bytes-per-sec must be >= 0, got %d", s.SnapshotBytesPerSec)
	}
	nc.SnapshotBytesPerSecond = uint64(s.SnapshotBytesPerSec)
	if s.WatchHistoryRevisions < 16 {
		return fmt.Errorf("--watch-history-revisions must be >= 16, got %d", s.WatchHistoryRevisions)
	}
	nc.WatchHistoryRevisions = uint64(s.WatchHistoryRevisions)
	gc := &cfg.Gateway
	gc.MaxValueBytes = s.MaxValueBytes
	gc.Watch.MaxWatchers, gc.Watch.MaxPerConnection = s.WatchMax, s.WatchMaxPerConnection
	gc.HTTPReadTimeout, gc.HTTPWriteTimeout = s.HTTPReadTimeout, s.HTTPWriteTimeout
	gc.Logs = logs
	dataDir, err := filepath.Abs(s.DataDir)
	if err != nil {
		dataDir = s.DataDir
	}
	gc.System = gateway.SystemInfo{Version: version, Commit: commit, BuildDate: date, Mode: s.Mode,
		Insecure: s.Insecure, DataDir: dataDir, Started: started}
	gc.Settings = configEntries(c, s)
	// Access control is on exactly when TLS is: dev mode and --insecure
	// stay open, as their startup warning says.
	gc.Auth.Enabled, gc.Auth.Audit = tlsSrc != nil, auditLog
	if kek != nil {
		gc.Secrets.KEK = func(context.Context) ([]byte, error) { return kek, nil }
	}
	srv, err := server.New(cfg)
	if err != nil {
		return err
	}
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
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Stop(ctx, 3*time.Second)
}
