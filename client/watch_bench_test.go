package client

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cavedb/cave/gateway"
	"github.com/cavedb/cave/internal/nodetest"
)

// TestWatchMeasure measures, on a one-node cluster, the latency from a
// write's acknowledgement to its event's arrival at 1 and at 1,000
// watchers, and the write throughput with none and with 1,000 watchers,
// of the written prefix and of another.
// It is a measurement, not a check: it runs only with CAVE_WATCH_BENCH=1
// and logs its numbers.
func TestWatchMeasure(t *testing.T) {
	if os.Getenv("CAVE_WATCH_BENCH") != "1" {
		t.Skip("a measurement: set CAVE_WATCH_BENCH=1 to run it")
	}
	const many = 1000
	wcfg := gateway.DefaultWatchConfig()
	wcfg.MaxPerConnection = many
	c := nodetest.NewCluster(t, 1, nodetest.WithWatch(wcfg))
	cl := newTestClient(t, c.GRPCAddr(0))
	watchers := newTestClient(t, c.GRPCAddr(0))

	t.Logf("write throughput, 0 watchers: %.0f writes/s", throughput(t, cl, "tp0/"))
	for _, n := range []int{1, many} {
		p50, p99, samples, early := latency(t, cl, watchers, fmt.Sprintf("lat%d/", n), n)
		t.Logf("event latency, %d watchers: p50 %s, p99 %s (%d samples, %d before the write's acknowledgement)", n, p50, p99, samples, early)
	}
	// The watchers of the written prefix receive every write; those of
	// another prefix none, which shows the cost of the watches alone.
	for _, watched := range []string{"tp1000/", "idle/"} {
		ctx, cancel := context.WithCancel(t.Context())
		open := openWatchers(t, ctx, watchers, watched, many, nil)
		t.Logf("write throughput, %d watchers of %s: %.0f writes/s", many, watched, throughput(t, cl, "tp1000/"))
		cancel()
		open.Wait()
	}
}

// arrival is one event as a watcher received it.
type arrival struct {
	key string
	rev int64
	at  time.Time
}

// openWatchers opens n watches of prefix, waits until each has its first
// response and returns the group of their readers, which end with ctx.
// Each reader passes its events to record, when not nil.
func openWatchers(t *testing.T, ctx context.Context, cl *Client, prefix string, n int, record func(i int, a arrival)) *sync.WaitGroup {
	t.Helper()
	var wg sync.WaitGroup
	started := make(chan struct{}, n)
	for i := range n {
		wc := cl.Watch(ctx, prefix)
		wg.Go(func() {
			first := true
			for resp := range wc {
				now := time.Now()
				if first {
					first = false
					started <- struct{}{}
				}
				if record != nil {
					for _, e := range resp.Events {
						record(i, arrival{key: e.Key, rev: e.ModRevision, at: now})
					}
				}
			}
		})
	}
	for range n {
		select {
		case <-started:
		case <-time.After(60 * time.Second):
			t.Fatal("watchers did not start")
		}
	}
	return &wg
}

// latency writes 200 keys under prefix one after another, 10ms apart,
// with n watchers of the prefix, and returns the p50 and p99 of the time
// from each write's acknowledgement to its event's arrival at each
// watcher (an event that arrives before the acknowledgement counts 0),
// the number of samples and how many of them arrived before the
// acknowledgement.
func latency(t *testing.T, cl, watchers *Client, prefix string, n int) (p50, p99 time.Duration, samples, early int) {
	t.Helper()
	const writes = 200
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	got := make([][]arrival, n)
	var mu sync.Mutex
	var received atomic.Int64
	wg := openWatchers(t, ctx, watchers, prefix, n, func(i int, a arrival) {
		mu.Lock()
		got[i] = append(got[i], a)
		mu.Unlock()
		received.Add(1)
	})
	acked := map[string]time.Time{}
	for i := range writes {
		key := fmt.Sprintf("%sk%d", prefix, i)
		_, err := cl.Put(ctx, key, []byte("v"))
		require.NoError(t, err)
		acked[key] = time.Now()
		time.Sleep(10 * time.Millisecond)
	}
	nodetest.Eventually(t, 60*time.Second, "every watcher has every event", func(context.Context) string {
		if r := received.Load(); r < int64(writes*n) {
			return fmt.Sprintf("%d of %d events", r, writes*n)
		}
		return ""
	})
	cancel()
	wg.Wait()
	var lat []time.Duration
	for _, evs := range got {
		for _, a := range evs {
			d := a.at.Sub(acked[a.key])
			if d < 0 {
				early++
			}
			lat = append(lat, max(0, d))
		}
	}
	slices.Sort(lat)
	return lat[len(lat)/2], lat[len(lat)*99/100], len(lat), early
}

// throughput runs 16 writers putting keys under prefix for 5s and
// returns the acknowledged writes per second.
func throughput(t *testing.T, cl *Client, prefix string) float64 {
	t.Helper()
	const writers, d = 16, 5 * time.Second
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	var ok atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := range writers {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				if _, err := cl.Put(ctx, fmt.Sprintf("%s%d/%d", prefix, w, i%100), []byte("v")); err == nil {
					ok.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return float64(ok.Load()) / time.Since(start).Seconds()
}
