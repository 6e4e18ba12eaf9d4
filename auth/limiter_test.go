package auth

import (
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// t0 is the synthetic clock's origin.
var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func newLimiter(t *testing.T, cfg LimiterConfig) *Limiter {
	t.Helper()
	l, err := NewLimiter(cfg)
	require.NoError(t, err)
	return l
}

func TestLimiterConfigValidate(t *testing.T) {
	t.Parallel()
	assert.NoError(t, DefaultLimiterConfig().Validate())
	err := LimiterConfig{Burst: 0, Refill: -time.Second, MaxSources: 0}.Validate()
	require.ErrorIs(t, err, ErrInvalidConfig)
	for _, flag := range []string{"--auth-failure-burst must be >= 1, got 0", "--auth-failure-refill must be > 0, got -1s", "--auth-failure-max-sources must be >= 1, got 0"} {
		assert.Contains(t, err.Error(), flag)
	}
	_, err = NewLimiter(LimiterConfig{Burst: 1, Refill: time.Second})
	assert.ErrorIs(t, err, ErrInvalidConfig)
}

// step is one action in a limiter script: at offset at, either a failure
// by src, or an Allow check expecting ok and retryAfter.
type step struct {
	at    time.Duration
	fail  bool
	src   string
	ok    bool
	retry time.Duration
}

func TestLimiterScripts(t *testing.T) {
	t.Parallel()
	fails := func(at time.Duration, src string, n int) []step {
		s := make([]step, n)
		for i := range s {
			s[i] = step{at: at, fail: true, src: src}
		}
		return s
	}
	allow := func(at time.Duration, src string) step { return step{at: at, src: src, ok: true} }
	deny := func(at time.Duration, src string, retry time.Duration) step {
		return step{at: at, src: src, retry: retry}
	}
	cat := func(parts ...any) []step {
		var out []step
		for _, p := range parts {
			switch p := p.(type) {
			case step:
				out = append(out, p)
			case []step:
				out = append(out, p...)
			}
		}
		return out
	}
	s := time.Second
	cases := []struct {
		name  string
		steps []step
	}{
		{"unknown source is allowed", cat(allow(0, "a"))},
		{"four failures leave one", cat(fails(0, "a", 4), allow(0, "a"))},
		{"five failures block for one refill", cat(fails(0, "a", 5), deny(0, "a", 12*s), deny(11*s, "a", s), allow(12*s, "a"))},
		{"one refill buys one failure", cat(fails(0, "a", 5), allow(12*s, "a"), fails(12*s, "a", 1), deny(12*s, "a", 12*s))},
		{"a minute refills the bucket", cat(fails(0, "a", 5), allow(60*s, "a"), fails(60*s, "a", 4), allow(60*s, "a"), fails(60*s, "a", 1), deny(60*s, "a", 12*s))},
		{"sources are independent", cat(fails(0, "a", 5), deny(0, "a", 12*s), allow(0, "b"), fails(0, "b", 4), allow(0, "b"))},
		{"spread failures stay allowed", cat(
			fails(0, "a", 1), fails(12*s, "a", 1), fails(24*s, "a", 1), fails(36*s, "a", 1),
			fails(48*s, "a", 1), fails(60*s, "a", 1), fails(72*s, "a", 1), allow(72*s, "a"))},
		{"hammering while blocked does not extend the block", cat(fails(0, "a", 5), fails(0, "a", 100), deny(0, "a", 12*s), allow(12*s, "a"))},
		{"sustained rate is five per minute", cat(
			fails(0, "a", 5), fails(12*s, "a", 1), deny(12*s, "a", 12*s), fails(24*s, "a", 1), deny(24*s, "a", 12*s), allow(36*s, "a"))},
		{"clock going backwards", cat(fails(10*s, "a", 5), deny(0, "a", 12*s), fails(0, "a", 1), allow(22*s, "a"))},
		{"sub-second retry", cat(fails(0, "a", 5), deny(11*s+500*time.Millisecond, "a", 500*time.Millisecond))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := newLimiter(t, DefaultLimiterConfig())
			for i, st := range tc.steps {
				now := t0.Add(st.at)
				if st.fail {
					l.Fail(st.src, now)
					continue
				}
				ok, retry := l.Allow(st.src, now)
				assert.Equal(t, st.ok, ok, "step %d: Allow(%s, +%s)", i, st.src, st.at)
				assert.Equal(t, st.retry, retry, "step %d: retryAfter for %s at +%s", i, st.src, st.at)
			}
		})
	}
}

func TestLimiterBurstOfOne(t *testing.T) {
	t.Parallel()
	l := newLimiter(t, LimiterConfig{Burst: 1, Refill: time.Minute, MaxSources: 10})
	ok, _ := l.Allow("a", t0)
	assert.True(t, ok)
	l.Fail("a", t0)
	ok, retry := l.Allow("a", t0.Add(time.Second))
	assert.False(t, ok)
	assert.Equal(t, 59*time.Second, retry)
	ok, _ = l.Allow("a", t0.Add(time.Minute))
	assert.True(t, ok)
}

func TestLimiterForgetsFullBuckets(t *testing.T) {
	t.Parallel()
	l := newLimiter(t, DefaultLimiterConfig())
	for i := range 100 {
		l.Fail(fmt.Sprint("src", i), t0.Add(time.Duration(i)*500*time.Millisecond))
	}
	assert.Equal(t, 100, l.Len(), "all within one window (60s)")
	// src0..src80 (at +0s..+40s) failed a full window or more before +100s.
	l.Allow("x", t0.Add(100*time.Second))
	assert.Equal(t, 19, l.Len())
	ok, _ := l.Allow("src0", t0.Add(100*time.Second))
	assert.True(t, ok)
	l.Allow("x", t0.Add(time.Hour))
	assert.Equal(t, 0, l.Len(), "every bucket is full an hour later")
	ok, _ = l.Allow("src99", t0.Add(time.Hour))
	assert.True(t, ok)
}

func TestLimiterBoundedMemory(t *testing.T) {
	t.Parallel()
	l := newLimiter(t, LimiterConfig{Burst: 2, Refill: time.Minute, MaxSources: 3})
	for _, src := range []string{"a", "b", "c"} {
		l.Fail(src, t0)
		l.Fail(src, t0)
	}
	assert.Equal(t, 3, l.Len())
	l.Fail("a", t0.Add(time.Second)) // a becomes the most recent
	l.Fail("d", t0.Add(2*time.Second))
	assert.Equal(t, 3, l.Len())
	// b failed least recently and was forgotten; a, c and d are still
	// blocked.
	for src, want := range map[string]bool{"a": false, "b": true, "c": false, "d": true} {
		ok, _ := l.Allow(src, t0.Add(3*time.Second))
		assert.Equal(t, want, ok, "source %s", src)
	}

	// A flood of distinct sources never grows the table past the bound.
	big := newLimiter(t, LimiterConfig{Burst: 5, Refill: time.Hour, MaxSources: 100})
	for i := range 10000 {
		big.Fail(fmt.Sprint("10.0.", i/256, ".", i%256), t0)
		require.LessOrEqual(t, big.Len(), 100)
	}
}

// model is a naive token bucket: credit in refill time, topped up lazily.
type model struct {
	credit map[string]time.Duration
	last   map[string]time.Time
}

func (m *model) refill(src string, now time.Time, cfg LimiterConfig) {
	window := time.Duration(cfg.Burst) * cfg.Refill
	c, ok := m.credit[src]
	if !ok {
		c = window
	} else if now.After(m.last[src]) {
		c += now.Sub(m.last[src])
	}
	if !ok || now.After(m.last[src]) {
		m.last[src] = now
	}
	m.credit[src] = min(c, window)
}

// TestLimiterMatchesModel drives the limiter and a naive token bucket
// with the same random script and checks that they always agree.
func TestLimiterMatchesModel(t *testing.T) {
	t.Parallel()
	for seed := range uint64(20) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			t.Parallel()
			rng := mrand.New(mrand.NewPCG(seed, 1))
			cfg := LimiterConfig{Burst: 1 + rng.IntN(6), Refill: time.Duration(1+rng.IntN(20)) * time.Second, MaxSources: 1000}
			l := newLimiter(t, cfg)
			m := &model{credit: map[string]time.Duration{}, last: map[string]time.Time{}}
			now := t0
			var log strings.Builder
			for i := range 2000 {
				now = now.Add(time.Duration(rng.IntN(5000)) * time.Millisecond)
				src := fmt.Sprint("s", rng.IntN(4))
				m.refill(src, now, cfg)
				if rng.IntN(3) == 0 {
					fmt.Fprintf(&log, "%d fail %s\n", i, src)
					l.Fail(src, now)
					m.credit[src] = max(0, m.credit[src]-cfg.Refill)
					continue
				}
				ok, retry := l.Allow(src, now)
				wantOK := m.credit[src] >= cfg.Refill
				var wantRetry time.Duration
				if !wantOK {
					wantRetry = cfg.Refill - m.credit[src]
				}
				fmt.Fprintf(&log, "%d allow %s: %v %s\n", i, src, ok, retry)
				if ok != wantOK || retry != wantRetry {
					t.Fatalf("cfg %+v, step %d: Allow(%s) = %v, %s; model says %v, %s\n%s", cfg, i, src, ok, retry, wantOK, wantRetry, log.String())
				}
			}
		})
	}
}

func TestLimiterConcurrentUse(t *testing.T) {
	t.Parallel()
	l := newLimiter(t, LimiterConfig{Burst: 5, Refill: time.Minute, MaxSources: 50})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				src := fmt.Sprint(g, "-", i%100)
				now := t0.Add(time.Duration(i) * time.Millisecond)
				if ok, _ := l.Allow(src, now); ok {
					l.Fail(src, now)
				}
			}
		})
	}
	wg.Wait()
	assert.LessOrEqual(t, l.Len(), 50)
}
