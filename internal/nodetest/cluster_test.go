package nodetest_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cavedb/cave/internal/nodetest"
	"github.com/cavedb/cave/ring"
)

// TestSingleNodeRestart checks the helper itself on the smallest cluster:
// the node serves through its router and its REST port, and a Kill and
// Restart on the same data dir and addresses keeps the data.
func TestSingleNodeRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node and restarts it")
	}
	c := nodetest.NewCluster(t, 1, nodetest.WithShards(2))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	rev, err := c.Router(0).Put(ctx, "smoke/a", []byte("one"), nil)
	require.NoError(t, err)
	assert.Positive(t, rev)

	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.HTTPURL(0)+"/api/v1/kv/smoke/b", strings.NewReader("two"))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	c.Kill(0)
	assert.False(t, c.Running(0))
	c.Restart(0)
	assert.NotEmpty(t, c.WaitLeader(ctx, ring.MetaShard))

	for key, want := range map[string]string{"smoke/a": "one", "smoke/b": "two"} {
		kv, err := c.Router(0).Get(ctx, key, false)
		require.NoError(t, err, "get %s after restart", key)
		assert.Equal(t, want, string(kv.Value), "value of %s after restart", key)
	}
	resp, err = http.Get(c.HTTPURL(0) + "/api/v1/kv/smoke/b")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "two", string(body), "REST read after restart on the same HTTP address")
}

// TestPromotedLearnersRestart restarts the nodes that joined after the
// bootstrap node: each of their replicas joined its shard as a learner and
// was promoted. Once a snapshot covers the promotion the node drops its
// learner markers and restarts them as voters; the cluster must settle
// after each restart with every key readable. (The e2e tests kill nodes
// before the markers go, which restarts promoted replicas as learners.)
func TestPromotedLearnersRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nodes and restarts two")
	}
	c := nodetest.NewCluster(t, 3, nodetest.WithShards(2))
	c.WaitStable(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	_, err := c.Router(0).Put(ctx, "learners/a", []byte("one"), nil)
	require.NoError(t, err)

	for i := 1; i < c.N(); i++ {
		// Once promoted, a replica's learner marker goes after a snapshot
		// covers the promotion, so this restart starts voters as voters.
		nodetest.Eventually(t, 30*time.Second, "learner markers left", func(context.Context) string {
			left, err := os.ReadDir(filepath.Join(c.DataDir(i), "learners"))
			if err != nil || len(left) == 0 {
				return ""
			}
			return fmt.Sprintf("%s still has %d learner markers", c.Name(i), len(left))
		})
		c.Kill(i)
		c.Restart(i)
		c.WaitStable(t)
	}
	for i := 0; i < c.N(); i++ {
		kv, err := c.Router(i).Get(ctx, "learners/a", false)
		require.NoError(t, err, "get through %s after the restarts", c.Name(i))
		assert.Equal(t, "one", string(kv.Value), "value through %s", c.Name(i))
	}
}
