package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cavedb/cave/internal/nodetest"
)

// TestWatchFlags checks the command lines kvctl watch refuses before it
// connects: exit status 2 and the reason.
func TestWatchFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"watch", "--duration", "-1s", "a/"}, "--duration must be >= 0"},
		{[]string{"watch", "--exact"}, "--exact needs the KEY"},
		{[]string{"watch", "a/", "b/"}, "usage: kvctl watch [options] [PREFIX]"},
		{[]string{"watch", "--duration", "soon", "a/"}, "invalid value"},
		{[]string{"-o", "yaml", "watch", "a/"}, "-o must be table or json"},
	} {
		r := kvctl(t, "", nil, append([]string{"--endpoints=127.0.0.1:1"}, tc.args...)...)
		assert.Equal(t, 2, r.code, "kvctl %v: %s", tc.args, r.stderr)
		assert.Contains(t, r.stderr, tc.want, "kvctl %v", tc.args)
	}
}

// resumeToken returns the token a kvctl watch printed on exit.
func resumeToken(t *testing.T, stderr string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^resume token: (\S+)$`).FindStringSubmatch(stderr)
	require.NotNil(t, m, "no resume token in %q", stderr)
	return m[1]
}

// lockedBuffer is a bytes.Buffer safe to read while a process writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestWatch runs kvctl watch against a one-node cluster: a bounded run
// that yields a token, a resume from it that prints the writes made since
// (table, keys only, JSON lines), the token of a resumed run moving on,
// and a run ended by SIGINT that exits 0 with its token.
func TestWatch(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node and runs the kvctl binary")
	}
	c := nodetest.NewCluster(t, 1, nodetest.WithShards(2))
	s := session{t: t, pre: []string{"--endpoints=" + c.GRPCAddr(0)}}

	r := kvctl(t, "", nil, append(s.pre, "watch", "--duration", "500ms", "app/")...)
	require.Zero(t, r.code, r.stderr)
	assert.Empty(t, r.stdout, "no change, no line")
	start := resumeToken(t, r.stderr)

	s.ok("", "put", "app/a", "one")
	s.ok("", "put", "app/b", "two words")
	s.ok("", "put", "other/c", "unwatched")
	s.ok("", "del", "app/a")

	r = kvctl(t, "", nil, append(s.pre, "watch", "--from", start, "--duration", "1s", "app/")...)
	require.Zero(t, r.code, r.stderr)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	require.Len(t, lines, 3, r.stdout)
	// app/a and app/b may be on different shards: only app/a's two events
	// have an order.
	assert.Regexp(t, `^PUT app/a rev=\d+ "one"$`, lines[lineIndex(lines, "PUT app/a")])
	assert.Regexp(t, `^PUT app/b rev=\d+ "two words"$`, lines[lineIndex(lines, "PUT app/b")])
	assert.Regexp(t, `^DELETE app/a rev=\d+$`, lines[lineIndex(lines, "DELETE app/a")])
	assert.Less(t, lineIndex(lines, "PUT app/a"), lineIndex(lines, "DELETE app/a"))
	after := resumeToken(t, r.stderr)
	assert.NotEqual(t, start, after)

	// From the later token nothing is left to print.
	r = kvctl(t, "", nil, append(s.pre, "watch", "--from", after, "--duration", "500ms", "app/")...)
	require.Zero(t, r.code, r.stderr)
	assert.Empty(t, r.stdout)

	out := s.ok("", "watch", "--from", start, "--keys-only", "--exact", "--duration", "1s", "app/b")
	assert.Regexp(t, `^PUT app/b rev=\d+\n$`, out)

	out = s.ok("", "-o", "json", "watch", "--from", start, "--exact", "--duration", "1s", "app/b")
	var events []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var resp struct {
			Events []struct {
				Type  string `json:"type"`
				Key   string `json:"key"`
				Value []byte `json:"value"`
			} `json:"events"`
			ResumeToken string `json:"resume_token"`
		}
		require.NoError(t, json.Unmarshal([]byte(line), &resp), line)
		assert.NotEmpty(t, resp.ResumeToken)
		for _, e := range resp.Events {
			events = append(events, fmt.Sprintf("%s %s %s", e.Type, e.Key, e.Value))
		}
	}
	assert.Equal(t, []string{"EVENT_TYPE_PUT app/b two words"}, events)

	// A run until interrupted: SIGINT ends it with status 0 and the token.
	cmd := exec.CommandContext(t.Context(), kvctlBin, append(s.pre, "watch", "--from", start, "app/")...)
	var stdout, stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Start())
	nodetest.Eventually(t, 30*time.Second, "the watch prints", func(context.Context) string {
		if strings.Count(stdout.String(), "\n") < 3 {
			return "fewer than 3 lines"
		}
		return ""
	})
	require.NoError(t, cmd.Process.Signal(os.Interrupt))
	require.NoError(t, cmd.Wait(), stderr.String())
	assert.Equal(t, after, resumeToken(t, stderr.String()))
}

// lineIndex returns the index of the first line that starts with
// prefix followed by a space, or -1.
func lineIndex(lines []string, prefix string) int {
	for i, l := range lines {
		if strings.HasPrefix(l, prefix+" ") {
			return i
		}
	}
	return -1
}
