package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cavedb/cave/internal/nodetest"
)

// misused runs kvctl with args, checks that it exits with status 2 (a
// malformed command line) and that its stderr contains wantStderr.
func (s session) misused(wantStderr string, args ...string) {
	s.t.Helper()
	r := kvctl(s.t, "", nil, slices.Concat(s.pre, args)...)
	assert.Equal(s.t, 2, r.code, "exit code of kvctl %v (stdout %q, stderr %q)", args, r.stdout, r.stderr)
	assert.Contains(s.t, r.stderr, wantStderr, "stderr of kvctl %v", args)
}

// TestAdminUsage checks that malformed placement commands exit with
// status 2 before any call: no server listens.
func TestAdminUsage(t *testing.T) {
	s := session{t: t, pre: []string{"--endpoints=127.0.0.1:1", "--timeout=1s"}}
	for _, tc := range []struct {
		want string
		args []string
	}{
		{"usage: kvctl shard move [options] SHARD", []string{"shard", "move"}},
		{`SHARD must be a shard id (0 is the meta shard), got "x"`, []string{"shard", "move", "--from", "a", "--to", "b", "x"}},
		{"--from is required", []string{"shard", "move", "--to", "b", "1"}},
		{"--to is required", []string{"shard", "move", "--from", "a", "1"}},
		{"--to is required", []string{"leader", "transfer", "1"}},
		{"SHARD must be a shard id", []string{"leader", "transfer", "--to", "b", "one"}},
		{"usage: kvctl node drain [options] NODE", []string{"node", "drain"}},
		{"usage: kvctl node remove NODE", []string{"node", "remove", "a", "b"}},
		{"--max-concurrent must be in [0, 65536], got -1", []string{"rebalance", "apply", "--max-concurrent", "-1"}},
		{"flag provided but not defined: -bogus", []string{"rebalance", "apply", "--bogus"}},
		{"usage: kvctl status", []string{"status", "extra"}},
		{"-o must be table or json", []string{"-o", "yaml", "status"}},
	} {
		s.misused(tc.want, tc.args...)
	}
}

// TestAdminCommands runs every placement command against a 4-node
// cluster: status, a manual move and leadership transfer while
// rebalancing is paused, plan and apply, a drain with --wait and the
// removal of the drained node, and the server's refusals with exit 1.
func TestAdminCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 4-node cluster and runs the kvctl binary")
	}
	c := nodetest.NewCluster(t, 3, nodetest.WithShards(2), nodetest.WithMetaVoters(3))
	c.AddNode()
	c.WaitStable(t)
	// Every node is an endpoint: the drained one loses its meta replica
	// and answers Unavailable, and kvctl moves on.
	eps := make([]string, 4)
	for i := range eps {
		eps[i] = c.GRPCAddr(i)
	}
	s := session{t: t, pre: []string{"--endpoints=" + strings.Join(eps, ",")}}

	assert.Equal(t, "rebalancing paused\n", s.ok("", "rebalance", "pause"))
	st := s.ok("", "status")
	assert.Regexp(t, `(?m)^NODE\s+STATE\s+REPLICAS\s+LEADERS$`, st)
	for i := range 4 {
		assert.Regexp(t, `(?m)^`+c.Name(i)+`\s+alive\s+\d+\s+\d+$`, st)
	}
	assert.Contains(t, st, "rebalancing: paused\n")
	assert.Regexp(t, `under-replicated shards: \S+`, st)
	assert.Regexp(t, `imbalance \(max-min per alive node\): replicas \d+, leaders \d+`, st)
	var sj struct {
		Status struct {
			Paused bool `json:"paused"`
			Nodes  []struct{ Name, State string }
		} `json:"status"`
		Shards struct {
			Shards []struct {
				ID       string `json:"id"`
				Leader   string `json:"leader"`
				Replicas []struct{ Node string }
			} `json:"shards"`
		} `json:"shards"`
	}
	require.NoError(t, json.Unmarshal([]byte(s.ok("", "-o", "json", "status")), &sj))
	assert.True(t, sj.Status.Paused)
	assert.Len(t, sj.Status.Nodes, 4)

	// Shard 1: 3 replicas on 4 nodes; spare holds none.
	var holders []string
	for _, sh := range sj.Shards.Shards {
		if sh.ID == "1" {
			for _, r := range sh.Replicas {
				holders = append(holders, r.Node)
			}
		}
	}
	require.Len(t, holders, 3, "%+v", sj.Shards)
	spare := ""
	for i := range 4 {
		if !slices.Contains(holders, c.Name(i)) {
			spare = c.Name(i)
		}
	}
	out := s.ok("", "shard", "move", "--from", holders[0], "--to", spare, "1")
	assert.Regexp(t, fmt.Sprintf(`^moving shard 1 from %s to %s \(new replica \d+\); follow it with kvctl status\n$`, holders[0], spare), out)
	nodetest.Eventually(t, time.Minute, "replica not moved", func(ctx context.Context) string {
		if st := s.ok("", "status"); !strings.Contains(st, "moves in flight: 0") {
			return st
		}
		return ""
	})
	c.WaitReplicas(t, 1, 3)
	assert.Equal(t, "leadership of shard 1 is moving to "+spare+"\n", s.ok("", "leader", "transfer", "--to", spare, "1"))
	nodetest.Eventually(t, time.Minute, "leadership not moved", func(ctx context.Context) string {
		if l := c.WaitLeader(ctx, 1); l != spare {
			return "leader is " + l
		}
		return ""
	})

	// The server's refusals: exit 1 with its code and message.
	s.fails("InvalidArgument: shard 99 does not exist", "shard", "move", "--from", holders[1], "--to", holders[0], "99")
	s.fails("FailedPrecondition: node "+holders[1]+" still holds", "node", "remove", holders[1])
	s.fails(`InvalidArgument: node "nope" is not a member`, "node", "drain", "nope")

	// Draining the spare while paused: plan and apply move it off.
	assert.Equal(t, spare+" draining; follow it with kvctl status\n", s.ok("", "node", "drain", "--wait=false", spare))
	plan := s.ok("", "rebalance", "plan")
	assert.Regexp(t, `(?m)^KIND\s+SHARD\s+REPLICA\s+NODE\s+REASON$`, plan)
	dry := s.ok("", "rebalance", "apply", "--dry-run")
	assert.Regexp(t, `(?m)^planned \S+ shard=\d+`, dry)
	assert.NotContains(t, dry, "in flight")
	applied := s.ok("", "rebalance", "apply", "--max-concurrent", "1")
	assert.Regexp(t, `^planned \S+ shard=\d+.*\n(in flight 1\n)?done shard \d+\n$`, applied)

	assert.Equal(t, "rebalancing resumed\n", s.ok("", "rebalance", "resume"))
	drained := s.ok("", "node", "drain", spare)
	assert.Regexp(t, `(?m)^`+spare+`: \d+ replicas, \d+ leaders left$`, drained)
	assert.True(t, strings.HasSuffix(drained, spare+": drained; remove it with kvctl node remove "+spare+"\n"), drained)
	assert.Equal(t, spare+" removed\n", s.ok("", "node", "remove", spare))
	assert.Regexp(t, `(?m)^`+spare+`\s+removed\s+0\s+0$`, s.ok("", "status"))
	assert.Equal(t, "{}\n", s.ok("", "-o", "json", "rebalance", "pause"))
}
