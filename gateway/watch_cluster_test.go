package gateway_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/cavedb/cave/gateway"
	"github.com/cavedb/cave/internal/nodetest"
	kvv1 "github.com/cavedb/cave/proto/cave/kv/v1"
)

// change is one write as a watcher must see it.
type change struct {
	key string
	rev int64
	del bool
}

// recorder is one watcher: it watches prefix on node home and, whenever
// its stream breaks, resumes with its last token on a running node.
type recorder struct {
	mu     sync.Mutex
	events []change
	token  string
	resume int // streams opened after the first
}

func (r *recorder) seen() []change {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]change(nil), r.events...)
}

func (r *recorder) run(ctx context.Context, t *testing.T, c *nodetest.Cluster, conns []*grpc.ClientConn, home int, prefix string, started chan<- struct{}) {
	first := true
	at := home
	for ctx.Err() == nil {
		r.mu.Lock()
		req := &kvv1.WatchRequest{Prefix: prefix, ResumeToken: r.token}
		r.mu.Unlock()
		st, err := kvv1.NewKVClient(conns[at]).Watch(ctx, req)
		for err == nil {
			var resp *kvv1.WatchResponse
			if resp, err = st.Recv(); err != nil {
				break
			}
			r.mu.Lock()
			for _, e := range resp.Events {
				r.events = append(r.events, change{key: e.Key, rev: e.ModRevision, del: e.Type == kvv1.EventType_EVENT_TYPE_DELETE})
			}
			r.token = resp.ResumeToken
			r.mu.Unlock()
			if first {
				first = false
				started <- struct{}{}
			}
		}
		if ctx.Err() != nil {
			return
		}
		code := status.Code(err)
		require.NotEqual(t, codes.OutOfRange, code, "resume failed: %v", err)
		require.NotEqual(t, codes.InvalidArgument, code, "resume failed: %v", err)
		// Resume on a running node, home if it runs.
		if run := c.RunningNodes(); len(run) > 0 && !c.Running(at) {
			at = run[rand.IntN(len(run))]
		} else if c.Running(home) {
			at = home
		}
		r.mu.Lock()
		r.resume++
		r.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestWatchExactlyOnce has watchers on every node record the changes of a
// prefix while clients put, delete and compare-and-swap keys through every
// node, and one node is killed and restarted. Every watcher must see every
// acknowledged write exactly once, in revision order per key, and nothing
// that was not written.
func TestWatchExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	wcfg := gateway.DefaultWatchConfig()
	wcfg.ProgressInterval = 500 * time.Millisecond
	c := nodetest.NewCluster(t, 3, nodetest.WithWatch(wcfg))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	conns := make([]*grpc.ClientConn, c.N())
	for i := range conns {
		conn, err := grpc.NewClient(c.GRPCAddr(i), grpc.WithTransportCredentials(insecure.NewCredentials()))
		require.NoError(t, err)
		t.Cleanup(func() { _ = conn.Close() })
		conns[i] = conn
	}

	const perNode = 2
	recs := make([]*recorder, 0, c.N()*perNode)
	started := make(chan struct{}, c.N()*perNode)
	var wg sync.WaitGroup
	for i := range c.N() {
		for range perNode {
			r := &recorder{}
			recs = append(recs, r)
			wg.Go(func() { r.run(ctx, t, c, conns, i, "w/", started) })
		}
	}
	for range recs {
		select {
		case <-started:
		case <-time.After(30 * time.Second):
			t.Fatal("watchers did not start")
		}
	}

	// Writers: acknowledged writes are wanted exactly once; writes whose
	// outcome is unknown may appear, at most once.
	var mu sync.Mutex
	want := map[change]bool{}
	var unknown int // failed writes: an upper bound of those that may have applied
	record := func(ch change, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err == nil {
			want[ch] = true
		} else {
			unknown++
		}
	}
	writeCtx, stopWrites := context.WithCancel(ctx)
	var writers sync.WaitGroup
	for w := range 4 {
		writers.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for n := 0; writeCtx.Err() == nil; n++ {
				run := c.RunningNodes()
				kv := kvv1.NewKVClient(conns[run[rng.IntN(len(run))]])
				key := fmt.Sprintf("w/%d/k%d", w, rng.IntN(8))
				cctx, ccancel := context.WithTimeout(writeCtx, 5*time.Second)
				switch rng.IntN(4) {
				case 0:
					resp, err := kv.Delete(cctx, &kvv1.DeleteRequest{Key: key})
					if err == nil && resp.Deleted {
						record(change{key: key, rev: resp.Revision, del: true}, nil)
					} else if err != nil {
						record(change{key: key, del: true}, err)
					}
				case 1:
					// Compare-and-swap on the current revision.
					cur, err := kv.Get(cctx, &kvv1.GetRequest{Key: key})
					if err == nil {
						prev := cur.ModRevision
						resp, err := kv.Put(cctx, &kvv1.PutRequest{Key: key, Value: []byte(fmt.Sprint(n)), PrevRevision: &prev})
						if err == nil {
							record(change{key: key, rev: resp.Revision}, nil)
						} else if status.Code(err) != codes.FailedPrecondition {
							record(change{key: key}, err)
						}
					}
				default:
					resp, err := kv.Put(cctx, &kvv1.PutRequest{Key: key, Value: []byte(fmt.Sprint(n))})
					if err == nil {
						record(change{key: key, rev: resp.Revision}, nil)
					} else {
						record(change{key: key}, err)
					}
				}
				// Keys outside the prefix never reach the watchers.
				_, _ = kv.Put(cctx, &kvv1.PutRequest{Key: fmt.Sprintf("other/%d", w), Value: []byte("x")})
				ccancel()
			}
		})
	}
	time.Sleep(2 * time.Second)
	c.Kill(1)
	time.Sleep(2 * time.Second)
	c.Restart(1)
	time.Sleep(2 * time.Second)
	stopWrites()
	writers.Wait()
	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, want)

	// Wait until every watcher has every acknowledged write.
	nodetest.Eventually(t, 60*time.Second, "watchers have every acknowledged write", func(context.Context) string {
		for i, r := range recs {
			got := map[change]bool{}
			for _, e := range r.seen() {
				got[e] = true
			}
			missing := 0
			for ch := range want {
				if !got[ch] {
					missing++
				}
			}
			if missing > 0 {
				return fmt.Sprintf("watcher %d misses %d of %d writes", i, missing, len(want))
			}
		}
		return ""
	})
	cancel()
	wg.Wait()
	total, resumes := 0, 0
	for i, r := range recs {
		evs := r.seen()
		seen := map[change]int{}
		last := map[string]int64{}
		extra := 0
		for _, e := range evs {
			seen[e]++
			assert.Equal(t, 1, seen[e], "watcher %d: %v delivered twice", i, e)
			assert.Greater(t, e.rev, last[e.key], "watcher %d: %s out of revision order", i, e.key)
			last[e.key] = e.rev
			assert.True(t, strings.HasPrefix(e.key, "w/"), "watcher %d: %s is outside the prefix", i, e.key)
			if !want[e] {
				extra++ // a write whose outcome the client did not learn
			}
		}
		assert.LessOrEqual(t, extra, unknown, "watcher %d: %d events that no write explains", i, extra)
		total += len(evs)
		resumes += r.resume
	}
	t.Logf("exactly-once: %d acknowledged writes, %d with unknown outcome; %d watchers received %d events in all (%d each), resumed %d times",
		len(want), unknown, len(recs), total, total/len(recs), resumes)
}

// TestWatchBadInput checks the refusals that come before a watch starts.
func TestWatchBadInput(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	wcfg := gateway.DefaultWatchConfig()
	wcfg.MaxPerConnection = 2
	c := nodetest.NewCluster(t, 1, nodetest.WithShards(2), nodetest.WithWatch(wcfg), nodetest.WithWatchHistory(16))
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	conn, err := grpc.NewClient(c.GRPCAddr(0), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	kv := kvv1.NewKVClient(conn)

	// first opens a watch on a connection of its own (the per-connection
	// limit is 2), returns its first response and ends it.
	first := func(req *kvv1.WatchRequest) (*kvv1.WatchResponse, error) {
		conn, err := grpc.NewClient(c.GRPCAddr(0), grpc.WithTransportCredentials(insecure.NewCredentials()))
		require.NoError(t, err)
		defer conn.Close()
		st, err := kvv1.NewKVClient(conn).Watch(ctx, req)
		if err != nil {
			return nil, err
		}
		return st.Recv()
	}
	foreign := base64.RawURLEncoding.EncodeToString([]byte{1, 5, 'o', 't', 'h', 'e', 'r', 0})
	for _, tc := range []struct {
		name string
		req  *kvv1.WatchRequest
		code codes.Code
		http int
	}{
		{"bad token", &kvv1.WatchRequest{Prefix: "a/", ResumeToken: "!!not a token"}, codes.InvalidArgument, 400},
		{"truncated token", &kvv1.WatchRequest{Prefix: "a/", ResumeToken: "AQ"}, codes.InvalidArgument, 400},
		{"foreign cluster", &kvv1.WatchRequest{Prefix: "a/", ResumeToken: foreign}, codes.InvalidArgument, 400},
		{"dot dot", &kvv1.WatchRequest{Prefix: "a/../b"}, codes.InvalidArgument, 400},
		{"too long", &kvv1.WatchRequest{Prefix: strings.Repeat("x", 1025)}, codes.InvalidArgument, 400},
		{"key and prefix", &kvv1.WatchRequest{Key: "a/b", Prefix: "a/"}, codes.InvalidArgument, 400},
		{"bad key", &kvv1.WatchRequest{Key: "a//b"}, codes.InvalidArgument, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := first(tc.req)
			assert.Equal(t, tc.code, status.Code(err), "%v", err)
			q := fmt.Sprintf("?prefix=%s&key=%s&resume_token=%s", urlq(tc.req.Prefix), urlq(tc.req.Key), urlq(tc.req.ResumeToken))
			resp, err := http.Get(c.HTTPURL(0) + "/api/v1/watch" + q)
			require.NoError(t, err)
			_ = resp.Body.Close()
			assert.Equal(t, tc.http, resp.StatusCode)
		})
	}

	t.Run("compacted token is out of range, 410", func(t *testing.T) {
		// With 16 revisions of history, 40 writes to one shard trim it past
		// revision 0.
		for i := range 40 {
			_, err := kv.Put(ctx, &kvv1.PutRequest{Key: "a/trim", Value: []byte(fmt.Sprint(i))})
			require.NoError(t, err)
		}
		good, err := first(&kvv1.WatchRequest{Prefix: "a/"})
		require.NoError(t, err)
		require.True(t, good.ProgressNotify)
		_, err = first(&kvv1.WatchRequest{Prefix: "a/", ResumeToken: good.ResumeToken})
		require.NoError(t, err, "a fresh token resumes")
		_, err = first(&kvv1.WatchRequest{Prefix: "a/", ResumeToken: zeroPositions(t, good.ResumeToken)})
		assert.Equal(t, codes.OutOfRange, status.Code(err), "%v", err)
		assert.Contains(t, status.Convert(err).Message(), "resume token compacted")
		resp, err := http.Get(c.HTTPURL(0) + "/api/v1/watch?prefix=a/&resume_token=" + zeroPositions(t, good.ResumeToken))
		require.NoError(t, err)
		_ = resp.Body.Close()
		assert.Equal(t, http.StatusGone, resp.StatusCode)
	})

	t.Run("too many watchers on one connection", func(t *testing.T) {
		wctx, wcancel := context.WithCancel(ctx)
		defer wcancel()
		for range 2 {
			st, err := kv.Watch(wctx, &kvv1.WatchRequest{Prefix: "a/"})
			require.NoError(t, err)
			_, err = st.Recv()
			require.NoError(t, err)
		}
		st, err := kv.Watch(wctx, &kvv1.WatchRequest{Prefix: "a/"})
		require.NoError(t, err)
		_, err = st.Recv()
		assert.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
		_, err = first(&kvv1.WatchRequest{Prefix: "a/"})
		assert.NoError(t, err, "another connection may watch")
	})

	t.Run("REST streams JSON lines", func(t *testing.T) {
		hctx, hcancel := context.WithCancel(ctx)
		defer hcancel()
		req, err := http.NewRequestWithContext(hctx, http.MethodGet, c.HTTPURL(0)+"/api/v1/watch?prefix=rest/", nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		sc := bufio.NewScanner(resp.Body)
		require.True(t, sc.Scan())
		assert.Contains(t, sc.Text(), `"resume_token"`)
		put, err := kv.Put(ctx, &kvv1.PutRequest{Key: "rest/a", Value: []byte("v")})
		require.NoError(t, err)
		for sc.Scan() {
			if strings.Contains(sc.Text(), `"events"`) {
				break
			}
		}
		assert.Contains(t, sc.Text(), `"key":"rest/a"`)
		assert.Contains(t, sc.Text(), fmt.Sprintf(`"mod_revision":"%d"`, put.Revision))
	})
}

func urlq(s string) string {
	return strings.NewReplacer("%", "%25", "&", "%26", "+", "%2B", "/", "%2F", "=", "%3D").Replace(s)
}

// zeroPositions rewrites a resume token of this package's format to
// position 0 on every shard.
func zeroPositions(t *testing.T, tok string) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(tok)
	require.NoError(t, err)
	n := int(b[1])
	head := b[:2+n]
	count := int(b[2+n])
	out := append([]byte{}, head...)
	out = append(out, byte(count))
	p := b[3+n:]
	for range count {
		id := p[0] // shard ids are small
		out = append(out, id, 0)
		p = p[1:]
		for p[0]&0x80 != 0 {
			p = p[1:]
		}
		p = p[1:]
	}
	return base64.RawURLEncoding.EncodeToString(out)
}
