package router_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cavedb/cave/internal/nodetest"
	"github.com/cavedb/cave/node"
	"github.com/cavedb/cave/ring"
	"github.com/cavedb/cave/router"
	"github.com/cavedb/cave/shard"
)

// In-process cluster tests (docs/architecture.md, "Testing"): routing, failover and joins on real
// nodes over loopback. Each starts its own cluster; -short skips them.

// TestClusterRouteWithoutReplica writes and reads keys of a shard through a
// node that hosts no replica of it, so every operation is forwarded, and
// lists across all shards from that node.
func TestClusterRouteWithoutReplica(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 4-node cluster")
	}
	c := nodetest.NewCluster(t, 4, nodetest.WithShards(4), nodetest.WithReplicas(3))
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	from, target := -1, ring.ShardID(0)
	for i := range c.N() {
		for id := ring.ShardID(1); id <= 4 && from < 0; id++ {
			if !c.Node(i).HasReplica(id) {
				from, target = i, id
			}
		}
	}
	if from < 0 {
		ss, _ := c.Node(0).Shards(ctx)
		t.Fatalf("every node hosts every shard, want one without: %s", nodetest.FormatShards(ss))
	}
	t.Logf("routing through %s, which hosts no replica of shard %d", c.Name(from), target)
	rt := c.Router(from)

	keys := keysOn(t, ctx, rt, target, "route/", 6)
	want := map[string]string{}
	for i, k := range keys[:4] {
		want[k] = fmt.Sprintf("value-%d", i)
		assert.Positive(t, put(t, rt, k, want[k]), "revision of %s", k)
	}
	for i, k := range keys[4:] {
		want[k] = fmt.Sprintf("rest-value-%d", i)
		nodetest.Eventually(t, 20*time.Second, "REST put of "+k+" through "+c.Name(from), func(ctx context.Context) string {
			switch code, body := do(t, ctx, http.MethodPut, c.HTTPURL(from)+"/api/v1/kv/"+k, want[k]); code {
			case http.StatusOK:
				return ""
			case http.StatusServiceUnavailable:
				// Not applied, or outcome unknown: an unconditional put
				// may be sent again.
				t.Logf("REST put of %s: %d %s; retrying", k, code, body)
				return body
			default:
				t.Fatalf("REST put of %s through %s: %d %s", k, c.Name(from), code, body)
				return ""
			}
		})
	}
	for i := range c.N() {
		for k, v := range want {
			kv, err := c.Router(i).Get(ctx, k, false)
			require.NoError(t, err, "get %s on %s", k, c.Name(i))
			assert.Equal(t, v, string(kv.Value), "value of %s read on %s", k, c.Name(i))
			code, body := do(t, ctx, http.MethodGet, c.HTTPURL(i)+"/api/v1/kv/"+k, "")
			assert.Equal(t, http.StatusOK, code, "REST get of %s on %s", k, c.Name(i))
			assert.Equal(t, v, body, "REST value of %s read on %s", k, c.Name(i))
		}
	}

	// Conditions and deletes are forwarded too, with their outcomes intact.
	k := keys[0]
	kv, err := rt.Get(ctx, k, false)
	require.NoError(t, err)
	stalePrev := kv.ModRevision - 1
	_, err = rt.Put(ctx, k, []byte("lost"), &stalePrev)
	var cerr *router.ConditionError
	require.ErrorAs(t, err, &cerr, "forwarded put with a stale prev_revision")
	assert.Equal(t, kv.ModRevision, cerr.Current, "current revision reported by the failed condition")
	rev, err := rt.Put(ctx, k, []byte("swapped"), &kv.ModRevision)
	require.NoError(t, err, "forwarded compare-and-swap")
	assert.Greater(t, rev, kv.ModRevision)
	_, err = rt.Delete(ctx, k, nil)
	require.NoError(t, err, "forwarded delete")
	_, err = rt.Delete(ctx, k, nil)
	assert.ErrorIs(t, err, router.ErrKeyNotFound, "second delete of %s", k)
	_, err = c.Router((from+1)%c.N()).Get(ctx, k, false)
	assert.ErrorIs(t, err, router.ErrKeyNotFound, "get of deleted %s on another node", k)

	// List from the same node merges every shard, the forwarded one included.
	var all []string
	for id := ring.ShardID(1); id <= 4; id++ {
		for _, k := range keysOn(t, ctx, rt, id, "list/", 2) {
			put(t, rt, k, k)
			all = append(all, k)
		}
	}
	slices.Sort(all)
	items, next, err := rt.List(ctx, "list/", "", 0, false)
	require.NoError(t, err)
	assert.Equal(t, all, listKeys(items), "one-page list from %s", c.Name(from))
	assert.Empty(t, next, "page token after the last page")

	var paged []string
	tok := ""
	for range len(all) + 1 {
		items, next, err := rt.List(ctx, "list/", tok, 3, false)
		require.NoError(t, err, "list page after %q", tok)
		require.LessOrEqual(t, len(items), 3)
		paged = append(paged, listKeys(items)...)
		if tok = next; tok == "" {
			break
		}
	}
	assert.Empty(t, tok, "pagination did not end after %d pages", len(all)+1)
	assert.Equal(t, all, paged, "keys listed 3 at a time from %s", c.Name(from))

	code, body := do(t, ctx, http.MethodGet, c.HTTPURL(from)+"/api/v1/keys?prefix=list/", "")
	require.Equal(t, http.StatusOK, code, body)
	var page struct {
		Items []struct {
			Key string `json:"key"`
		} `json:"items"`
		NextPageToken string `json:"next_page_token"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &page), body)
	var restKeys []string
	for _, it := range page.Items {
		restKeys = append(restKeys, it.Key)
	}
	assert.Equal(t, all, restKeys, "REST list from %s", c.Name(from))
	assert.Empty(t, page.NextPageToken)
}

// TestClusterLeaderFailover kills the node that leads the most shards and
// checks that the survivors take writes and linearizable reads within a
// bounded time, that nothing written before is lost, and that the node
// catches up after a restart.
func TestClusterLeaderFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster and kills a node")
	}
	c := nodetest.NewCluster(t, 3, nodetest.WithShards(4))
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	var oldKeys, newKeys []string
	for id := ring.ShardID(1); id <= 4; id++ {
		ks := keysOn(t, ctx, c.Router(0), id, "failover/", 4)
		oldKeys, newKeys = append(oldKeys, ks[:2]...), append(newKeys, ks[2:]...)
	}
	for _, k := range append(slices.Clone(oldKeys), newKeys...) {
		put(t, c.Router(0), k, "v1")
	}

	ss, err := c.Node(0).Shards(ctx)
	require.NoError(t, err)
	led := map[string]int{}
	for _, s := range ss {
		led[s.Leader]++
	}
	victim := 0
	for i := range c.N() {
		if led[c.Name(i)] > led[c.Name(victim)] {
			victim = i
		}
	}
	t.Logf("killing %s, leader of %d of %d shards: %s", c.Name(victim), led[c.Name(victim)], len(ss), nodetest.FormatShards(ss))
	c.Kill(victim)
	survivors := c.RunningNodes()

	start := time.Now()
	for j, k := range newKeys {
		w, r := survivors[j%2], survivors[(j+1)%2]
		opStart := time.Now()
		nodetest.Eventually(t, 20*time.Second, fmt.Sprintf("put %s through %s after failover", k, c.Name(w)), func(ctx context.Context) string {
			// An unconditional put may be retried after an unknown outcome.
			if _, err := c.Router(w).Put(ctx, k, []byte("v2"), nil); err != nil {
				return err.Error()
			}
			return ""
		})
		nodetest.Eventually(t, 20*time.Second, fmt.Sprintf("linearizable read of %s on %s after failover", k, c.Name(r)), func(ctx context.Context) string {
			kv, err := c.Router(r).Get(ctx, k, false)
			switch {
			case err != nil:
				return err.Error()
			case string(kv.Value) != "v2":
				return fmt.Sprintf("got %q, want %q", kv.Value, "v2")
			}
			return ""
		})
		if d := time.Since(opStart); d > time.Second {
			t.Logf("put through %s and read on %s of %s took %s", c.Name(w), c.Name(r), k, d.Round(time.Millisecond))
		}
	}
	took := time.Since(start)
	t.Logf("writes and reads of %d keys on the survivors took %s", len(newKeys), took.Round(time.Millisecond))
	assert.Less(t, took, 20*time.Second, "failover is slower than expected")

	for _, i := range survivors {
		for _, k := range oldKeys {
			kv, err := c.Router(i).Get(ctx, k, false)
			require.NoError(t, err, "get %s on %s after failover", k, c.Name(i))
			assert.Equal(t, "v1", string(kv.Value), "value of %s on %s after failover", k, c.Name(i))
		}
	}

	c.Restart(victim)
	nd := c.Node(victim)
	nodetest.Eventually(t, 30*time.Second, c.Name(victim)+" catches up after restart", func(ctx context.Context) string {
		for _, k := range newKeys {
			kv, err := staleLocal(ctx, nd, c.Router(victim), k)
			switch {
			case err != nil:
				return fmt.Sprintf("%s: %v", k, err)
			case kv == nil || string(kv.Value) != "v2":
				return fmt.Sprintf("%s: stale read got %v, want v2", k, kv)
			}
		}
		return ""
	})
	for _, k := range oldKeys {
		kv, err := staleLocal(ctx, nd, c.Router(victim), k)
		require.NoError(t, err, "stale read of %s on restarted %s", k, c.Name(victim))
		require.NotNil(t, kv, "stale read of %s on restarted %s", k, c.Name(victim))
		assert.Equal(t, "v1", string(kv.Value), "stale read of %s on restarted %s", k, c.Name(victim))
	}
}

// TestClusterJoinReplacesDeadNode adds a fourth node to a full 3-node
// cluster, kills one of the first three, and checks that after the
// dead-node timeout every shard, the meta shard included, has three
// replicas again, none on the dead node, with the new node holding the
// data.
func TestClusterJoinReplacesDeadNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster, adds a node and waits for re-replication")
	}
	c := nodetest.NewCluster(t, 3, nodetest.WithShards(4), nodetest.WithReplicas(3),
		nodetest.WithDeadNodeTimeout(3*time.Second))
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	var keys []string
	for id := ring.ShardID(1); id <= 4; id++ {
		keys = append(keys, keysOn(t, ctx, c.Router(0), id, "join/", 2)...)
	}
	for _, k := range keys {
		put(t, c.Router(0), k, "v-"+k)
	}

	added := c.AddNode()
	const victim = 1
	c.Kill(victim)
	start := time.Now()
	for id := ring.MetaShard; id <= 4; id++ {
		c.WaitReplicas(t, id, 3)
	}
	t.Logf("shards re-replicated %s after %s was killed (dead-node timeout 3s)", time.Since(start).Round(time.Millisecond), c.Name(victim))

	ss, err := c.Node(0).Shards(ctx)
	require.NoError(t, err)
	t.Logf("after re-replication: %s", nodetest.FormatShards(ss))
	hosted := 0
	for _, s := range ss {
		for _, r := range s.Replicas {
			assert.NotEqual(t, c.Name(victim), r.Node, "shard %d still has a replica on the dead node", s.ID)
		}
		if s.ID != ring.MetaShard && c.Node(added).HasReplica(s.ID) {
			hosted++
		}
	}
	assert.Positive(t, hosted, "%s hosts no data shard replica", c.Name(added))

	nd := c.Node(added)
	nodetest.Eventually(t, 30*time.Second, c.Name(added)+" holds the data", func(ctx context.Context) string {
		for _, k := range keys {
			kv, err := staleLocal(ctx, nd, c.Router(added), k)
			switch {
			case err != nil:
				return fmt.Sprintf("%s: %v", k, err)
			case kv == nil || string(kv.Value) != "v-"+k:
				return fmt.Sprintf("%s: stale read got %v, want %q", k, kv, "v-"+k)
			}
		}
		return ""
	})
}

// put writes key unconditionally through rt and returns the revision. It
// sends the write again while the router reports it unavailable or its
// outcome unknown (a leader change under a loaded machine), which is safe
// for an unconditional put, and logs each such retry.
func put(t *testing.T, rt *router.Router, key, value string) int64 {
	t.Helper()
	var rev int64
	nodetest.Eventually(t, 20*time.Second, "put "+key, func(ctx context.Context) string {
		var err error
		rev, err = rt.Put(ctx, key, []byte(value), nil)
		switch {
		case err == nil:
			return ""
		case errors.Is(err, router.ErrUnknownOutcome), errors.Is(err, router.ErrUnavailable):
			t.Logf("put %s: %v; retrying", key, err)
			return err.Error()
		}
		t.Fatalf("put %s: %v", key, err)
		return ""
	})
	return rev
}

// keysOn returns n keys under prefix that route to shard id, trying at most
// 10000 candidates.
func keysOn(t *testing.T, ctx context.Context, rt *router.Router, id ring.ShardID, prefix string, n int) []string {
	t.Helper()
	var out []string
	for i := 0; i < 10000 && len(out) < n; i++ {
		k := fmt.Sprintf("%sk%04d", prefix, i)
		got, err := rt.Route(ctx, k)
		require.NoError(t, err, "route %s", k)
		if got == id {
			out = append(out, k)
		}
	}
	require.Len(t, out, n, "keys under %q routed to shard %d among 10000 candidates", prefix, id)
	return out
}

// staleLocal reads key from nd's own replica of its shard, without a round
// trip to the leader. It returns nil when the key is absent there.
func staleLocal(ctx context.Context, nd *node.Node, rt *router.Router, key string) (*shard.KeyValue, error) {
	id, err := rt.Route(ctx, key)
	if err != nil {
		return nil, err
	}
	if !nd.HasReplica(id) {
		return nil, errors.New("no local replica of shard " + fmt.Sprint(id))
	}
	return nd.Get(ctx, id, []byte(key), true)
}

func listKeys(items []router.ListItem) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.Key
	}
	return out
}

// do sends one REST request and returns its status and body.
func do(t *testing.T, ctx context.Context, method, rawURL, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, rawURL, strings.NewReader(body))
	require.NoError(t, err)
	client := &http.Client{Timeout: 15 * time.Second}
	resp, err := client.Do(req)
	require.NoError(t, err, "%s %s", method, rawURL)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}
