package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/urfave/cli/v2"

	"github.com/cavedb/cave/gateway"
)

// parseArgs runs the cave app's flag handling on args and returns the
// parsed settings instead of starting a node.
func parseArgs(t *testing.T, args ...string) (settings, error) {
	t.Helper()
	app := newApp()
	var got settings
	var perr error
	app.Action = func(c *cli.Context) error {
		got, perr = parseSettings(c)
		return nil
	}
	if err := app.Run(append([]string{"cave"}, args...)); err != nil {
		return got, err
	}
	return got, perr
}

// TestPrecedence checks flag > CAVE_* env > --config file > default for
// every kind of flag.
func TestPrecedence(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "cave.yaml")
	if err := os.WriteFile(cfg, []byte("mode: dev\nshards: 7\nhttp-addr: 127.0.0.1:1001\ngrpc-addr: 127.0.0.1:1002\ndead-node-timeout: 9s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CAVE_SHARDS", "6")
	t.Setenv("CAVE_HTTP_ADDR", "127.0.0.1:2001")
	s, err := parseArgs(t, "--config", cfg, "--http-addr", "127.0.0.1:3001")
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct{ what, got, want string }{
		{"flag beats env and file", s.HTTPAddr, "127.0.0.1:3001"},
		{"env beats file", itoa(s.Shards), "6"},
		{"file beats default", s.GRPCAddr, "127.0.0.1:1002"},
		{"file duration", s.DeadNodeTimeout.String(), "9s"},
		{"default", s.RaftAddr, "127.0.0.1:8742"},
		{"dev mode forces one replica", itoa(s.Replicas), "1"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.what, c.got, c.want)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestBadSettings(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--mode", "prod", "--insecure"}, "needs --bootstrap"},
		{[]string{"--mode", "prod", "--bootstrap"}, "needs --tls-ca, --tls-cert and --tls-key"},
		{[]string{"--mode", "prod", "--bootstrap", "--tls-ca", "ca.crt", "--tls-cert", "n1.crt"}, "needs --tls-ca, --tls-cert and --tls-key"},
		{[]string{"--mode", "prod", "--bootstrap", "--insecure", "--tls-ca", "ca.crt"}, "--insecure turns TLS off"},
		{[]string{"--mode", "dev", "--tls-cert", "n1.crt"}, "--mode=dev runs without TLS"},
		{[]string{"--mode", "staging"}, "--mode must be dev or prod"},
		{[]string{"--mode", "dev", "--http-addr", "nonsense"}, "--http-addr must be HOST:PORT"},
		{[]string{"--mode", "dev", "--log-format", "xml"}, "--log-format must be text or json"},
		{[]string{"--mode", "prod", "--insecure", "--bootstrap", "--join", "a:1"}, "--bootstrap creates a new cluster and --join enters an existing one; give only one of them"},
		{[]string{"--mode", "dev", "--join", "a:1"}, "--mode=dev runs one node on its own and joins nothing"},
		{[]string{"--mode", "dev", "--replicas", "3"}, "--mode=dev keeps one replica of each shard, got --replicas=3"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, err := parseArgs(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestJoinList(t *testing.T) {
	s, err := parseArgs(t, "--mode", "prod", "--insecure", "--join", "a:1, b:2", "--join", "c:3")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(s.Join, " "); got != "a:1 b:2 c:3" {
		t.Fatalf("join = %q", got)
	}
}

// parseEntries runs the cave app's flag handling on args and returns what
// /api/v1/system/config would show, by flag name.
func parseEntries(t *testing.T, args ...string) map[string]gateway.ConfigEntry {
	t.Helper()
	app := newApp()
	out := map[string]gateway.ConfigEntry{}
	app.Action = func(c *cli.Context) error {
		s, err := parseSettings(c)
		if err != nil {
			return err
		}
		for _, e := range configEntries(c, s) {
			out[e.Name] = e
		}
		return nil
	}
	if err := app.Run(append([]string{"cave"}, args...)); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestConfigSources checks the value and source that /api/v1/system/config
// shows for flags set each way, including a flag that overrides its env
// variable and one whose env variable overrides the file.
func TestConfigSources(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "cave.yaml")
	if err := os.WriteFile(cfg, []byte("mode: prod\ninsecure: true\nshards: 7\ngrpc-addr: 127.0.0.1:1002\ndead-node-timeout: 9s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CAVE_SHARDS", "6")
	t.Setenv("CAVE_HTTP_ADDR", "127.0.0.1:2001")
	t.Setenv("CAVE_LOG_FORMAT", "json")
	t.Setenv("CAVE_REPLICAS", "5")
	got := parseEntries(t, "--config", cfg, "--http-addr", "127.0.0.1:3001", "--node-name", "n1",
		"--join", "a:1,b:2", "--replicas", "5")
	want := []gateway.ConfigEntry{
		{Name: "config", Value: cfg, Source: sourceFlag},
		{Name: "http-addr", Value: "127.0.0.1:3001", Source: sourceFlag},
		{Name: "shards", Value: "6", Source: sourceEnv},
		{Name: "log-format", Value: "json", Source: sourceEnv},
		{Name: "grpc-addr", Value: "127.0.0.1:1002", Source: sourceFile},
		{Name: "dead-node-timeout", Value: "9s", Source: sourceFile},
		{Name: "mode", Value: "prod", Source: sourceFile},
		{Name: "insecure", Value: "true", Source: sourceFile},
		{Name: "raft-addr", Value: "127.0.0.1:8742", Source: sourceDefault},
		{Name: "max-value-bytes", Value: "1048576", Source: sourceDefault},
		{Name: "data-dir", Value: "cave-data", Source: sourceDefault},
		{Name: "node-name", Value: "n1", Source: sourceFlag},
		{Name: "join", Value: "a:1,b:2", Source: sourceFlag},
		// The flag repeats the env value: either source is right, and the
		// value is what matters.
		{Name: "replicas", Value: "5", Source: sourceEnv},
	}
	for _, w := range want {
		assert.Equal(t, w, got[w.Name], "setting %s", w.Name)
	}
	names := make([]string, 0, len(got))
	for _, f := range serverFlags() {
		names = append(names, f.Names()[0])
		assert.Contains(t, got, f.Names()[0], "every flag is listed")
	}
	assert.Len(t, got, len(names))
}

func TestConfigSourcesDevMode(t *testing.T) {
	got := parseEntries(t, "--mode", "dev")
	assert.Equal(t, gateway.ConfigEntry{Name: "replicas", Value: "1", Source: sourceMode}, got["replicas"], "dev mode forces one replica")
	assert.Equal(t, gateway.ConfigEntry{Name: "insecure", Value: "true", Source: sourceMode}, got["insecure"])
	assert.Equal(t, gateway.ConfigEntry{Name: "mode", Value: "dev", Source: sourceFlag}, got["mode"])
	host, err := os.Hostname()
	require.NoError(t, err)
	assert.Equal(t, gateway.ConfigEntry{Name: "node-name", Value: host, Source: sourceDefault}, got["node-name"])
}

// TestTLSSettings checks that the --tls-* files come from flags, CAVE_TLS_*
// and the YAML file, and that they make a prod node secure.
func TestTLSSettings(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "cave.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("tls-key: /file/n1.key\n"), 0o600))
	t.Setenv("CAVE_TLS_CERT", "/env/n1.crt")
	s, err := parseArgs(t, "--config", cfg, "--mode", "prod", "--bootstrap", "--tls-ca", "/flag/ca.crt", "--kek-file", "kek.hex")
	require.NoError(t, err)
	assert.Equal(t, "/flag/ca.crt", s.TLSCA)
	assert.Equal(t, "/env/n1.crt", s.TLSCert)
	assert.Equal(t, "/file/n1.key", s.TLSKey)
	assert.False(t, s.Insecure)
}

// TestHTTPTimeouts checks the defaults of the HTTP timeouts and that the
// flags and their variables set them.
func TestHTTPTimeouts(t *testing.T) {
	s, err := parseArgs(t, "--mode", "dev")
	require.NoError(t, err)
	assert.Equal(t, 30*time.Second, s.HTTPReadTimeout)
	assert.Equal(t, time.Minute, s.HTTPWriteTimeout)
	t.Setenv("CAVE_HTTP_WRITE_TIMEOUT", "0")
	s, err = parseArgs(t, "--mode", "dev", "--http-read-timeout", "5s")
	require.NoError(t, err)
	assert.Equal(t, 5*time.Second, s.HTTPReadTimeout)
	assert.Equal(t, time.Duration(0), s.HTTPWriteTimeout)
}

// TestDevModeReplicasOne checks that dev mode accepts --replicas=1, the
// value it keeps anyway.
func TestDevModeReplicasOne(t *testing.T) {
	s, err := parseArgs(t, "--mode", "dev", "--replicas", "1")
	require.NoError(t, err)
	assert.Equal(t, 1, s.Replicas)
}

// TestConfigFileErrors checks that a --config file that is missing, not
// YAML or has a key that is not a flag is refused in one line that names
// the file and the key.
func TestConfigFileErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(text), 0o600))
		return p
	}
	missing := filepath.Join(dir, "missing.yaml")
	unknown := write("unknown.yaml", "mode: dev\nshardz: 3\n")
	nested := write("config.yaml", "config: other.yaml\n")
	broken := write("broken.yaml", "mode: [dev\n")
	cases := []struct{ path, want string }{
		{missing, "--config: open " + missing + ": no such file or directory"},
		{unknown, "--config " + unknown + `: unknown setting "shardz" (the keys are flag names without --, see cave --help)`},
		{nested, "--config " + nested + `: unknown setting "config"`},
		{broken, "--config " + broken + ": not a YAML mapping of flag names to values: "},
	}
	for _, tc := range cases {
		_, err := parseArgs(t, "--config", tc.path)
		require.Error(t, err, tc.path)
		assert.Contains(t, err.Error(), tc.want)
		assert.NotContains(t, err.Error(), "\n", "one line")
	}
}

// TestBadFlagLeavesDataDirAlone starts cave with a setting that only a
// layer above the node checks (--max-value-bytes, the gateway's; a
// negative --http-read-timeout): the start fails naming the flag and the
// data dir is not created.
func TestBadFlagLeavesDataDirAlone(t *testing.T) {
	dir := t.TempDir()
	for _, bad := range [][]string{{"--max-value-bytes", "0"}, {"--http-read-timeout", "-1s"}} {
		t.Run(bad[0], func(t *testing.T) {
			data := filepath.Join(dir, "data"+bad[0])
			err := newApp().Run(append([]string{"cave", "--mode", "dev", "--data-dir", data,
				"--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0", "--gossip-addr", "127.0.0.1:0",
				"--log-level", "error"}, bad...))
			require.Error(t, err)
			assert.Contains(t, err.Error(), bad[0])
			_, statErr := os.Stat(data)
			assert.ErrorIs(t, statErr, os.ErrNotExist, "a refused start created the data dir")
		})
	}
}
