package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cavedb/cave/internal/nodetest"
)

// TestBenchFlags checks that bad bench invocations exit with status 1 and
// a message naming the flag, before anything is sent (the endpoint does
// not exist, so a call would fail differently).
func TestBenchFlags(t *testing.T) {
	t.Parallel()
	ep := "--endpoints=127.0.0.1:1"
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no operation", []string{"bench"}, "bench: an operation is required"},
		{"unknown operation", []string{"bench", "scan"}, `unknown operation "scan": want put, get, mixed or cas`},
		{"argument after the operation", []string{"bench", "put", "extra"}, "unexpected arguments"},
		{"zero clients", []string{"bench", "put", "--clients", "0"}, "--clients must be in [1, 100000], got 0"},
		{"zero conns", []string{"bench", "put", "--conns", "0"}, "--conns must be in [1, 1024], got 0"},
		{"ratio above 1", []string{"bench", "mixed", "--read-ratio", "1.5"}, "--read-ratio must be in [0, 1], got 1.5"},
		{"negative ratio", []string{"bench", "mixed", "--read-ratio", "-0.1"}, "--read-ratio must be in [0, 1]"},
		{"ratio without mixed", []string{"bench", "get", "--read-ratio", "0.5"}, "--read-ratio applies to mixed only"},
		{"unknown target", []string{"bench", "put", "--target", "redis"}, `--target must be cave or etcd, got "redis"`},
		{"unknown protocol", []string{"bench", "put", "--protocol", "udp"}, `--protocol must be grpc or rest, got "udp"`},
		{"unknown routing", []string{"bench", "put", "--routing", "psychic"}, `--routing must be client or node, got "psychic"`},
		{"routing over REST", []string{"bench", "put", "--protocol", "rest", "--http-endpoints", "127.0.0.1:1", "--routing", "node"}, `--routing applies to --target cave --protocol grpc only`},
		{"rest without http endpoints", []string{"bench", "get", "--protocol", "rest"}, "--protocol rest needs --http-endpoints"},
		{"empty http endpoints", []string{"bench", "get", "--protocol", "rest", "--http-endpoints", " , "}, "--http-endpoints must name at least one HOST:PORT"},
		{"http endpoints without rest", []string{"bench", "get", "--http-endpoints", "127.0.0.1:1"}, "--http-endpoints applies to --protocol rest only"},
		{"rest against etcd", []string{"bench", "put", "--target", "etcd", "--protocol", "rest", "--http-endpoints", "127.0.0.1:1"}, "--protocol rest applies to --target cave only"},
		{"token against etcd", []string{"--token", "t", "bench", "put", "--target", "etcd"}, "--token applies to --target cave only"},
		{"unknown consistency", []string{"bench", "get", "--consistency", "eventual"}, `--consistency must be linearizable or stale, got "eventual"`},
		{"zero duration", []string{"bench", "put", "--duration", "0s"}, "--duration must be positive"},
		{"negative warmup", []string{"bench", "put", "--warmup", "-1s"}, "--warmup must not be negative"},
		{"zero keys", []string{"bench", "get", "--keys", "0"}, "--keys must be in [1, 1000000], got 0"},
		{"too many keys", []string{"bench", "get", "--keys", "1000001"}, "--keys must be in [1, 1000000]"},
		{"cas with fewer keys than clients", []string{"bench", "cas", "--keys", "4", "--clients", "8"}, "cas: --keys (4) must be at least --clients (8)"},
		{"negative value size", []string{"bench", "put", "--value-size", "-1"}, "--value-size must be in [0, 67108864], got -1"},
		{"bad output", []string{"-o", "yaml", "bench", "put"}, "-o must be table or json"},
		{"half a client certificate", []string{"--cert", "c.pem", "bench", "put"}, "--cert and --key go together"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := session{t: t, pre: []string{ep}}
			r := s.fails(tc.want, tc.args...)
			assert.Empty(t, r.stdout)
		})
	}

	// Every problem is reported at once.
	s := session{t: t, pre: []string{ep}}
	r := s.fails("--clients must be in", "bench", "mixed", "--clients", "0", "--read-ratio", "7", "--target", "x")
	assert.Contains(t, r.stderr, "--read-ratio must be in [0, 1], got 7")
	assert.Contains(t, r.stderr, `--target must be cave or etcd, got "x"`)
}

// TestErrorLabel checks the errors_by_code keys of the failures the
// stores return.
func TestErrorLabel(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"grpc status", status.Error(codes.Unavailable, "no leader"), "Unavailable"},
		{"wrapped grpc status", fmt.Errorf("put: %w", status.Error(codes.FailedPrecondition, "condition failed")), "FailedPrecondition"},
		{"etcd error", rpctypes.ErrNoLeader, "Unavailable"},
		{"http status", &opError{label: "HTTP 503", msg: "shard unavailable"}, "HTTP 503"},
		{"deadline of an http call", &url.Error{Op: "Get", URL: "http://x", Err: context.DeadlineExceeded}, "DeadlineExceeded"},
		{"no answer", errors.New("connection refused"), "transport"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, errorLabel(tc.err))
		})
	}
}

// benchJSON is the part of the --json output the tests check.
type benchJSON struct {
	Target       string           `json:"target"`
	Protocol     string           `json:"protocol"`
	Op           string           `json:"op"`
	Consistency  string           `json:"consistency"`
	Clients      int              `json:"clients"`
	Prepopulated int              `json:"prepopulated"`
	Seconds      float64          `json:"seconds"`
	FromMs       int64            `json:"measured_from_unix_ms"`
	ToMs         int64            `json:"measured_to_unix_ms"`
	Ops          int64            `json:"ops"`
	Reads        int64            `json:"reads"`
	Writes       int64            `json:"writes"`
	OpsPerSec    float64          `json:"ops_per_sec"`
	Errors       int64            `json:"errors"`
	ErrorsByCode map[string]int64 `json:"errors_by_code"`
	Latency      latencyMicros    `json:"latency_us"`
	ReadLatency  *latencyMicros   `json:"read_latency_us"`
	CPU          float64          `json:"client_cpu_seconds"`
	CPUPerOp     float64          `json:"client_cpu_us_per_op"`
}

// sane checks that l is ordered and bounded by limitMicros.
func sane(t *testing.T, l latencyMicros, limitMicros int64) {
	t.Helper()
	assert.Positive(t, l.P50, "p50 in %+v", l)
	assert.LessOrEqual(t, l.P50, l.P90, "%+v", l)
	assert.LessOrEqual(t, l.P90, l.P99, "%+v", l)
	assert.LessOrEqual(t, l.P99, l.P999, "%+v", l)
	assert.LessOrEqual(t, l.P999, l.Max, "%+v", l)
	assert.LessOrEqual(t, l.Max, limitMicros, "%+v", l)
	assert.Positive(t, l.Mean, "%+v", l)
}

// TestKVCtlBench runs kvctl bench put, get, mixed and cas for about a
// second each against a one-node cluster over gRPC and REST and checks the
// JSON report: operations done, none failed, ordered percentiles no longer
// than a call's deadline. No throughput is asserted.
func TestKVCtlBench(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node and runs the kvctl binary")
	}
	c := nodetest.NewCluster(t, 1, nodetest.WithShards(2))
	httpAddr := c.HTTPURL(0)[len("http://"):]
	s := session{t: t, pre: []string{"--endpoints=" + c.GRPCAddr(0), "--timeout=5s"}}
	run := func(args ...string) benchJSON {
		t.Helper()
		out := s.ok("", append(args, "--json", "--duration=1s", "--warmup=200ms", "--clients=4", "--keys=200", "--value-size=64")...)
		var got benchJSON
		require.NoError(t, json.Unmarshal([]byte(out), &got), "stdout is one JSON object: %s", out)
		assert.Positive(t, got.Ops, "ops in %s", out)
		assert.Zero(t, got.Errors, "errors in %s", out)
		assert.Empty(t, got.ErrorsByCode)
		assert.Equal(t, got.Ops, got.Reads+got.Writes)
		assert.Equal(t, 4, got.Clients)
		assert.GreaterOrEqual(t, got.Seconds, 1.0, "the measured run lasts --duration")
		assert.Less(t, got.Seconds, 7.0, "the measured run ends within --duration plus --timeout")
		assert.Positive(t, got.OpsPerSec)
		assert.InDelta(t, got.Seconds*1000, got.ToMs-got.FromMs, 2, "the measured run's bounds match its length")
		assert.InDelta(t, time.Now().UnixMilli(), got.ToMs, 60_000, "the measured run ended just now")
		assert.Positive(t, got.CPU, "kvctl's CPU time")
		sane(t, got.Latency, 5_000_000)
		return got
	}

	for _, proto := range []string{"grpc", "grpc-node", "rest"} {
		t.Run(proto, func(t *testing.T) {
			var pa []string
			switch proto {
			case "rest":
				pa = []string{"--protocol=rest", "--http-endpoints=" + httpAddr}
			case "grpc-node":
				pa = []string{"--routing=node"}
			}
			put := run(append([]string{"bench", "put"}, pa...)...)
			assert.Equal(t, "cave", put.Target)
			assert.Equal(t, strings.TrimSuffix(proto, "-node"), put.Protocol)
			assert.Equal(t, put.Ops, put.Writes)
			assert.Zero(t, put.Prepopulated, "put reads nothing")

			get := run(append([]string{"bench", "get", "--consistency=stale"}, pa...)...)
			assert.Equal(t, "get", get.Op)
			assert.Equal(t, "stale", get.Consistency)
			assert.Equal(t, get.Ops, get.Reads)
			assert.Equal(t, 200, get.Prepopulated, "every key is written before the reads")

			cas := run(append([]string{"bench", "cas"}, pa...)...)
			assert.Equal(t, cas.Ops, cas.Writes, "no condition failed")
		})
	}

	mixed := run("bench", "mixed", "--read-ratio=0.5")
	assert.Positive(t, mixed.Reads)
	assert.Positive(t, mixed.Writes)
	require.NotNil(t, mixed.ReadLatency)
	sane(t, *mixed.ReadLatency, 5_000_000)

	// The table form names the load and the latencies.
	out := s.ok("", "bench", "put", "--duration=300ms", "--warmup=0s", "--clients=2")
	assert.Regexp(t, `(?m)^load\s+cave grpc put, linearizable, 2 clients, 1 conns x 1 endpoints, 10000 keys, 256-byte values$`, out)
	assert.Regexp(t, `(?m)^latency\s+p50 \d+\.\d{3}ms  p90 .* max \d+\.\d{3}ms$`, out)
	assert.Regexp(t, `(?m)^errors\s+0$`, out)
}

// TestKVCtlBenchNoServer checks that a run in which every call fails
// reports the failures by code and exits with status 1, within --duration
// and the calls' deadline.
func TestKVCtlBenchNoServer(t *testing.T) {
	t.Parallel()
	for _, target := range []string{"cave", "etcd"} {
		t.Run(target, func(t *testing.T) {
			t.Parallel()
			r := kvctl(t, "", nil, "--endpoints=127.0.0.1:1", "--timeout=200ms", "bench", "put",
				"--target="+target, "--json", "--duration=500ms", "--warmup=0s", "--clients=2")
			assert.Equal(t, 1, r.code, "stderr: %s", r.stderr)
			assert.Contains(t, r.stderr, "bench put: not one operation succeeded")
			var got benchJSON
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &got), "stdout: %s", r.stdout)
			assert.Zero(t, got.Ops)
			assert.Positive(t, got.Errors)
			var sum int64
			for code, n := range got.ErrorsByCode {
				assert.Contains(t, []string{"Unavailable", "DeadlineExceeded"}, code)
				sum += n
			}
			assert.Equal(t, got.Errors, sum)
		})
	}
}
