package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// drainShards is the data shard count of the drain test's cluster.
const drainShards = 6

// drainWorkload is rebalWorkload with a load phase short enough that the
// whole drain test, start-up and checks included, stays within 90 s.
var drainWorkload = linWorkload{clients: 4, maxOps: 3000, minGap: 20 * time.Millisecond, keys: 8, bound: 50 * time.Second}

// runKvctl runs the kvctl binary at bin against the gRPC address endpoint
// with args, for at most timeout, and returns its standard output. It
// fails the test when kvctl does not exit 0, showing its standard error.
func runKvctl(t *testing.T, bin, endpoint string, timeout time.Duration, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--endpoints", endpoint}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	require.NoError(t, cmd.Run(), "kvctl %s:\nstdout: %s\nstderr: %s", strings.Join(args, " "), out.String(), errb.String())
	return out.String()
}

// nodeStates returns each node's placement state as kvctl -o json status
// prints it.
func nodeStates(t *testing.T, statusJSON string) map[string]string {
	t.Helper()
	var st struct {
		Status struct {
			Nodes []struct {
				Name  string `json:"name"`
				State string `json:"state"`
			} `json:"nodes"`
		} `json:"status"`
	}
	require.NoError(t, json.Unmarshal([]byte(statusJSON), &st), "kvctl -o json status: %s", statusJSON)
	out := map[string]string{}
	for _, n := range st.Status.Nodes {
		out[n.Name] = n.State
	}
	return out
}

// TestDrainAndRemove drains a node of a balanced 4-node cluster with
// `kvctl node drain` under porcupine-checked load, removes it with `kvctl
// node remove` and stops it: every replica and leadership must leave it
// without any shard ever short of three voters, each shard must end with
// three voters on the other nodes, kvctl status must show it removed, the
// history must be linearizable, and every key written before the load must
// still be readable.
func TestDrainAndRemove(t *testing.T) {
	start := time.Now()
	kvctl := kvctlBinary(t)
	c, rc, keys, vals := newRebalCluster(t, 4, 4, drainShards, 100, 256)
	c.waitBalanced(rc, 4, time.Now())

	// The node to drain: of those that did not bootstrap, the one leading
	// the most shards, so the drain moves leaderships as well as replicas.
	ss := c.WaitShards(rc, 10*time.Second, allOf(fullyReplicated(drainShards, 3), balanced(c.nodeNames(4), 1)))
	leaders := leaderCounts(ss)
	victim := 2
	for i := 3; i <= c.N(); i++ {
		if leaders[c.Name(i)] > leaders[c.Name(victim)] {
			victim = i
		}
	}
	name := c.Name(victim)
	var rest []string
	for i := 1; i <= c.N(); i++ {
		if i != victim {
			rest = append(rest, c.Name(i))
		}
	}
	endpoint := c.node(1).grpcAddr
	t.Logf("draining %s: replicas %v, leaders %v", name, replicaCounts(ss), leaders)

	watch := watchMoves(c, rc, 3, drainWorkload.bound+15*time.Second)
	runLinearizable(t, c, rc, drainWorkload, func(pause func(time.Duration)) {
		pause(2 * time.Second)
		began := time.Now()
		out := runKvctl(t, kvctl, endpoint, 45*time.Second, "node", "drain", "--timeout", "40s", name)
		drained := time.Since(began)
		t.Logf("kvctl node drain %s took %v:\n%s", name, drained.Round(time.Millisecond), out)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		assert.Contains(t, lines[len(lines)-1], name+": drained", "kvctl node drain ends with the node drained")
		assert.Greater(t, len(lines), 1, "kvctl node drain shows its progress before the node is drained")

		out = runKvctl(t, kvctl, endpoint, 15*time.Second, "node", "remove", name)
		assert.Equal(t, name+" removed\n", out)

		ss := c.WaitShards(rc, 10*time.Second, fullyReplicated(drainShards, 3, name))
		assert.NotContains(t, replicaCounts(ss), name, "the removed node holds a replica")
		states := nodeStates(t, runKvctl(t, kvctl, endpoint, 15*time.Second, "-o", "json", "status"))
		assert.Equal(t, "removed", states[name], "kvctl status: %v", states)
		for _, n := range rest {
			assert.Equal(t, "alive", states[n], "kvctl status: %v", states)
		}
		t.Logf("kvctl status:\n%s", runKvctl(t, kvctl, endpoint, 15*time.Second, "status"))

		took := c.Stop(victim, 15*time.Second)
		t.Logf("SIGTERM %s: exited in %v", name, took.Round(time.Millisecond))
		assert.Less(t, took, 10*time.Second, "graceful stop of the removed node")
		pause(time.Second)
	})
	watch.finish(t)
	t.Logf("moves: %s", c.moveOutcomes())
	checkKeys(t, c, rc, 1, keys, vals)
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}
