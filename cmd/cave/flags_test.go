package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
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
	if err := os.WriteFile(cfg, []byte("mode: dev\nshards: 7\nreplicas: 5\nhttp-addr: 127.0.0.1:1001\ngrpc-addr: 127.0.0.1:1002\ndead-node-timeout: 9s\n"), 0o600); err != nil {
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
		{[]string{"--mode", "prod", "--bootstrap"}, "needs --insecure"},
		{[]string{"--mode", "staging"}, "--mode must be dev or prod"},
		{[]string{"--mode", "dev", "--http-addr", "nonsense"}, "--http-addr must be HOST:PORT"},
		{[]string{"--mode", "dev", "--log-format", "xml"}, "--log-format must be text or json"},
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
