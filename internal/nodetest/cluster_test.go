package nodetest_test

import (
	"context"
	"io"
	"net/http"
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
