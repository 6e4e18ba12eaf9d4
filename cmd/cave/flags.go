package main

import (
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"
)

// settings is the parsed command line: every flag, after applying
// precedence flag > CAVE_* env > --config YAML file > default.
type settings struct {
	Mode            string
	NodeName        string
	DataDir         string
	HTTPAddr        string
	GRPCAddr        string
	RaftAddr        string
	GossipAddr      string
	AdvertiseHost   string
	Bootstrap       bool
	Join            []string
	Shards          int
	Replicas        int
	MaxValueBytes   int
	DeadNodeTimeout time.Duration
	LogLevel        string
	LogFormat       string
	Insecure        bool
}

// env returns the environment variable that sets flag name.
func env(name string) []string {
	return []string{"CAVE_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))}
}

// serverFlags are the flags of `cave`. Each can also come from its CAVE_*
// variable or from the YAML file named by --config, under the flag's name.
func serverFlags() []cli.Flag {
	str := func(name, value, usage string) cli.Flag {
		return altsrc.NewStringFlag(&cli.StringFlag{Name: name, Value: value, Usage: usage, EnvVars: env(name)})
	}
	num := func(name string, value int, usage string) cli.Flag {
		return altsrc.NewIntFlag(&cli.IntFlag{Name: name, Value: value, Usage: usage, EnvVars: env(name)})
	}
	flag := func(name, usage string) cli.Flag {
		return altsrc.NewBoolFlag(&cli.BoolFlag{Name: name, Usage: usage, EnvVars: env(name)})
	}
	return []cli.Flag{
		&cli.StringFlag{Name: "config", Usage: "YAML file with flag values, keyed by flag name (flags and CAVE_* env win over it)", EnvVars: env("config")},
		str("mode", "prod", "dev: one open node in ./cave-data for development; prod: a cluster member (needs --bootstrap or --join)"),
		str("node-name", "", "unique name of this node in the cluster (default: the hostname)"),
		str("data-dir", "", "directory for this node's data (default: ./cave-data)"),
		str("http-addr", "127.0.0.1:8740", "HOST:PORT for the REST API, metrics and UI"),
		str("grpc-addr", "127.0.0.1:8741", "HOST:PORT for the gRPC API and node-to-node calls"),
		str("raft-addr", "127.0.0.1:8742", "HOST:PORT for Raft replication between nodes"),
		str("gossip-addr", "127.0.0.1:8743", "HOST:PORT for serf gossip (membership)"),
		str("advertise-host", "", "host peers dial when it differs from the listen addresses' host"),
		flag("bootstrap", "create a new cluster if the data dir is empty (a no-op when it has data)"),
		altsrc.NewStringSliceFlag(&cli.StringSliceFlag{Name: "join", Usage: "gossip HOST:PORT of any member to join through; repeat or comma-separate", EnvVars: env("join")}),
		num("shards", 4, "number of data shards created at bootstrap"),
		num("replicas", 3, "replication factor of data shards (capped by the number of nodes)"),
		num("max-value-bytes", 1<<20, "largest value accepted, in bytes"),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "dead-node-timeout", Value: 5 * time.Minute, Usage: "how long a node may be gone before its replicas are re-created elsewhere", EnvVars: env("dead-node-timeout")}),
		str("log-level", "info", "debug, info, warn or error"),
		str("log-format", "text", "text or json"),
		flag("insecure", "run a prod node without TLS and access control (TLS is not available in this version, so prod requires it)"),
	}
}

// parseSettings reads c into settings and validates what cmd/cave owns:
// mode, addresses and log settings. Packages validate the rest.
func parseSettings(c *cli.Context) (settings, error) {
	s := settings{
		Mode:            c.String("mode"),
		NodeName:        c.String("node-name"),
		DataDir:         c.String("data-dir"),
		HTTPAddr:        c.String("http-addr"),
		GRPCAddr:        c.String("grpc-addr"),
		RaftAddr:        c.String("raft-addr"),
		GossipAddr:      c.String("gossip-addr"),
		AdvertiseHost:   c.String("advertise-host"),
		Bootstrap:       c.Bool("bootstrap"),
		Shards:          c.Int("shards"),
		Replicas:        c.Int("replicas"),
		MaxValueBytes:   c.Int("max-value-bytes"),
		DeadNodeTimeout: c.Duration("dead-node-timeout"),
		LogLevel:        c.String("log-level"),
		LogFormat:       c.String("log-format"),
		Insecure:        c.Bool("insecure"),
	}
	for _, j := range c.StringSlice("join") {
		for _, part := range strings.Split(j, ",") {
			if part = strings.TrimSpace(part); part != "" {
				s.Join = append(s.Join, part)
			}
		}
	}
	if s.NodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			return s, fmt.Errorf("--node-name not set and the hostname is unknown: %w", err)
		}
		s.NodeName = h
	}
	if s.DataDir == "" {
		s.DataDir = "cave-data"
	}
	switch s.Mode {
	case "dev":
		s.Bootstrap = true
		s.Replicas = 1
		s.Insecure = true
	case "prod":
		if !s.Bootstrap && len(s.Join) == 0 {
			return s, fmt.Errorf("--mode=prod needs --bootstrap (new cluster) or --join HOST:PORT (existing cluster); for a single development node use --mode=dev")
		}
		if !s.Insecure {
			return s, fmt.Errorf("--mode=prod needs --insecure: TLS is not available in this version")
		}
	default:
		return s, fmt.Errorf("--mode must be dev or prod, got %q", s.Mode)
	}
	for flag, addr := range map[string]string{"--http-addr": s.HTTPAddr, "--grpc-addr": s.GRPCAddr, "--raft-addr": s.RaftAddr, "--gossip-addr": s.GossipAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return s, fmt.Errorf("%s must be HOST:PORT, got %q", flag, addr)
		}
	}
	switch s.LogFormat {
	case "text", "json":
	default:
		return s, fmt.Errorf("--log-format must be text or json, got %q", s.LogFormat)
	}
	return s, nil
}

// advertised returns addr with its host replaced by host when host is set.
func advertised(addr, host string) string {
	if host == "" {
		return addr
	}
	_, port, _ := net.SplitHostPort(addr)
	return net.JoinHostPort(host, port)
}
