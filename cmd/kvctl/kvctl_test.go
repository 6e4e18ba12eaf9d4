package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cavedb/cave/auth"
	"github.com/cavedb/cave/internal/nodetest"
	"github.com/cavedb/cave/secrets"
)

// kvctlBin is the kvctl binary TestMain builds.
var kvctlBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kvctl-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	kvctlBin = filepath.Join(dir, "kvctl")
	if out, err := exec.Command("go", "build", "-o", kvctlBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building kvctl: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is one run of the kvctl binary.
type result struct {
	stdout, stderr string
	code           int
}

// kvctl runs the binary with args, stdin and extra environment variables.
func kvctl(t *testing.T, stdin string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), kvctlBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if err != nil {
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee, "running kvctl %v", args)
		r.code = ee.ExitCode()
	}
	return r
}

// session runs kvctl with fixed leading arguments: endpoints, credentials.
type session struct {
	t   *testing.T
	pre []string
}

// ok runs kvctl with stdin and args, requires it to succeed and returns
// its stdout.
func (s session) ok(stdin string, args ...string) string {
	s.t.Helper()
	r := kvctl(s.t, stdin, nil, slices.Concat(s.pre, args)...)
	require.Zero(s.t, r.code, "kvctl %v: stderr %s", args, r.stderr)
	return r.stdout
}

// fails runs kvctl with args, checks that it exits with status 1 and that
// its stderr contains wantStderr, and returns the result.
func (s session) fails(wantStderr string, args ...string) result {
	s.t.Helper()
	r := kvctl(s.t, "", nil, slices.Concat(s.pre, args)...)
	assert.Equal(s.t, 1, r.code, "exit code of kvctl %v (stdout %q)", args, r.stdout)
	assert.Contains(s.t, r.stderr, wantStderr, "stderr of kvctl %v", args)
	return r
}

// TestKVCtl runs the kvctl binary against a one-node cluster: every
// command, both output formats, stdin values, secrets, errors with the
// server's message and a non-zero exit, endpoint fallback and KVCTL_* env.
func TestKVCtl(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node and runs the kvctl binary")
	}
	c := nodetest.NewCluster(t, 1, nodetest.WithShards(2))
	s := session{t: t, pre: []string{"--endpoints=" + c.GRPCAddr(0)}}
	ok, fails := s.ok, s.fails

	assert.Contains(t, ok("", "version"), "kvctl ")

	assert.Regexp(t, `^OK revision \d+\n$`, ok("", "put", "app/x", "hello"))
	assert.Equal(t, "hello", ok("", "get", "app/x"))
	var got struct {
		Key         string `json:"key"`
		Value       []byte `json:"value"`
		ModRevision int64  `json:"mod_revision,string"`
		Version     int64  `json:"version,string"`
	}
	require.NoError(t, json.Unmarshal([]byte(ok("", "-o", "json", "get", "app/x")), &got))
	assert.Equal(t, "app/x", got.Key)
	assert.Equal(t, "hello", string(got.Value))
	assert.Equal(t, int64(1), got.Version)

	// Compare-and-swap with --prev-revision, and its failure.
	ok("", "put", "--prev-revision", fmt.Sprint(got.ModRevision), "app/x", "hello2")
	fails("FailedPrecondition: condition failed", "put", "--prev-revision", fmt.Sprint(got.ModRevision), "app/x", "hello3")
	assert.Equal(t, "hello2", ok("", "get", "app/x"))
	ok("", "put", "--prev-revision", "0", "app/new", "created")
	fails("FailedPrecondition", "put", "--prev-revision", "0", "app/new", "again")

	// Values from stdin, binary included, and secrets.
	bin := "line 1\nline 2\x00\xff"
	ok(bin, "put", "app/stdin", "-")
	assert.Equal(t, bin, ok("", "get", "app/stdin"))
	ok("s3cret-value\n", "put", "--secret", "app/secret", "-")
	assert.Equal(t, "s3cret-value\n", ok("", "get", "--secret", "app/secret"))
	env := ok("", "get", "app/secret")
	assert.True(t, secrets.IsEnvelope([]byte(env)), "a secret read without --secret is its envelope")
	assert.NotContains(t, env, "s3cret-value")
	fails("FailedPrecondition", "get", "--secret", "app/x")

	// Secrets keyring.
	assert.Regexp(t, `KEY_ID\s+KEY_COUNT\n1\s+1\n`, ok("", "secrets", "status"))
	assert.Equal(t, "rotated: new writes use data key 2 (2 keys)\n", ok("", "secrets", "rotate"))
	assert.JSONEq(t, `{"key_id":2,"key_count":2}`, ok("", "-o", "json", "secrets", "status"))
	assert.Equal(t, "s3cret-value\n", ok("", "get", "--secret", "app/secret"), "a secret sealed before the rotation")

	// list follows every page.
	for i := range 5 {
		ok("", "put", fmt.Sprintf("page/%d", i), "v")
	}
	lines := strings.Split(strings.TrimSpace(ok("", "list", "--page-size", "2", "page/")), "\n")
	require.Len(t, lines, 6, "header and 5 keys: %q", lines)
	assert.Regexp(t, `^KEY\s+MOD_REVISION\s+SIZE$`, lines[0])
	for i, l := range lines[1:] {
		assert.Regexp(t, fmt.Sprintf(`^page/%d\s+\d+\s+1$`, i), l)
	}
	var page struct {
		Items []struct{ Key string } `json:"items"`
	}
	require.NoError(t, json.Unmarshal([]byte(ok("", "-o", "json", "list", "--page-size", "2", "page/")), &page))
	assert.Len(t, page.Items, 5)

	// del, and del of a missing key.
	assert.Regexp(t, `^deleted at revision \d+\n$`, ok("", "del", "app/x"))
	fails("NotFound: key not found", "del", "app/x")
	fails("NotFound: key not found", "get", "app/x")

	// Without access control whoami shows no identity.
	assert.Regexp(t, `^SUBJECT\s+METHOD\s+ROLES\s+ACL\n-\s+-\s+-\s+off\n$`, ok("", "auth", "whoami"))

	// Cluster views.
	assert.Regexp(t, `(?m)^NAME\s+STATE\s+HTTP\s+GRPC\s+RAFT\s+GOSSIP\n`+c.Name(0)+`\s+alive\s`, ok("", "members"))
	sh := ok("", "shards")
	assert.Regexp(t, `(?m)^ID\s+LEADER\s+KEYS\s+BYTES\s+REPLICAS$`, sh)
	assert.Regexp(t, `(?m)^0\s+`+c.Name(0)+`\s+\d+\s+\d+\s+`+c.Name(0)+`\(\d+,voter\)$`, sh)
	var shj struct {
		Shards []struct {
			ID string `json:"id"`
		} `json:"shards"`
	}
	require.NoError(t, json.Unmarshal([]byte(ok("", "-o", "json", "shards")), &shj))
	assert.Len(t, shj.Shards, 3, "the meta shard and 2 data shards")

	// Bad input is refused with the server's message.
	fails("InvalidArgument", "get", "a//b")
	s.misused("usage: kvctl put [options] KEY VALUE", "put", "only-key")
	s.misused("-o must be table or json", "-o", "yaml", "get", "app/new")
	fails("--cert and --key go together", "--cert", "c.pem", "get", "app/new")

	// The first endpoint refuses connections; kvctl moves on.
	r := kvctl(t, "", nil, "--endpoints", "127.0.0.1:1,"+c.GRPCAddr(0), "get", "app/new")
	assert.Zero(t, r.code, r.stderr)
	assert.Equal(t, "created", r.stdout)
	// Flags from KVCTL_* variables.
	r = kvctl(t, "", []string{"KVCTL_ENDPOINTS=" + c.GRPCAddr(0), "KVCTL_OUTPUT=json"}, "get", "app/new")
	assert.Zero(t, r.code, r.stderr)
	assert.Contains(t, r.stdout, `"key": "app/new"`)
	// No server at all: Unavailable, after at most --timeout.
	start := time.Now()
	r = kvctl(t, "", nil, "--endpoints", "127.0.0.1:1", "--timeout", "2s", "get", "app/new")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "Unavailable")
	assert.Less(t, time.Since(start), 5*time.Second)
}

// TestKVCtlToken runs kvctl against a node with access control: without
// credentials it is refused with the server's message, with --token (or
// KVCTL_TOKEN) of the administrator every command works.
func TestKVCtlToken(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node and runs the kvctl binary")
	}
	c := nodetest.NewCluster(t, 1, nodetest.WithShards(1), nodetest.WithACL())
	ep := "--endpoints=" + c.GRPCAddr(0)
	r := kvctl(t, "", nil, ep, "put", "app/x", "v")
	assert.Equal(t, 1, r.code, "put without credentials: %s", r.stdout)
	assert.Contains(t, r.stderr, "Unauthenticated")

	tok := c.Token(0, auth.RootUser, time.Hour)
	r = kvctl(t, "", nil, ep, "--token", tok, "put", "--secret", "app/x", "v")
	require.Zero(t, r.code, r.stderr)
	r = kvctl(t, "", []string{"KVCTL_TOKEN=" + tok}, ep, "get", "--secret", "app/x")
	require.Zero(t, r.code, r.stderr)
	assert.Equal(t, "v", r.stdout)
	r = kvctl(t, "", nil, ep, "--token", tok, "secrets", "status")
	assert.Zero(t, r.code, r.stderr)
	r = kvctl(t, "", nil, ep, "--token", "cave_not-a-token", "get", "app/x")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "Unauthenticated")
}
