package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cavedb/cave/internal/nodetest"
)

// TestKVCtlUsageErrors checks what kvctl refuses before it sends
// anything: unknown commands (status 1, naming the command), a
// non-positive --timeout and keys gRPC could not encode; and that --help
// shows each flag's placeholder.
func TestKVCtlUsageErrors(t *testing.T) {
	s := session{t: t, pre: []string{"--endpoints=127.0.0.1:1"}}
	s.fails(`unknown command "nosuch"; see kvctl --help`, "nosuch")
	s.fails(`unknown command "nosuch"; see kvctl secrets --help`, "secrets", "nosuch")
	s.fails(`unknown command "nosuch"; see kvctl auth user --help`, "auth", "user", "nosuch")
	s.fails("--timeout must be positive, got 0s", "--timeout", "0", "get", "k")
	s.fails("--timeout must be positive, got -1s", "--timeout", "-1s", "get", "k")
	for _, cmd := range [][]string{{"get", "a\xffb"}, {"put", "a\xffb", "v"}, {"del", "a\xffb"}} {
		r := s.fails("InvalidArgument: key must be valid UTF-8", cmd...)
		assert.NotContains(t, r.stderr, "marshaling")
	}
	s.fails("InvalidArgument: prefix must be valid UTF-8", "list", "a\xff")
	for _, e := range []string{"127.0.0.1", ":8741", "localhost:99999", "localhost:0", "a:1,b"} {
		r := kvctl(t, "", nil, "--endpoints", e, "get", "k")
		assert.Equal(t, 1, r.code, e)
		assert.Contains(t, r.stderr, "is not HOST:PORT (a host and a port in [1, 65535])", e)
	}
	r := kvctl(t, "", nil, "--endpoints", "nosuchhost.invalid:8741", "--timeout", "3s", "get", "k")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "the host of an --endpoints entry has no address (DNS)")

	r = kvctl(t, "", nil)
	assert.Zero(t, r.code, "kvctl alone shows the help: %s", r.stderr)
	assert.Contains(t, r.stdout, "COMMANDS:")
	help := kvctl(t, "", nil, "--help").stdout
	for _, want := range []string{"--endpoints HOST:PORT", "--cacert FILE", "--cert FILE", "--key FILE", "--token TOKEN", "--timeout DURATION"} {
		assert.Contains(t, help, want)
	}
	assert.NotContains(t, help, "--cert cave")
	assert.Contains(t, help, "with TLS the gRPC port still needs a client certificate")
}

// TestKVCtlTransportErrors checks that two refusals of the gRPC
// transport read as cave's: a value over the node's limit, and a
// plaintext kvctl against a node that serves TLS.
func TestKVCtlTransportErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("starts nodes and runs the kvctl binary")
	}
	const maxValue = 64
	c := nodetest.NewCluster(t, 1, nodetest.WithShards(1), nodetest.WithMaxValueBytes(maxValue))
	s := session{t: t, pre: []string{"--endpoints=" + c.GRPCAddr(0)}}
	s.fails("ResourceExhausted: value is 65 bytes, the limit is 64 (--max-value-bytes)", "put", "big/a", strings.Repeat("x", maxValue+1))
	r := kvctl(t, strings.Repeat("x", 200<<10), nil, "--endpoints="+c.GRPCAddr(0), "put", "big/b", "-")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "ResourceExhausted: value is larger than the node's limit (--max-value-bytes)")
	assert.NotContains(t, r.stderr, "received message larger than max")

	secure := nodetest.NewCluster(t, 1, nodetest.WithShards(1), nodetest.WithTLS())
	r = kvctl(t, "", nil, "--endpoints="+secure.GRPCAddr(0), "--timeout=5s", "get", "k")
	require.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "if it serves TLS, pass --cacert, --cert and --key", r.stderr)
}
