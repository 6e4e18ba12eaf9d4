package e2e

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The rebalancing tests start a cluster with spare node slots, join nodes
// into it under porcupine-checked load, and break things while the
// coordinator's moves (node/coordinator.go, node/moves.go) are in flight.
// Each ends with the cluster balanced and fully replicated, the history
// linearizable, and every key written before the load still readable.

const (
	// rebalShards is the data shard count of the rebalancing clusters:
	// enough that a joining node has several replicas and leaderships to
	// take.
	rebalShards = 8
	// rebalSettle bounds each wait for the cluster to balance.
	rebalSettle = 75 * time.Second
)

// rebalWorkload is defaultWorkload bounded to fit a rebalancing test:
// fewer clients on two busy cores, and a load phase that cannot outlast
// the waits for the cluster to balance.
var rebalWorkload = linWorkload{clients: 4, maxOps: 4000, minGap: 20 * time.Millisecond, keys: 8, bound: 85 * time.Second}

// startedSlots is a linTarget over the first n node slots of a procCluster,
// where n grows as nodes join, so the load goes only to nodes that were
// started (a stopped or killed one among them refuses, as in the other
// tests).
type startedSlots struct {
	*procCluster
	n atomic.Int64
	// shards is the cluster's data shard count (--shards).
	shards int
}

// N returns how many node slots the load may use.
func (s *startedSlots) N() int { return int(s.n.Load()) }

// join starts node slot i, which must be the next unused one, waits until
// it is ready and lets the load use it.
func (s *startedSlots) join(i int) {
	s.t.Helper()
	require.Equal(s.t, s.N()+1, i, "nodes join in slot order")
	s.Start(i)
	s.WaitReady(i, 30*time.Second)
	s.n.Store(int64(i))
}

// newRebalCluster starts the first `start` of `slots` nodes with
// `shards` data shards of three replicas, waits until they are fully
// replicated and writes numKeys keys of valueBytes random bytes each. It
// returns the cluster, a REST client and the keys and values written.
func newRebalCluster(t *testing.T, slots, start, shards, numKeys, valueBytes int) (*startedSlots, *restClient, []string, map[string][]byte) {
	t.Helper()
	began := time.Now()
	c := &startedSlots{procCluster: newProcClusterStopped(t, slots, withShards(shards), withReplicas(3)), shards: shards}
	for i := 1; i <= start; i++ {
		c.join(i)
	}
	rc := newRESTClient(3 * time.Second)
	t.Cleanup(rc.close)
	c.WaitShards(rc, 60*time.Second, fullyReplicated(shards, 3))
	t.Logf("%d nodes ready and replicated after %v", start, time.Since(began).Round(time.Millisecond))

	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 1))
	keys := make([]string, numKeys)
	vals := make(map[string][]byte, numKeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("e2e/rebal/%05d", i)
		v := make([]byte, valueBytes)
		for j := range v {
			v[j] = byte(rng.Uint32())
		}
		vals[keys[i]] = v
	}
	wrote := time.Now()
	errs, st := writeAll(c.procCluster, rc, keys, vals, 8, 15*time.Second, seed)
	require.Empty(t, errs, "writes failed:\n  %s", firstN(errs, 20))
	t.Logf("wrote %d keys of %d bytes in %v: %v", numKeys, valueBytes, time.Since(wrote).Round(time.Millisecond), st)
	return c, rc, keys, vals
}

// checkKeys reads every key written by newRebalCluster through node i and
// fails the test on any that is missing or wrong.
func checkKeys(t *testing.T, c *startedSlots, rc *restClient, i int, keys []string, vals map[string][]byte) {
	t.Helper()
	errs, st := readAllFrom(c.procCluster, rc, i, keys, vals, 6, 10*time.Second)
	t.Logf("read %d keys back through %s: %v", len(keys), c.Name(i), st)
	assert.Empty(t, errs, "keys written before the load are lost or wrong:\n  %s", firstN(errs, 20))
}

// allOf is the shardCheck that finds what any of checks finds.
func allOf(checks ...shardCheck) shardCheck {
	return func(ss []shardInfo) string {
		var problems []string
		for _, check := range checks {
			if p := check(ss); p != "" {
				problems = append(problems, p)
			}
		}
		return strings.Join(problems, "; ")
	}
}

// balanced wants every node in nodes to hold a number of replicas, and to
// lead a number of shards, within tolerance of the even share (the total
// over len(nodes)), counting every shard, the meta shard included, and
// wants no replica or leader on any other node.
func balanced(nodes []string, tolerance int) shardCheck {
	return func(ss []shardInfo) string {
		var problems []string
		for _, what := range []struct {
			name   string
			counts map[string]int
		}{{"replicas", replicaCounts(ss)}, {"leaders", leaderCounts(ss)}} {
			total := 0
			for _, n := range what.counts {
				total += n
			}
			even := float64(total) / float64(len(nodes))
			for _, name := range nodes {
				if got := what.counts[name]; math.Abs(float64(got)-even) > float64(tolerance) {
					problems = append(problems, fmt.Sprintf("%s holds %d %s, want %.1f±%d", name, got, what.name, even, tolerance))
				}
			}
			for name, got := range what.counts {
				if !slices.Contains(nodes, name) {
					problems = append(problems, fmt.Sprintf("%s holds %d %s, want none", name, got, what.name))
				}
			}
		}
		sort.Strings(problems)
		return strings.Join(problems, "; ")
	}
}

// safeDuringMoves is what must hold at every moment of a move: every shard
// keeps at least replicas voters in its records and no shard has two
// replicas on one node or two with one id. A shard's leader may be unknown
// for a moment (an election).
func safeDuringMoves(replicas int) shardCheck {
	return func(ss []shardInfo) string {
		var problems []string
		for _, s := range ss {
			voters := 0
			nodes, ids := map[string]bool{}, map[jsonInt]bool{}
			for _, r := range s.Replicas {
				if r.Role == "voter" {
					voters++
				}
				if nodes[r.Node] {
					problems = append(problems, fmt.Sprintf("shard %d has two replicas on %s", s.ID, r.Node))
				}
				if ids[r.ReplicaID] {
					problems = append(problems, fmt.Sprintf("shard %d has two replicas with id %d", s.ID, r.ReplicaID))
				}
				nodes[r.Node], ids[r.ReplicaID] = true, true
			}
			if voters < replicas {
				problems = append(problems, fmt.Sprintf("shard %d has %d voters, want at least %d", s.ID, voters, replicas))
			}
		}
		return strings.Join(problems, "; ")
	}
}

// learnerOn finds nothing wrong once some data shard has a learner on node
// name (on any node when name is ""): a move is in flight.
func learnerOn(name string) shardCheck {
	return func(ss []shardInfo) string {
		for _, s := range ss {
			for _, r := range s.Replicas {
				if s.ID != 0 && r.Role == "learner" && (name == "" || r.Node == name) {
					return ""
				}
			}
		}
		if name == "" {
			return "no data shard has a learner"
		}
		return "no data shard has a learner on " + name
	}
}

// learners lists the learners of the data shards in ss as
// "shard/replica@node".
func learners(ss []shardInfo) []string {
	var out []string
	for _, s := range ss {
		for _, r := range s.Replicas {
			if s.ID != 0 && r.Role == "learner" {
				out = append(out, fmt.Sprintf("%d/%d@%s", s.ID, r.ReplicaID, r.Node))
			}
		}
	}
	return out
}

// moveWatch polls /cluster/shards on the running nodes in the background
// until stopped, at most once per 300 ms and for at most its bound, and
// records every violation of safeDuringMoves and every replica id of a
// shard that shows up on a second node (ids are never reused).
type moveWatch struct {
	stop func()
	done chan struct{}

	mu         sync.Mutex
	polls      int
	violations []string
	seen       map[string]string // "shard/replica id" → node
	learners   int               // most learners seen at once
}

func watchMoves(c *startedSlots, rc *restClient, replicas int, bound time.Duration) *moveWatch {
	ctx, stop := context.WithTimeout(c.ctx(), bound)
	w := &moveWatch{stop: stop, done: make(chan struct{}), seen: map[string]string{}}
	safe := safeDuringMoves(replicas)
	go func() {
		defer close(w.done)
		tick := time.NewTicker(300 * time.Millisecond)
		defer tick.Stop()
		for n := 0; ; n++ {
			if running := c.runningNodes(); len(running) > 0 {
				i := running[n%len(running)]
				if ss, err := rc.shards(c.URL(i)); err == nil {
					w.observe(c.Name(i), ss, safe)
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

func (w *moveWatch) observe(from string, ss []shardInfo, safe shardCheck) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.polls++
	if p := safe(ss); p != "" && len(w.violations) < 50 {
		w.violations = append(w.violations, fmt.Sprintf("%s at %s: %s", from, time.Now().Format("15:04:05.000"), p))
	}
	for _, s := range ss {
		for _, r := range s.Replicas {
			key := fmt.Sprintf("%d/%d", s.ID, r.ReplicaID)
			if prev, ok := w.seen[key]; ok && prev != r.Node && len(w.violations) < 50 {
				w.violations = append(w.violations, fmt.Sprintf("%s: shard %d replica %d moved from %s to %s (an id reused)", from, s.ID, r.ReplicaID, prev, r.Node))
			}
			w.seen[key] = r.Node
		}
	}
	w.learners = max(w.learners, len(learners(ss)))
}

// finish stops the watch and fails the test on any violation it saw.
func (w *moveWatch) finish(t *testing.T) {
	t.Helper()
	w.stop()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	t.Logf("move watch: %d polls, at most %d data-shard learners at once, %d replica ids seen", w.polls, w.learners, len(w.seen))
	assert.Empty(t, w.violations, "placement unsafe during moves:\n  %s", firstN(w.violations, 20))
}

// moveOutcomes counts the moves the nodes' logs report done and rolled
// back, and how many were planned.
func (c *startedSlots) moveOutcomes() string {
	counts := map[string]int{}
	for i := 1; i <= c.N(); i++ {
		log := readFile(c.node(i).logPath)
		for _, what := range []string{"move planned", "learner added", "learner promoted", "move done", "move rolled back", "replica removed from shard"} {
			counts[what] += strings.Count(log, `msg="`+what)
		}
	}
	return formatCounts(counts)
}

// nodeNames returns the names of node slots 1..n.
func (c *startedSlots) nodeNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = c.Name(i + 1)
	}
	return out
}

// waitBalanced waits until the first n nodes are balanced within one and
// every shard is fully replicated, and returns how long that took from
// since.
func (c *startedSlots) waitBalanced(rc *restClient, n int, since time.Time) time.Duration {
	c.t.Helper()
	ss := c.WaitShards(rc, rebalSettle, allOf(fullyReplicated(c.shards, 3), balanced(c.nodeNames(n), 1)))
	took := time.Since(since)
	c.t.Logf("balanced over %d nodes %v after the change: replicas %v, leaders %v", n, took.Round(time.Millisecond), replicaCounts(ss), leaderCounts(ss))
	return took
}

// metaLeader returns the index of the node that leads the meta shard.
func (c *startedSlots) metaLeader(rc *restClient) int {
	c.t.Helper()
	ss := c.WaitShards(rc, 30*time.Second, metaShardWithout())
	for _, s := range ss {
		if s.ID == 0 {
			return c.Index(s.Leader)
		}
	}
	c.t.Fatalf("meta shard not listed")
	return 0
}

// TestScaleOutRebalances joins two nodes to a 3-node cluster under load:
// the coordinator must give them their share of replicas and leaderships
// without ever leaving a shard short of voters.
func TestScaleOutRebalances(t *testing.T) {
	start := time.Now()
	c, rc, keys, vals := newRebalCluster(t, 5, 3, rebalShards, 300, 256)
	watch := watchMoves(c, rc, 3, rebalWorkload.bound+rebalSettle)
	runLinearizable(t, c, rc, rebalWorkload, func(pause func(time.Duration)) {
		pause(2 * time.Second)
		joined := time.Now()
		c.join(4)
		c.join(5)
		c.waitBalanced(rc, 5, joined)
		pause(time.Second)
	})
	watch.finish(t)
	t.Logf("moves: %s", c.moveOutcomes())
	checkKeys(t, c, rc, 5, keys, vals)
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}

// TestKillCoordinatorMidMove kills the node leading the meta shard, where
// the coordinator runs, with SIGKILL while moves toward a joining node are
// in flight, and restarts it: the next meta leader must take the recorded
// moves over, and the cluster must still balance.
func TestKillCoordinatorMidMove(t *testing.T) {
	start := time.Now()
	c, rc, keys, vals := newRebalCluster(t, 4, 3, rebalShards, 300, 256)
	watch := watchMoves(c, rc, 3, rebalWorkload.bound+rebalSettle)
	runLinearizable(t, c, rc, rebalWorkload, func(pause func(time.Duration)) {
		pause(2 * time.Second)
		joined := time.Now()
		c.join(4)
		ss := c.WaitShards(rc, 30*time.Second, learnerOn(""))
		victim := c.metaLeader(rc)
		t.Logf("learners %v, moves so far: %s; kill -9 %s, the meta shard's leader", learners(ss), c.moveOutcomes(), c.Name(victim))
		c.Kill9(victim)
		pause(3 * time.Second)
		c.Restart(victim)
		c.WaitReady(victim, 30*time.Second)
		c.waitBalanced(rc, 4, joined)
		pause(time.Second)
	})
	watch.finish(t)
	t.Logf("moves: %s", c.moveOutcomes())
	checkKeys(t, c, rc, 1, keys, vals)
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}

// TestKillDestinationMidSnapshot writes enough data that a learner's
// catch-up takes a while, joins a fourth node and kills it with SIGKILL
// while learners on it catch up, then restarts it: each move must complete
// or roll back, and the cluster must balance.
func TestKillDestinationMidSnapshot(t *testing.T) {
	start := time.Now()
	c, rc, keys, vals := newRebalCluster(t, 4, 3, rebalShards, 2000, 1024)
	watch := watchMoves(c, rc, 3, rebalWorkload.bound+rebalSettle)
	runLinearizable(t, c, rc, rebalWorkload, func(pause func(time.Duration)) {
		pause(2 * time.Second)
		joined := time.Now()
		c.join(4)
		ss := c.WaitShards(rc, 30*time.Second, learnerOn(c.Name(4)))
		t.Logf("learners %v, moves so far: %s; kill -9 %s", learners(ss), c.moveOutcomes(), c.Name(4))
		c.Kill9(4)
		pause(3 * time.Second)
		c.Restart(4)
		c.WaitReady(4, 30*time.Second)
		c.waitBalanced(rc, 4, joined)
		pause(time.Second)
	})
	watch.finish(t)
	t.Logf("moves: %s", c.moveOutcomes())
	checkKeys(t, c, rc, 4, keys, vals)
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}

// TestRollingRestartDuringMoves joins a fourth node and, while its moves
// are in flight, restarts every node in turn with SIGTERM: a stopping
// node hands its leaderships and moves over, and the cluster must still
// balance.
func TestRollingRestartDuringMoves(t *testing.T) {
	start := time.Now()
	c, rc, keys, vals := newRebalCluster(t, 4, 3, rebalShards, 300, 256)
	watch := watchMoves(c, rc, 3, rebalWorkload.bound+rebalSettle)
	runLinearizable(t, c, rc, rebalWorkload, func(pause func(time.Duration)) {
		pause(2 * time.Second)
		joined := time.Now()
		c.join(4)
		ss := c.WaitShards(rc, 30*time.Second, learnerOn(""))
		t.Logf("learners %v: restarting every node in turn", learners(ss))
		for i := 1; i <= c.N(); i++ {
			took := c.Stop(i, 15*time.Second)
			t.Logf("SIGTERM %s: exited in %v (%s)", c.Name(i), took.Round(time.Millisecond), c.moveOutcomes())
			c.Restart(i)
			c.WaitReady(i, 30*time.Second)
			// As an operator would: the next node goes once every shard
			// has a leader again.
			c.WaitShards(rc, 30*time.Second, func(ss []shardInfo) string {
				for _, s := range ss {
					if s.Leader == "" {
						return fmt.Sprintf("shard %d has no leader", s.ID)
					}
				}
				return ""
			})
		}
		c.waitBalanced(rc, 4, joined)
		pause(time.Second)
	})
	watch.finish(t)
	t.Logf("moves: %s", c.moveOutcomes())
	checkKeys(t, c, rc, 2, keys, vals)
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}
