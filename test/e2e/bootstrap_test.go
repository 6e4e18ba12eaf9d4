package e2e

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestClusterBootstrapJoinReadAll bootstraps n1, joins n2 through n1 and n3
// through n2, waits until every shard has three voters, writes 2,000 keys of
// random bytes through random nodes and reads every key back from every node.
func TestClusterBootstrapJoinReadAll(t *testing.T) {
	const (
		nodes   = 3
		shards  = 4
		numKeys = 2000
	)
	start := time.Now()
	c := newProcCluster(t, nodes, withShards(shards), withReplicas(3),
		withJoinVia(func(i int) int { return i - 1 })) // n2 via n1, n3 via n2
	t.Logf("3 nodes ready after %v", time.Since(start).Round(time.Millisecond))
	rc := newRESTClient(3 * time.Second)
	defer rc.close()

	c.WaitShards(rc, 60*time.Second, fullyReplicated(shards, 3))
	t.Logf("fully replicated after %v", time.Since(start).Round(time.Millisecond))

	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0))
	keys := make([]string, 0, numKeys)
	vals := make(map[string][]byte, numKeys)
	for i := 0; i < numKeys; i++ {
		var k string
		switch {
		case i%200 == 1:
			k = fmt.Sprintf("e2e/boot/ünï/ключ %d", i) // UTF-8 and a space in a segment
		case i%100 == 2:
			k = fmt.Sprintf("e2e/boot/deep/a/b/c/d/%04d", i)
		default:
			k = fmt.Sprintf("e2e/boot/%04d", i)
		}
		n := 1 + rng.IntN(512)
		if i == 0 {
			n = 64 << 10
		}
		v := make([]byte, n)
		for j := range v {
			v[j] = byte(rng.Uint32())
		}
		keys = append(keys, k)
		vals[k] = v
	}

	wstart := time.Now()
	errs, st := writeAll(c, rc, keys, vals, 8, 10*time.Second, seed)
	took := time.Since(wstart)
	t.Logf("wrote %d keys in %v (%.0f/s): %v", numKeys, took.Round(time.Millisecond), float64(numKeys)/took.Seconds(), st)
	require.Empty(t, errs, "writes failed:\n  %s", firstN(errs, 20))

	for i := 1; i <= nodes; i++ {
		rstart := time.Now()
		errs, st := readAllFrom(c, rc, i, keys, vals, 8, 10*time.Second)
		took := time.Since(rstart)
		t.Logf("read %d keys from %s in %v (%.0f/s): %v", numKeys, c.Name(i), took.Round(time.Millisecond), float64(numKeys)/took.Seconds(), st)
		assert.Empty(t, errs, "reads from %s wrong:\n  %s", c.Name(i), firstN(errs, 20))
	}

	t.Run("empty value", func(t *testing.T) {
		rev, status, err := rc.put(c.URL(2), "e2e/boot/empty", nil, nil)
		require.NoError(t, err, "PUT with an empty body: status %d", status)
		got, grev, found, err := rc.get(c.URL(3), "e2e/boot/empty", false)
		require.NoError(t, err)
		assert.True(t, found, "GET after PUT of an empty value: 404")
		assert.Empty(t, got)
		assert.Equal(t, rev, grev, "X-Cave-Revision of the read vs revision of the put")
	})
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}
