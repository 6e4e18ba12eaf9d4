package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cavedb/cave/auth"
	"github.com/cavedb/cave/gateway"
	"github.com/cavedb/cave/internal/nodetest"
)

// change is one write as a watcher must see it.
type change struct {
	key string
	rev int64
	del bool
}

// collector reads a watch's channel to its end and records its events,
// its last token and its error.
type collector struct {
	mu     sync.Mutex
	events []change
	token  string
	err    error
	first  chan struct{} // closed at the first response
	done   chan struct{} // closed when the channel is
}

func collect(wc WatchChan) *collector {
	r := &collector{first: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		once := sync.OnceFunc(func() { close(r.first) })
		defer once()
		for resp := range wc {
			r.mu.Lock()
			for _, e := range resp.Events {
				r.events = append(r.events, change{key: e.Key, rev: e.ModRevision, del: e.Type == EventDelete})
			}
			if resp.Err() != nil {
				r.err = resp.Err()
			} else {
				r.token = resp.ResumeToken
			}
			r.mu.Unlock()
			once()
		}
	}()
	return r
}

func (r *collector) seen() []change {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]change(nil), r.events...)
}

// wait waits for ch, failing the test after 30s.
func wait(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// watchNode returns the running node of c that serves the one watch open
// in c, waiting for it to open.
func watchNode(t *testing.T, c *nodetest.Cluster) int {
	t.Helper()
	at := -1
	nodetest.Eventually(t, 30*time.Second, "one node serves the watch", func(context.Context) string {
		at = -1
		for _, i := range c.RunningNodes() {
			if metric(t, c, i, "cave_gateway_watchers") == 1 {
				at = i
			}
		}
		if at < 0 {
			return "no running node serves it"
		}
		return ""
	})
	return at
}

// TestWatchResumes watches a prefix through the client while writers put
// and delete keys and the node that serves the watch is killed and
// restarted: the watch moves to another node by itself, and it delivers
// every acknowledged write exactly once, in revision order per key.
func TestWatchResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	wcfg := gateway.DefaultWatchConfig()
	wcfg.ProgressInterval = 500 * time.Millisecond
	c := nodetest.NewCluster(t, 3, nodetest.WithWatch(wcfg))
	addrs := []string{c.GRPCAddr(0), c.GRPCAddr(1), c.GRPCAddr(2)}
	watcher, writer := newTestClient(t, addrs...), newTestClient(t, addrs...)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	rec := collect(watcher.Watch(ctx, "w/"))
	wait(t, rec.first, "the watch's first response")
	home := watchNode(t, c)

	var mu sync.Mutex
	want := map[change]bool{}
	unknown := 0 // failed writes: an upper bound of those that applied
	writeCtx, stopWrites := context.WithCancel(ctx)
	var writers sync.WaitGroup
	for w := range 3 {
		writers.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 11))
			for writeCtx.Err() == nil {
				key := fmt.Sprintf("w/%d/k%d", w, rng.IntN(6))
				wctx, wcancel := context.WithTimeout(writeCtx, 5*time.Second)
				var ch change
				var err error
				if rng.IntN(4) == 0 {
					ch = change{key: key, del: true}
					ch.rev, err = writer.Delete(wctx, key)
				} else {
					ch = change{key: key}
					ch.rev, err = writer.Put(wctx, key, []byte("v"))
				}
				_, _ = writer.Put(wctx, fmt.Sprintf("other/%d", w), []byte("x")) // outside the prefix
				wcancel()
				mu.Lock()
				switch {
				case err == nil:
					want[ch] = true
				case errors.Is(err, ErrNotFound), writeCtx.Err() != nil && errors.Is(err, context.Canceled):
				default:
					unknown++
				}
				mu.Unlock()
			}
		})
	}
	time.Sleep(time.Second)
	c.Kill(home)
	moved := watchNode(t, c)
	assert.NotEqual(t, home, moved)
	time.Sleep(time.Second)
	c.Restart(home)
	time.Sleep(time.Second)
	stopWrites()
	writers.Wait()

	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, want)
	nodetest.Eventually(t, 60*time.Second, "the watch has every acknowledged write", func(context.Context) string {
		got := map[change]bool{}
		for _, e := range rec.seen() {
			got[e] = true
		}
		missing := 0
		for ch := range want {
			if !got[ch] {
				missing++
			}
		}
		if missing > 0 {
			return fmt.Sprintf("%d of %d writes missing", missing, len(want))
		}
		return ""
	})
	cancel()
	wait(t, rec.done, "the channel to close")
	assert.NoError(t, rec.err, "ending ctx ends the watch without an error")
	seen := map[change]int{}
	last := map[string]int64{}
	extra := 0
	evs := rec.seen()
	for _, e := range evs {
		seen[e]++
		assert.Equal(t, 1, seen[e], "%v delivered twice", e)
		assert.Greater(t, e.rev, last[e.key], "%s out of revision order", e.key)
		last[e.key] = e.rev
		if !want[e] {
			extra++
		}
	}
	assert.LessOrEqual(t, extra, unknown, "%d events that no write explains", extra)
	t.Logf("%d acknowledged writes, %d of unknown outcome; %d events received; watch moved from node %d to %d",
		len(want), unknown, len(evs), home, moved)
}

// TestWatchOptionsAndErrors checks Key, KeysOnly, FromToken and the
// errors that end a watch: a compacted token (ErrCompacted) and a
// malformed one (InvalidArgument).
func TestWatchOptionsAndErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	c := nodetest.NewCluster(t, 1, nodetest.WithShards(1), nodetest.WithWatchHistory(16))
	cl := newTestClient(t, c.GRPCAddr(0))
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	// next returns the next response with events.
	next := func(wc WatchChan) WatchResponse {
		t.Helper()
		for {
			select {
			case resp, ok := <-wc:
				require.True(t, ok, "the watch ended")
				require.NoError(t, resp.Err())
				if len(resp.Events) > 0 {
					return resp
				}
			case <-ctx.Done():
				t.Fatal("no event")
			}
		}
	}
	first := func(wc WatchChan) WatchResponse {
		t.Helper()
		select {
		case resp := <-wc:
			return resp
		case <-ctx.Done():
			t.Fatal("no response")
		}
		return WatchResponse{}
	}

	wctx, wcancel := context.WithCancel(ctx)
	exact := cl.Watch(wctx, "a/x", Key(), KeysOnly())
	start := first(exact)
	require.NoError(t, start.Err())
	assert.True(t, start.Progress)
	require.NotEmpty(t, start.ResumeToken)
	_, err := cl.Put(ctx, "a/xy", []byte("not watched"))
	require.NoError(t, err)
	rev, err := cl.Put(ctx, "a/x", []byte("v1"))
	require.NoError(t, err)
	got := next(exact)
	require.Len(t, got.Events, 1)
	assert.Equal(t, Event{Type: EventPut, Key: "a/x", ModRevision: rev, CreateRevision: rev}, got.Events[0])
	wcancel()

	// A resume from the start token delivers both writes, with values.
	resumed := cl.Watch(ctx, "a/", FromToken(start.ResumeToken))
	var keys []string
	for len(keys) < 2 {
		for _, e := range next(resumed).Events {
			keys = append(keys, e.Key)
			assert.NotEmpty(t, e.Value)
		}
	}
	assert.ElementsMatch(t, []string{"a/xy", "a/x"}, keys)

	// 40 writes to the one shard trim its 16 revisions of history past the
	// start token.
	for i := range 40 {
		_, err := cl.Put(ctx, "a/trim", []byte(fmt.Sprint(i)))
		require.NoError(t, err)
	}
	compacted := cl.Watch(ctx, "a/", FromToken(start.ResumeToken))
	end := first(compacted)
	require.ErrorIs(t, end.Err(), ErrCompacted)
	assert.Equal(t, codes.OutOfRange, status.Code(end.Err()))
	_, open := <-compacted
	assert.False(t, open, "the channel closes after the error")

	bad := first(cl.Watch(ctx, "a/", FromToken("!!not a token")))
	assert.Equal(t, codes.InvalidArgument, status.Code(bad.Err()), "%v", bad.Err())
	assert.NotErrorIs(t, bad.Err(), ErrCompacted)
	dots := first(cl.Watch(ctx, "a/../b"))
	assert.Equal(t, codes.InvalidArgument, status.Code(dots.Err()), "%v", dots.Err())
}

// TestWatchToken checks that a watch carries Config.Token: with it the
// watch runs; without it the refusal ends the watch instead of being
// retried.
func TestWatchToken(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	c := nodetest.NewCluster(t, 1, nodetest.WithShards(1), nodetest.WithACL())
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cfg := DefaultConfig()
	cfg.Endpoints = []string{c.GRPCAddr(0)}
	cfg.Token = c.Token(0, auth.RootUser, time.Hour)
	root, err := New(ctx, cfg)
	require.NoError(t, err)
	defer root.Close()
	resp := <-root.Watch(ctx, "app/")
	require.NoError(t, resp.Err())
	assert.NotEmpty(t, resp.ResumeToken)

	anon := newTestClient(t, c.GRPCAddr(0))
	wc := anon.Watch(ctx, "app/")
	resp = <-wc
	assert.Equal(t, codes.Unauthenticated, status.Code(resp.Err()), "%v", resp.Err())
	_, open := <-wc
	assert.False(t, open)
}

// TestWatchSlowReader lets a watch go unread while large writes pile up,
// so that the node cuts it as a slow watcher (RESOURCE_EXHAUSTED): read
// again, it resumes by itself and delivers every write exactly once.
func TestWatchSlowReader(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	wcfg := gateway.DefaultWatchConfig()
	wcfg.BufferBatches = 1
	c := nodetest.NewCluster(t, 1, nodetest.WithShards(1), nodetest.WithWatch(wcfg))
	cl := newTestClient(t, c.GRPCAddr(0))
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	wc := cl.Watch(ctx, "s/")
	require.NoError(t, (<-wc).Err())

	const writes = 200
	value := make([]byte, 256<<10)
	want := map[int64]bool{}
	for i := range writes {
		rev, err := cl.Put(ctx, fmt.Sprintf("s/k%d", i%10), value)
		require.NoError(t, err)
		want[rev] = true
	}
	seen := map[int64]int{}
	for len(seen) < writes {
		select {
		case resp := <-wc:
			require.NoError(t, resp.Err())
			for _, e := range resp.Events {
				seen[e.ModRevision]++
				assert.Equal(t, 1, seen[e.ModRevision], "revision %d delivered twice", e.ModRevision)
				assert.True(t, want[e.ModRevision], "revision %d was not written", e.ModRevision)
			}
		case <-ctx.Done():
			t.Fatalf("%d of %d writes delivered", len(seen), writes)
		}
	}
	// The node notices the cut once its send, blocked by the unread
	// stream, goes through.
	nodetest.Eventually(t, 30*time.Second, "the node cut the watch as a slow watcher", func(context.Context) string {
		if metric(t, c, 0, "cave_gateway_watch_slow_drops_total") < 1 {
			return "no slow-watcher drop"
		}
		return ""
	})
}
