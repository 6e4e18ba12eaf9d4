package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/cavedb/cave/internal/nodetest"
	kvv1 "github.com/cavedb/cave/proto/cave/kv/v1"
	"github.com/cavedb/cave/ring"
)

// newTestClient returns a client of endpoints that refreshes often, closed
// at the end of the test.
func newTestClient(t *testing.T, endpoints ...string) *Client {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Endpoints = endpoints
	cfg.RefreshInterval = 200 * time.Millisecond
	cl, err := New(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, cl.Close()) })
	return cl
}

// forwards returns the sum of cave_router_forwards_total over the running
// nodes of c for op.
func forwards(t *testing.T, c *nodetest.Cluster, op string) int {
	t.Helper()
	total := 0
	for _, i := range c.RunningNodes() {
		total += int(metric(t, c, i, `cave_router_forwards_total{op="`+op+`"}`))
	}
	return total
}

// metric returns the value of the series named series (with its labels,
// as the exposition format writes them) on node i of c, 0 when absent.
func metric(t *testing.T, c *nodetest.Cluster, i int, series string) float64 {
	t.Helper()
	resp, err := http.Get(c.HTTPURL(i) + "/api/v1/perf/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			n, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err, sc.Text())
			return n
		}
	}
	require.NoError(t, sc.Err())
	return 0
}

// leaders returns each data shard's leader by the cluster's own view
// (node i's Shards), as a gRPC address.
func leaders(t *testing.T, ctx context.Context, c *nodetest.Cluster, i int) map[ring.ShardID]string {
	t.Helper()
	ss, err := c.Node(i).Shards(ctx)
	require.NoError(t, err)
	out := map[ring.ShardID]string{}
	for _, s := range ss {
		if s.ID != ring.MetaShard && s.Leader != "" {
			out[s.ID] = c.GRPCAddr(c.Index(s.Leader))
		}
	}
	return out
}

// routedLeaders returns each data shard's leader in cl's snapshot.
func routedLeaders(cl *Client) map[ring.ShardID]string {
	out := map[ring.ShardID]string{}
	if r := cl.routes.Load(); r != nil {
		for id, sr := range r.shards {
			if sr.leader != "" {
				out[id] = sr.leader
			}
		}
	}
	return out
}

// TestCluster runs the client against a 3-node cluster: the routing view
// over gRPC and REST, every operation and its errors, requests that reach
// the leader without a forward, stale reads, and failover when the only
// configured endpoint is killed.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := nodetest.NewCluster(t, 3, nodetest.WithShards(3))
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	// The first endpoint refuses connections: the client moves on.
	cl := newTestClient(t, "127.0.0.1:1", c.GRPCAddr(0))

	t.Run("routing", func(t *testing.T) {
		r := cl.routes.Load()
		require.NotNil(t, r, "New learned the routing")
		tbl, err := c.Node(0).Table(ctx)
		require.NoError(t, err)
		assert.Equal(t, tbl.Ranges(), r.table.Ranges(), "the slot table")
		assert.Len(t, r.nodes, 3)
		nodetest.Eventually(t, 10*time.Second, "routed leaders match the cluster's", func(ctx context.Context) string {
			want, got := leaders(t, ctx, c, 1), routedLeaders(cl)
			if len(want) != 3 || fmt.Sprint(want) != fmt.Sprint(got) {
				return fmt.Sprintf("cluster %v, client %v", want, got)
			}
			return ""
		})

		// REST serves the same answer as gRPC.
		resp, err := http.Get(c.HTTPURL(0) + "/api/v1/cluster/routing")
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var body struct {
			Version string `json:"version"`
			Slots   []struct {
				Start   int    `json:"start"`
				End     int    `json:"end"`
				ShardID string `json:"shard_id"`
			} `json:"slots"`
			Shards []struct {
				ID             string `json:"id"`
				Leader         string `json:"leader"`
				LeaderGRPCAddr string `json:"leader_grpc_addr"`
				Replicas       []struct {
					Node, Role string
					GRPCAddr   string `json:"grpc_addr"`
				} `json:"replicas"`
			} `json:"shards"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		viaGRPC, err := cl.fetch(ctx, c.GRPCAddr(0), nil)
		require.NoError(t, err)
		assert.Equal(t, strconv.FormatUint(viaGRPC.version, 10), body.Version, "the same view has the same version")
		require.Len(t, body.Slots, 3)
		assert.Equal(t, 0, body.Slots[0].Start)
		assert.Equal(t, ring.Slots, body.Slots[2].End)
		require.Len(t, body.Shards, 3, "data shards only")
		for _, s := range body.Shards {
			assert.NotEmpty(t, s.LeaderGRPCAddr, "shard %s", s.ID)
			assert.Len(t, s.Replicas, 3, "shard %s", s.ID)
			for _, rp := range s.Replicas {
				assert.Equal(t, "voter", rp.Role)
				assert.Equal(t, c.GRPCAddr(c.Index(rp.Node)), rp.GRPCAddr)
			}
		}
	})

	t.Run("operations", func(t *testing.T) {
		rev, err := cl.Put(ctx, "ops/a", []byte("1"))
		require.NoError(t, err)
		kv, err := cl.Get(ctx, "ops/a")
		require.NoError(t, err)
		assert.Equal(t, &KeyValue{Key: "ops/a", Value: []byte("1"), CreateRevision: rev, ModRevision: rev, Version: 1}, kv)

		rev2, err := cl.Put(ctx, "ops/a", []byte("2"), PrevRevision(rev))
		require.NoError(t, err)
		_, err = cl.Put(ctx, "ops/a", []byte("3"), PrevRevision(rev))
		var ce *Error
		require.ErrorAs(t, err, &ce)
		assert.True(t, errors.Is(err, ErrConditionFailed), "got %v", err)
		assert.Equal(t, rev2, ce.CurrentRevision, "the current revision comes with the error")
		assert.Equal(t, codes.FailedPrecondition, status.Code(err))
		_, err = cl.Put(ctx, "ops/a", []byte("3"), CreateOnly())
		assert.True(t, errors.Is(err, ErrConditionFailed), "create-only on an existing key: %v", err)
		_, err = cl.Put(ctx, "ops/new", []byte("n"), CreateOnly())
		require.NoError(t, err)
		_, err = cl.Put(ctx, "ops/absent", []byte("x"), PrevRevision(5))
		require.ErrorAs(t, err, &ce)
		assert.Zero(t, ce.CurrentRevision, "an absent key is at revision 0")

		_, err = cl.Put(ctx, "ops/secret", []byte("s3cret"), Secret())
		require.NoError(t, err)
		kv, err = cl.Get(ctx, "ops/secret", Secret())
		require.NoError(t, err)
		assert.Equal(t, "s3cret", string(kv.Value))
		kv, err = cl.Get(ctx, "ops/secret")
		require.NoError(t, err)
		assert.NotContains(t, string(kv.Value), "s3cret", "without Secret the envelope")

		for i := range 5 {
			_, err := cl.Put(ctx, fmt.Sprintf("page/%d", i), []byte("vv"))
			require.NoError(t, err)
		}
		p, err := cl.List(ctx, "page/", Limit(2))
		require.NoError(t, err)
		require.Len(t, p.Items, 2)
		assert.Equal(t, ListItem{Key: "page/0", ModRevision: p.Items[0].ModRevision, Size: 2}, p.Items[0])
		assert.NotEmpty(t, p.NextPageToken)
		all, err := cl.ListAll(ctx, "page/", Limit(2))
		require.NoError(t, err)
		var keys []string
		for _, it := range all {
			keys = append(keys, it.Key)
		}
		assert.Equal(t, []string{"page/0", "page/1", "page/2", "page/3", "page/4"}, keys, "across shards, in order")
		all, err = cl.ListAll(ctx, "page/", Stale())
		require.NoError(t, err)
		assert.Len(t, all, 5)

		_, err = cl.Delete(ctx, "ops/a", PrevRevision(rev))
		assert.True(t, errors.Is(err, ErrConditionFailed), "stale delete: %v", err)
		drev, err := cl.Delete(ctx, "ops/a")
		require.NoError(t, err)
		assert.Greater(t, drev, rev2)
		_, err = cl.Delete(ctx, "ops/a")
		assert.True(t, errors.Is(err, ErrNotFound), "delete of a missing key: %v", err)
		_, err = cl.Get(ctx, "ops/a")
		assert.True(t, errors.Is(err, ErrNotFound), "get of a missing key: %v", err)
		assert.Equal(t, codes.NotFound, status.Code(err))

		_, err = cl.Put(ctx, "bad//key", []byte("x"))
		assert.Equal(t, codes.InvalidArgument, status.Code(err), "bad input: %v", err)
		for _, s := range []error{ErrNotFound, ErrConditionFailed, ErrNotApplied, ErrOutcomeUnknown} {
			assert.False(t, errors.Is(err, s), "an invalid argument is not %v", s)
		}
	})

	t.Run("stale reads", func(t *testing.T) {
		rev, err := cl.Put(ctx, "stale/k", []byte("v"))
		require.NoError(t, err)
		nodetest.Eventually(t, 10*time.Second, "every replica serves the write", func(ctx context.Context) string {
			for range 3 { // one turn over the three replicas
				kv, err := cl.Get(ctx, "stale/k", Stale())
				if err != nil || kv.ModRevision != rev {
					return fmt.Sprintf("stale get: %v, %v", kv, err)
				}
			}
			return ""
		})
	})

	// The same puts and gets, sent to node 0 as they come and through the
	// client: node 0 forwards those of the shards it does not lead, the
	// client sends each to its leader.
	t.Run("no forwards", func(t *testing.T) {
		const n = 60
		conn, err := grpc.NewClient(c.GRPCAddr(0), grpc.WithTransportCredentials(insecure.NewCredentials()))
		require.NoError(t, err)
		defer conn.Close()
		kv := kvv1.NewKVClient(conn)
		before := forwards(t, c, "put") + forwards(t, c, "get")
		for i := range n {
			k := fmt.Sprintf("fwd/%d", i)
			_, err := kv.Put(ctx, &kvv1.PutRequest{Key: k, Value: []byte("v")})
			require.NoError(t, err)
			_, err = kv.Get(ctx, &kvv1.GetRequest{Key: k})
			require.NoError(t, err)
		}
		direct := forwards(t, c, "put") + forwards(t, c, "get") - before

		before = forwards(t, c, "put") + forwards(t, c, "get")
		for i := range n {
			k := fmt.Sprintf("fwd/%d", i)
			_, err := cl.Put(ctx, k, []byte("w"))
			require.NoError(t, err)
			_, err = cl.Get(ctx, k)
			require.NoError(t, err)
		}
		viaClient := forwards(t, c, "put") + forwards(t, c, "get") - before
		t.Logf("forwarded requests of %d puts and %d gets: %d sent to node 0, %d sent by the client", n, n, direct, viaClient)
		assert.Greater(t, direct, 0, "node 0 does not lead every shard")
		assert.Zero(t, viaClient, "the client sends each request to its shard's leader")
	})

	t.Run("failover", func(t *testing.T) {
		// A client whose only endpoint is the node that leads a shard.
		lead := leaders(t, ctx, c, 0)
		victim := c.Index(c.Node(0).Name())
		for _, addr := range lead {
			for i := range 3 {
				if c.GRPCAddr(i) == addr {
					victim = i
				}
			}
			break
		}
		one := newTestClient(t, c.GRPCAddr(victim))
		require.NotNil(t, one.routes.Load())
		keys := map[ring.ShardID]string{}
		for i := 0; len(keys) < 3; i++ {
			k := fmt.Sprintf("fo/%d", i)
			_, id := one.routes.Load().table.Route(k)
			if _, ok := keys[id]; !ok {
				keys[id] = k
				_, err := one.Put(ctx, k, []byte("before"))
				require.NoError(t, err)
			}
		}
		c.Kill(victim)
		for id, k := range keys {
			octx, cancel := context.WithTimeout(ctx, 20*time.Second)
			_, err := one.Put(octx, k, []byte("after"))
			require.NoError(t, err, "put on shard %d after its endpoint was killed", id)
			kv, err := one.Get(octx, k)
			require.NoError(t, err)
			assert.Equal(t, "after", string(kv.Value))
			cancel()
		}
		nodetest.Eventually(t, 20*time.Second, "the routing no longer names the killed node", func(ctx context.Context) string {
			for id, addr := range routedLeaders(one) {
				if addr == c.GRPCAddr(victim) {
					return fmt.Sprintf("shard %d is led by the killed node", id)
				}
			}
			if p := one.lastGood.Load(); p == nil || *p == c.GRPCAddr(victim) {
				return "no refresh from a live node yet"
			}
			return ""
		})
	})

	t.Run("closed", func(t *testing.T) {
		tmp, err := New(ctx, Config{Endpoints: []string{c.GRPCAddr(1)}, RefreshInterval: time.Second, MinRefreshInterval: time.Second,
			RefreshTimeout: time.Second, MaxAttempts: 1, Backoff: time.Millisecond, MaxBackoff: time.Millisecond, MaxMessageBytes: 1 << 20})
		require.NoError(t, err)
		require.NoError(t, tmp.Close())
		require.NoError(t, tmp.Close(), "Close is idempotent")
		_, err = tmp.Get(ctx, "x")
		assert.ErrorIs(t, err, ErrClosed)
	})
}

// TestNoServer checks a client whose endpoints refuse connections: New
// succeeds without routing, and a request fails fast with ErrNotApplied
// and the Unavailable status.
func TestNoServer(t *testing.T) {
	t.Parallel()
	cl := newTestClient(t, "127.0.0.1:1")
	assert.Nil(t, cl.routes.Load())
	start := time.Now()
	_, err := cl.Put(t.Context(), "a", []byte("v"))
	assert.True(t, errors.Is(err, ErrNotApplied), "a put that never left: %v", err)
	assert.Equal(t, codes.Unavailable, status.Code(err))
	assert.Less(t, time.Since(start), 5*time.Second)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = cl.Get(ctx, "a")
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, codes.Canceled, status.Code(err))
}
