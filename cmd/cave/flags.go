package main

import (
	"flag"
	"fmt"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/cavedb/cave/gateway"
)

// settings is the parsed command line: every flag, after applying
// precedence flag > CAVE_* env > --config YAML file > default.
type settings struct {
	Mode          string
	NodeName      string
	DataDir       string
	HTTPAddr      string
	GRPCAddr      string
	RaftAddr      string
	GossipAddr    string
	AdvertiseHost string
	Bootstrap     bool
	Join          []string
	Shards        int
	Replicas      int
	MaxValueBytes int
	// HTTPReadTimeout and HTTPWriteTimeout bound a request on the HTTP
	// port (--http-read-timeout, --http-write-timeout); 0 means no limit.
	HTTPReadTimeout, HTTPWriteTimeout time.Duration
	DeadNodeTimeout                   time.Duration
	// RebalanceMaxMoves, RebalanceMovesPerNode and SnapshotBytesPerSec
	// throttle replica moves (--rebalance-*, --snapshot-bytes-per-sec).
	RebalanceMaxMoves, RebalanceMovesPerNode int
	SnapshotBytesPerSec                      int64
	// WatchHistoryRevisions, WatchMax and WatchMaxPerConnection bound
	// watches (--watch-*).
	WatchHistoryRevisions, WatchMax, WatchMaxPerConnection int
	LogLevel                                               string
	LogFormat                                              string
	Insecure                                               bool
	// TLSCA, TLSCert and TLSKey are the node's PEM files (--tls-*); all
	// three are set in prod mode unless Insecure, and none otherwise.
	TLSCA, TLSCert, TLSKey string
	// KEKFile is the key-encryption key file (--kek-file) that wraps the
	// secrets keyring; required in prod mode unless Insecure.
	KEKFile string
	// AuditLog is where the audit log goes (--audit-log): a file, "-" for
	// stdout, or "" for none.
	AuditLog string
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
	dur := func(name string, value time.Duration, usage string) cli.Flag {
		return altsrc.NewDurationFlag(&cli.DurationFlag{Name: name, Value: value, Usage: usage, EnvVars: env(name)})
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
		altsrc.NewStringSliceFlag(&cli.StringSliceFlag{Name: "join", Usage: "HOST:PORT of any member to join through, repeat or comma-separate: its gRPC address with TLS (the node learns the gossip address and key from it), its gossip address with --insecure", EnvVars: env("join")}),
		num("shards", 4, "number of data shards created at bootstrap"),
		num("replicas", 3, "replication factor of data shards (capped by the number of nodes)"),
		num("max-value-bytes", 1<<20, "largest value accepted, in bytes (for secret=true, of the plaintext; the stored envelope is 37 bytes longer)"),
		dur("http-read-timeout", 30*time.Second, "how long the HTTP port waits for a whole request, headers and body, before closing the connection (0: no limit)"),
		dur("http-write-timeout", time.Minute, "how long the HTTP port gives a request from the end of its headers to the end of the answer (0: no limit)"),
		dur("dead-node-timeout", 5*time.Minute, "how long a node may be gone before its replicas are re-created elsewhere"),
		num("rebalance-max-moves", 64, "most replica and leader moves the rebalancer starts at once, cluster-wide"),
		num("rebalance-moves-per-node", 4, "most moves in flight that touch one node, as source or destination"),
		altsrc.NewInt64Flag(&cli.Int64Flag{Name: "snapshot-bytes-per-sec", Value: 128 << 20, Usage: "cap on the rate a node streams a shard snapshot to a new replica, in bytes per second (0: no cap)", EnvVars: env("snapshot-bytes-per-sec")}),
		num("watch-history-revisions", 100000, "how many of its latest revisions each shard keeps change events of, for watches to resume from"),
		num("watch-max", 10000, "most watches this node serves at once"),
		num("watch-max-per-connection", 64, "most watches one client connection may hold open"),
		str("log-level", "info", "debug, info, warn or error"),
		str("log-format", "text", "text or json"),
		flag("insecure", "run a prod node without TLS and access control on any port (prod needs either this or --tls-ca, --tls-cert and --tls-key)"),
		str("tls-ca", "", "PEM file of the cluster CA: peers and clients must present certificates it signed (see: cave certs init)"),
		str("tls-cert", "", "PEM file of this node's certificate (made by: cave certs node), presented on every port; reloaded on SIGHUP and when it changes"),
		str("tls-key", "", "PEM file of this node's private key"),
		str("kek-file", "", "file with the 32-byte key-encryption key of secret=true values (raw, 64 hex digits or base64; mode 0600; made by: cave certs kek); the same on every node; required in prod without --insecure"),
		str("audit-log", "", "write an audit line (JSON) for every write, delete, admin and auth call and every refusal to this file (appended, mode 0600), or - for stdout"),
	}
}

// parseSettings reads c into settings and validates what cmd/cave owns:
// mode, addresses and log settings. Packages validate the rest.
func parseSettings(c *cli.Context) (settings, error) {
	s := settings{
		Mode:                  c.String("mode"),
		NodeName:              c.String("node-name"),
		DataDir:               c.String("data-dir"),
		HTTPAddr:              c.String("http-addr"),
		GRPCAddr:              c.String("grpc-addr"),
		RaftAddr:              c.String("raft-addr"),
		GossipAddr:            c.String("gossip-addr"),
		AdvertiseHost:         c.String("advertise-host"),
		Bootstrap:             c.Bool("bootstrap"),
		Shards:                c.Int("shards"),
		Replicas:              c.Int("replicas"),
		MaxValueBytes:         c.Int("max-value-bytes"),
		DeadNodeTimeout:       c.Duration("dead-node-timeout"),
		RebalanceMaxMoves:     c.Int("rebalance-max-moves"),
		RebalanceMovesPerNode: c.Int("rebalance-moves-per-node"),
		SnapshotBytesPerSec:   c.Int64("snapshot-bytes-per-sec"),
		WatchHistoryRevisions: c.Int("watch-history-revisions"),
		WatchMax:              c.Int("watch-max"),
		WatchMaxPerConnection: c.Int("watch-max-per-connection"),
		LogLevel:              c.String("log-level"),
		LogFormat:             c.String("log-format"),
		Insecure:              c.Bool("insecure"),
		TLSCA:                 c.String("tls-ca"),
		TLSCert:               c.String("tls-cert"),
		TLSKey:                c.String("tls-key"),
		KEKFile:               c.String("kek-file"),
		AuditLog:              c.String("audit-log"),
		HTTPReadTimeout:       c.Duration("http-read-timeout"),
		HTTPWriteTimeout:      c.Duration("http-write-timeout"),
	}
	s.Join = splitList(c.StringSlice("join"))
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
		switch {
		case s.tlsSet():
			return s, fmt.Errorf("--mode=dev runs without TLS; leave out --tls-ca, --tls-cert and --tls-key, or use --mode=prod")
		case len(s.Join) > 0:
			return s, fmt.Errorf("--mode=dev runs one node on its own and joins nothing; leave out --join, or use --mode=prod")
		case c.IsSet("replicas") && s.Replicas != 1:
			return s, fmt.Errorf("--mode=dev keeps one replica of each shard, got --replicas=%d; leave it out, or use --mode=prod", s.Replicas)
		}
		s.Bootstrap = true
		s.Replicas = 1
		s.Insecure = true
	case "prod":
		switch {
		case !s.Bootstrap && len(s.Join) == 0:
			return s, fmt.Errorf("--mode=prod needs --bootstrap (new cluster) or --join HOST:PORT (existing cluster); for a single development node use --mode=dev")
		case s.Bootstrap && len(s.Join) > 0:
			return s, fmt.Errorf("--bootstrap creates a new cluster and --join enters an existing one; give only one of them")
		}
		switch {
		case s.Insecure && s.tlsSet():
			return s, fmt.Errorf("--insecure turns TLS off; leave out --tls-ca, --tls-cert and --tls-key, or drop --insecure")
		case !s.Insecure && (s.TLSCA == "" || s.TLSCert == "" || s.TLSKey == ""):
			return s, fmt.Errorf("--mode=prod needs --tls-ca, --tls-cert and --tls-key (create them with `cave certs`), or --insecure to run without TLS and access control")
		}
	default:
		return s, fmt.Errorf("--mode must be dev or prod, got %q", s.Mode)
	}
	if s.Mode == "prod" && !s.Insecure && s.KEKFile == "" {
		return s, fmt.Errorf("--mode=prod needs --kek-file: the key-encryption key of secret values, the same file on every node (create one with: cave certs kek --dir DIR)")
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

// tlsSet reports whether any --tls-* file is given.
func (s settings) tlsSet() bool { return s.TLSCA != "" || s.TLSCert != "" || s.TLSKey != "" }

// advertised returns addr with its host replaced by host when host is set.
func advertised(addr, host string) string {
	if host == "" {
		return addr
	}
	_, port, _ := net.SplitHostPort(addr)
	return net.JoinHostPort(host, port)
}

// Where a setting's value came from, as /api/v1/system/config reports it.
const (
	sourceFlag    = "flag"
	sourceEnv     = "env"
	sourceFile    = "file"
	sourceDefault = "default"
	sourceMode    = "mode" // forced by --mode=dev
)

// metaSources is the cli.App.Metadata key under which loadSettings leaves
// each flag's source, a map[string]string from flag name to source.
const metaSources = "cave.sources"

// loadSettings returns the app's Before hook: it applies the --config YAML
// file to the flags not set on the command line or by env, and records the
// source of every flag's value. urfave/cli reports only "set or not", so the
// sources are told apart in two steps: before the file is applied, a set
// flag came from the command line or from its CAVE_* variable (the command
// line when its value differs from what the variable alone gives); after,
// a flag that became set came from the file.
func loadSettings(flags []cli.Flag) cli.BeforeFunc {
	applyFile := altsrc.InitInputSourceWithContext(flags, altsrc.NewYamlSourceFromFlagFunc("config"))
	return func(c *cli.Context) error {
		src := map[string]string{}
		fresh := map[string]cli.Flag{}
		for _, f := range serverFlags() {
			fresh[f.Names()[0]] = f
		}
		for _, f := range flags {
			name := f.Names()[0]
			_, envSet := os.LookupEnv(env(name)[0])
			switch {
			case envSet && c.IsSet(name) && currentValue(c, name) != envValue(fresh[name], name):
				src[name] = sourceFlag
			case envSet:
				src[name] = sourceEnv
			case c.IsSet(name):
				src[name] = sourceFlag
			}
		}
		if path := c.String("config"); path != "" {
			if err := checkConfigFile(path, flags); err != nil {
				return err
			}
		}
		if err := applyFile(c); err != nil {
			return err
		}
		for _, f := range flags {
			name := f.Names()[0]
			if _, ok := src[name]; ok {
				continue
			}
			if c.IsSet(name) {
				src[name] = sourceFile
			} else {
				src[name] = sourceDefault
			}
		}
		if c.App.Metadata == nil {
			c.App.Metadata = map[string]any{}
		}
		c.App.Metadata[metaSources] = src
		return nil
	}
}

// checkConfigFile checks the --config file at path before it is applied:
// it must exist and be a YAML mapping whose keys are all names of flags
// (other than config). The error is one line that names the file and,
// for an unknown setting, the key.
func checkConfigFile(path string, flags []cli.Flag) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("--config %s: not a YAML mapping of flag names to values: %s", path, strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	known := map[string]bool{}
	for _, f := range flags {
		known[f.Names()[0]] = true
	}
	delete(known, "config")
	keys := slices.Sorted(maps.Keys(doc))
	for _, k := range keys {
		if !known[k] {
			return fmt.Errorf("--config %s: unknown setting %q (the keys are flag names without --, see cave --help)", path, k)
		}
	}
	return nil
}

// currentValue returns flag name's value in c as text.
func currentValue(c *cli.Context, name string) string {
	if v, ok := c.Generic(name).(flag.Value); ok {
		return v.String()
	}
	return ""
}

// envValue returns the value, as text, that f takes from its CAVE_*
// variable alone: f, a fresh copy of the flag, is applied to an empty flag
// set with no command line.
func envValue(f cli.Flag, name string) string {
	if f == nil {
		return ""
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	if err := f.Apply(fs); err != nil {
		return ""
	}
	if fl := fs.Lookup(name); fl != nil {
		return fl.Value.String()
	}
	return ""
}

// configEntries returns the effective value and source of every flag in
// the order of serverFlags, for /api/v1/system/config; the gateway redacts
// secret ones. Values that parseSettings derives (the node name from the
// hostname, dev mode's forced settings) are shown as derived.
func configEntries(c *cli.Context, s settings) []gateway.ConfigEntry {
	src, _ := c.App.Metadata[metaSources].(map[string]string)
	effective := map[string]string{
		"node-name": s.NodeName,
		"data-dir":  s.DataDir,
		"join":      strings.Join(s.Join, ","),
		"bootstrap": strconv.FormatBool(s.Bootstrap),
		"replicas":  strconv.Itoa(s.Replicas),
		"insecure":  strconv.FormatBool(s.Insecure),
	}
	var out []gateway.ConfigEntry
	for _, f := range serverFlags() {
		name := f.Names()[0]
		e := gateway.ConfigEntry{Name: name, Value: currentValue(c, name), Source: src[name]}
		if v, ok := effective[name]; ok {
			e.Value = v
		}
		if e.Source == "" {
			e.Source = sourceDefault
		}
		if s.Mode == "dev" {
			switch name {
			case "bootstrap", "replicas", "insecure":
				e.Source = sourceMode
			}
		}
		out = append(out, e)
	}
	return out
}
