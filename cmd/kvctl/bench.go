package main

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/urfave/cli/v2"
)

// Limits of the bench flags. Pre-population writes every key once, so the
// key space is bounded; so is the time that may take.
const (
	maxBenchKeys       = 1_000_000
	maxBenchClients    = 100_000
	maxBenchConns      = 1024
	maxBenchValueBytes = maxStdinBytes
	prepopulateTimeout = 5 * time.Minute
)

// Operations, targets, protocols and consistencies of kvctl bench, in the
// spelling of its arguments and flags.
const (
	opPut   = "put"
	opGet   = "get"
	opMixed = "mixed"
	opCAS   = "cas"

	targetCave = "cave"
	targetEtcd = "etcd"

	protoGRPC = "grpc"
	protoREST = "rest"

	consistencyLinearizable = "linearizable"
	consistencyStale        = "stale"
)

// errBenchUsage is returned by the bench command when its arguments or
// flags are wrong; nothing has been sent.
var errBenchUsage = errors.New("bench")

// benchConfig is one validated kvctl bench invocation.
type benchConfig struct {
	op            string
	target        string
	protocol      string
	consistency   string
	endpoints     []string // gRPC HOST:PORT (cave) or client HOST:PORT (etcd)
	httpEndpoints []string // REST HOST:PORT, with --protocol rest
	clients       int
	conns         int // connections (transports, etcd clients) per endpoint
	duration      time.Duration
	warmup        time.Duration
	opTimeout     time.Duration // deadline of each call: --timeout
	keys          int
	valueSize     int
	readRatio     float64
	keyPrefix     string
	routing       string // cave gRPC: routeClient or routeNode
	json          bool
}

// --routing values (cave over gRPC).
const (
	// routeClient sends each request through the Go client (package
	// client), which sends it to the node that leads the key's shard.
	routeClient = "client"
	// routeNode sends each worker's requests to its endpoint, which
	// forwards those of shards it does not lead.
	routeNode = "node"
)

// benchFlags are the flags of every bench operation.
func benchFlags() []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "clients", Value: 16, Usage: "concurrent workers"},
		&cli.IntFlag{Name: "conns", Value: 1, Usage: "connections per endpoint shared by the workers: gRPC connections, HTTP transports (each keeps one keep-alive TCP connection per busy worker) or etcd clients"},
		&cli.DurationFlag{Name: "duration", Value: 10 * time.Second, Usage: "length of the measured run"},
		&cli.DurationFlag{Name: "warmup", Value: 2 * time.Second, Usage: "load before the measured run, excluded from the results"},
		&cli.IntFlag{Name: "keys", Value: 10000, Usage: fmt.Sprintf("key space (at most %d); get, mixed and cas first write every key once", maxBenchKeys)},
		&cli.IntFlag{Name: "value-size", Value: 256, Usage: "bytes per written value"},
		&cli.Float64Flag{Name: "read-ratio", Value: 0.9, Usage: "mixed: the fraction of operations that are reads, 0..1"},
		&cli.StringFlag{Name: "consistency", Value: consistencyLinearizable, Usage: "reads: linearizable or stale (etcd: serializable)"},
		&cli.StringFlag{Name: "protocol", Value: protoGRPC, Usage: "cave: grpc, or rest (PUT/GET /api/v1/kv/KEY over HTTP/1.1 keep-alive; needs --http-endpoints)"},
		&cli.StringFlag{Name: "http-endpoints", Usage: "REST HOST:PORT of the nodes, comma-separated (--protocol rest)"},
		&cli.StringFlag{Name: "target", Value: targetCave, Usage: "cave, or etcd (--endpoints are etcd client HOST:PORT)"},
		&cli.StringFlag{Name: "key-prefix", Value: "bench/", Usage: "prefix of every key"},
		&cli.StringFlag{Name: "routing", Value: routeClient, Usage: "cave over gRPC: client (the Go client sends each request to the node leading the key's shard) or node (each worker sends to its endpoint, which forwards)"},
		&cli.BoolFlag{Name: "json", Usage: "print one JSON object with every number (as does -o json)"},
	}
}

// benchCommand is kvctl bench: put, get, mixed and cas load generators
// against cave or etcd.
func benchCommand() *cli.Command {
	ops := []struct{ name, usage string }{
		{opPut, "unconditional writes of random keys"},
		{opGet, "reads of random keys, written once before the run"},
		{opMixed, "reads (--read-ratio) and writes of random keys, written once before the run"},
		{opCAS, "compare-and-swap writes: each worker updates its own keys at their current revision"},
	}
	cmd := &cli.Command{
		Name:  "bench",
		Usage: "measure throughput and latency of put, get, mixed or cas load",
		Description: "Workers (--clients) spread round-robin over --endpoints (or --http-endpoints) run the\n" +
			"operation for --warmup, then for --duration, and kvctl prints ops/s, latency percentiles,\n" +
			"errors by status code and its own CPU time. A progress line goes to stderr every second.\n" +
			"Exit status 1: bad flags, failed pre-population, or not one operation succeeded.",
		ArgsUsage: "put|get|mixed|cas",
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return fmt.Errorf("%w: an operation is required: put, get, mixed or cas", errBenchUsage)
			}
			return fmt.Errorf("%w: unknown operation %q: want put, get, mixed or cas", errBenchUsage, c.Args().First())
		},
	}
	for _, o := range ops {
		cmd.Subcommands = append(cmd.Subcommands, &cli.Command{
			Name:   o.name,
			Usage:  o.usage,
			Flags:  benchFlags(),
			Action: runBench,
		})
	}
	return cmd
}

// parseBench validates the flags of c, the bench operation's context, and
// reports every problem at once.
func parseBench(c *cli.Context) (benchConfig, error) {
	cfg := benchConfig{
		op:          c.Command.Name,
		target:      c.String("target"),
		protocol:    c.String("protocol"),
		consistency: c.String("consistency"),
		clients:     c.Int("clients"),
		conns:       c.Int("conns"),
		duration:    c.Duration("duration"),
		warmup:      c.Duration("warmup"),
		opTimeout:   c.Duration("timeout"),
		keys:        c.Int("keys"),
		valueSize:   c.Int("value-size"),
		readRatio:   c.Float64("read-ratio"),
		keyPrefix:   c.String("key-prefix"),
		routing:     c.String("routing"),
		json:        c.Bool("json") || c.String("output") == "json",
	}
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.NArg() > 0 {
		bad("unexpected arguments %q: flags come after the operation", c.Args().Slice())
	}
	if out := c.String("output"); out != "table" && out != "json" {
		bad("-o must be table or json, got %q", out)
	}
	var err error
	if cfg.endpoints, err = splitList(c.String("endpoints")); err != nil {
		bad("--endpoints %w", err)
	}
	switch cfg.target {
	case targetCave:
	case targetEtcd:
		if c.String("token") != "" {
			bad("--token applies to --target cave only")
		}
		if cfg.protocol != protoGRPC {
			bad("--protocol %s applies to --target cave only", cfg.protocol)
		}
	default:
		bad("--target must be cave or etcd, got %q", cfg.target)
	}
	if cfg.routing != routeClient && cfg.routing != routeNode {
		bad("--routing must be client or node, got %q", cfg.routing)
	} else if c.IsSet("routing") && (cfg.target != targetCave || cfg.protocol != protoGRPC) {
		bad("--routing applies to --target cave --protocol grpc only")
	}
	switch cfg.protocol {
	case protoGRPC:
		if c.IsSet("http-endpoints") {
			bad("--http-endpoints applies to --protocol rest only")
		}
	case protoREST:
		if !c.IsSet("http-endpoints") {
			bad("--protocol rest needs --http-endpoints")
		} else if cfg.httpEndpoints, err = splitList(c.String("http-endpoints")); err != nil {
			bad("--http-endpoints %w", err)
		}
	default:
		bad("--protocol must be grpc or rest, got %q", cfg.protocol)
	}
	if cfg.consistency != consistencyLinearizable && cfg.consistency != consistencyStale {
		bad("--consistency must be linearizable or stale, got %q", cfg.consistency)
	}
	if cfg.clients < 1 || cfg.clients > maxBenchClients {
		bad("--clients must be in [1, %d], got %d", maxBenchClients, cfg.clients)
	}
	if cfg.conns < 1 || cfg.conns > maxBenchConns {
		bad("--conns must be in [1, %d], got %d", maxBenchConns, cfg.conns)
	}
	if cfg.duration <= 0 {
		bad("--duration must be positive, got %s", cfg.duration)
	}
	if cfg.warmup < 0 {
		bad("--warmup must not be negative, got %s", cfg.warmup)
	}
	if cfg.opTimeout <= 0 {
		bad("--timeout must be positive, got %s", cfg.opTimeout)
	}
	if cfg.keys < 1 || cfg.keys > maxBenchKeys {
		bad("--keys must be in [1, %d], got %d", maxBenchKeys, cfg.keys)
	} else if cfg.op == opCAS && cfg.keys < cfg.clients {
		bad("cas: --keys (%d) must be at least --clients (%d): each worker updates keys of its own", cfg.keys, cfg.clients)
	}
	if cfg.valueSize < 0 || cfg.valueSize > maxBenchValueBytes {
		bad("--value-size must be in [0, %d], got %d", maxBenchValueBytes, cfg.valueSize)
	}
	if math.IsNaN(cfg.readRatio) || cfg.readRatio < 0 || cfg.readRatio > 1 {
		bad("--read-ratio must be in [0, 1], got %v", cfg.readRatio)
	} else if c.IsSet("read-ratio") && cfg.op != opMixed {
		bad("--read-ratio applies to mixed only")
	}
	if len(errs) > 0 {
		return benchConfig{}, fmt.Errorf("%w %s: %w", errBenchUsage, cfg.op, errors.Join(errs...))
	}
	return cfg, nil
}

// runBench is the action of every bench operation.
func runBench(c *cli.Context) error {
	cfg, err := parseBench(c)
	if err != nil {
		return err
	}
	stores, err := openStores(c, cfg)
	if err != nil {
		return err
	}
	defer func() {
		for _, s := range stores {
			s.close()
		}
	}()
	res, err := runLoad(c.Context, cfg, stores, c.App.ErrWriter)
	if err != nil {
		return err
	}
	if cfg.json {
		err = res.writeJSON(c.App.Writer)
	} else {
		err = res.writeTable(c.App.Writer)
	}
	if err != nil {
		return err
	}
	if res.Ops == 0 {
		return fmt.Errorf("bench %s: not one operation succeeded (%d errors)", cfg.op, res.Errors)
	}
	return nil
}
