package e2e

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReReplicationAfterNodeLoss kills one of four nodes with SIGKILL and
// keeps it down past --dead-node-timeout; the reconciler must give every
// shard three voters again, none on the dead node, and every key must stay
// readable from the survivors.
func TestReReplicationAfterNodeLoss(t *testing.T) {
	const (
		nodes       = 4
		shards      = 4
		numKeys     = 500
		deadTimeout = 5 * time.Second
	)
	start := time.Now()
	c := newProcCluster(t, nodes, withShards(shards), withReplicas(3), withDeadNodeTimeout(deadTimeout))
	rc := newRESTClient(3 * time.Second)
	defer rc.close()
	c.WaitShards(rc, 60*time.Second, fullyReplicated(shards, 3))
	t.Logf("4 nodes ready and replicated after %v", time.Since(start).Round(time.Millisecond))

	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0))
	keys := make([]string, numKeys)
	vals := make(map[string][]byte, numKeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("e2e/rerep/%03d", i)
		v := make([]byte, 1+rng.IntN(256))
		for j := range v {
			v[j] = byte(rng.Uint32())
		}
		vals[keys[i]] = v
	}
	errs, st := writeAll(c, rc, keys, vals, 6, 10*time.Second, seed)
	t.Logf("wrote %d keys: %v", numKeys, st)
	require.Empty(t, errs, "writes failed:\n  %s", firstN(errs, 20))

	// Re-read the placement now: it may have moved while we wrote.
	ss := c.WaitShards(rc, 30*time.Second, fullyReplicated(shards, 3))
	replicas := replicaCounts(ss)
	victimName := busiest(replicas)
	victim := c.Index(victimName)
	require.NotZero(t, victim, "no replicas in %s", describeShards(ss))
	var survivors []int
	for i := 1; i <= nodes; i++ {
		if i != victim {
			survivors = append(survivors, i)
		}
	}
	t.Logf("replicas per node %v; kill -9 %s", replicas, victimName)
	killedAt := time.Now()
	c.Kill9(victim)

	c.WaitShards(rc, 60*time.Second, dataShardsOnly(fullyReplicated(shards, 3, victimName)))
	t.Logf("data shards re-replicated %v after the kill (--dead-node-timeout %v)", time.Since(killedAt).Round(time.Millisecond), deadTimeout)
	// The meta shard must not keep a voter on a dead node either: with
	// four nodes it has a voter on each, and a dead voter left in place
	// means one more failure loses its quorum (2 of 4) where removing it
	// would leave 2 of 3.
	c.CheckShards(rc, 15*time.Second, metaShardWithout(victimName))

	// The contract says members report alive|suspect|failed|left.
	var lastMembers []memberInfo
	err := poll(t.Context(), 15*time.Second, 250*time.Millisecond, func() (bool, error) {
		ms, err := rc.members(c.URL(survivors[0]))
		if err != nil {
			return false, nil
		}
		lastMembers = ms
		for _, m := range ms {
			if m.Name == victimName {
				return m.State == "failed" || m.State == "left", nil
			}
		}
		return true, nil // not listed at all: also gone
	})
	assert.NoError(t, err, "%s is not reported failed by %s: members %+v", victimName, c.Name(survivors[0]), lastMembers)

	for _, i := range survivors {
		errs, st := readAllFrom(c, rc, i, keys, vals, 6, 10*time.Second)
		t.Logf("read %d keys from %s: %v", numKeys, c.Name(i), st)
		assert.Empty(t, errs, "reads from %s wrong:\n  %s", c.Name(i), firstN(errs, 20))
	}

	// New writes still work on the shrunken cluster.
	more := []string{"e2e/rerep/after/0", "e2e/rerep/after/1", "e2e/rerep/after/2"}
	for _, k := range more {
		vals[k] = []byte("after-" + k)
	}
	errs, _ = writeAll(c, rc, more, vals, 1, 10*time.Second, seed)
	assert.Empty(t, errs, "writes after re-replication failed:\n  %s", firstN(errs, 20))

	// The dead node comes back with its old data dir and command line: it
	// must start, serve, and not disturb the placement.
	c.Restart(victim)
	c.WaitReady(victim, 30*time.Second)
	errs, _ = readAllFrom(c, rc, victim, append(keys[:50:50], more...), vals, 4, 10*time.Second)
	assert.Empty(t, errs, "reads through the returned %s wrong:\n  %s", victimName, firstN(errs, 20))
	c.WaitShards(rc, 30*time.Second, fullyReplicated(shards, 3))
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}
