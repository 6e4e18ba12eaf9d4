package logbuf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// newLogger returns a logger that writes text to out and keeps records at
// level or above in a buffer of size entries.
func newLogger(size int, level slog.Level) (*slog.Logger, *Buffer, *bytes.Buffer) {
	out := &bytes.Buffer{}
	buf := NewBuffer(size)
	h := NewHandler(slog.NewTextHandler(out, &slog.HandlerOptions{Level: level}), buf, level)
	return slog.New(h), buf, out
}

func msgs(es []Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Msg
	}
	return out
}

func TestBoundsKeepNewest(t *testing.T) {
	t.Parallel()
	lg, buf, out := newLogger(3, slog.LevelInfo)
	for i := range 5 {
		lg.Info(fmt.Sprintf("m%d", i))
	}
	assert.Equal(t, 3, buf.Cap())
	assert.Equal(t, []string{"m2", "m3", "m4"}, msgs(buf.Query(Query{})), "the ring keeps the newest, oldest first")
	assert.Equal(t, []string{"m3", "m4"}, msgs(buf.Query(Query{Limit: 2})), "limit keeps the newest")
	assert.Equal(t, []string{"m2", "m3", "m4"}, msgs(buf.Query(Query{Limit: 10})))
	assert.Equal(t, 5, strings.Count(out.String(), "msg=m"), "every record also reaches the next handler")
}

func TestEmptyAndPartial(t *testing.T) {
	t.Parallel()
	lg, buf, _ := newLogger(4, slog.LevelInfo)
	assert.Empty(t, buf.Query(Query{}))
	lg.Info("a")
	lg.Info("b")
	assert.Equal(t, []string{"a", "b"}, msgs(buf.Query(Query{})))
	assert.Equal(t, 1, NewBuffer(0).Cap(), "size < 1 keeps one entry")
}

func TestLevelFilter(t *testing.T) {
	t.Parallel()
	lg, buf, out := newLogger(10, slog.LevelInfo)
	lg.Debug("dropped: below the handler level")
	lg.Info("i")
	lg.Warn("w")
	lg.Error("e")
	assert.Equal(t, []string{"i", "w", "e"}, msgs(buf.Query(Query{MinLevel: slog.LevelDebug})))
	assert.Equal(t, []string{"w", "e"}, msgs(buf.Query(Query{MinLevel: slog.LevelWarn})))
	assert.Equal(t, []string{"e"}, msgs(buf.Query(Query{MinLevel: slog.LevelError})))
	assert.Equal(t, []string{"e"}, msgs(buf.Query(Query{MinLevel: slog.LevelInfo, Limit: 1})))
	assert.NotContains(t, out.String(), "dropped")
	es := buf.Query(Query{})
	assert.Equal(t, "WARN", es[1].Level)
	assert.Equal(t, slog.LevelWarn, es[1].LogLevel())
}

func TestSince(t *testing.T) {
	t.Parallel()
	buf := NewBuffer(10)
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	h := NewHandler(slog.DiscardHandler, buf, slog.LevelInfo)
	for i := range 4 {
		r := slog.NewRecord(t0.Add(time.Duration(i)*time.Second), slog.LevelInfo, fmt.Sprintf("m%d", i), 0)
		require.NoError(t, h.Handle(context.Background(), r))
	}
	assert.Equal(t, []string{"m2", "m3"}, msgs(buf.Query(Query{Since: t0.Add(time.Second)})), "since is exclusive")
	assert.Equal(t, []string{"m3"}, msgs(buf.Query(Query{Since: t0.Add(time.Second), Limit: 1})))
	assert.Empty(t, buf.Query(Query{Since: t0.Add(time.Hour)}))
	assert.Len(t, buf.Query(Query{Since: t0.Add(-time.Hour)}), 4)
}

type lazyValuer struct{}

func (lazyValuer) LogValue() slog.Value { return slog.StringValue("resolved") }

func TestAttrs(t *testing.T) {
	t.Parallel()
	lg, buf, out := newLogger(10, slog.LevelInfo)
	lg = lg.With("node", "n1", "shard_id", uint64(7))
	lg.WithGroup("req").With("method", "GET").Info("event",
		"err", errors.New("boom"), "took", 1500*time.Millisecond, "ok", true, "ratio", 0.5,
		"v", lazyValuer{}, slog.Group("inner", "a", 1), "n", -3)
	es := buf.Query(Query{})
	require.Len(t, es, 1)
	assert.Equal(t, map[string]any{
		"node": "n1", "shard_id": uint64(7), "req.method": "GET", "req.err": "boom", "req.took": "1.5s",
		"req.ok": true, "req.ratio": 0.5, "req.v": "resolved", "req.inner.a": int64(1), "req.n": int64(-3),
	}, es[0].Attrs)
	assert.Contains(t, out.String(), "req.method=GET", "the next handler sees groups and attrs too")
	assert.Contains(t, out.String(), "node=n1")
}

func TestWithAttrsDoesNotLeakBetweenLoggers(t *testing.T) {
	t.Parallel()
	lg, buf, _ := newLogger(10, slog.LevelInfo)
	a := lg.With("who", "a")
	b := lg.With("who", "b")
	a.Info("x")
	b.Info("y")
	lg.Info("z")
	es := buf.Query(Query{})
	require.Len(t, es, 3)
	assert.Equal(t, "a", es[0].Attrs["who"])
	assert.Equal(t, "b", es[1].Attrs["who"])
	assert.NotContains(t, es[2].Attrs, "who")
}

func TestBufferLevelBelowOutput(t *testing.T) {
	t.Parallel()
	out := &bytes.Buffer{}
	buf := NewBuffer(10)
	lg := slog.New(NewHandler(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelWarn}), buf, slog.LevelDebug))
	lg.Debug("d")
	lg.Warn("w")
	assert.Equal(t, []string{"d", "w"}, msgs(buf.Query(Query{MinLevel: slog.LevelDebug})))
	assert.NotContains(t, out.String(), "msg=d", "the next handler keeps its own level")
	assert.Contains(t, out.String(), "msg=w")
}

func TestConcurrent(t *testing.T) {
	t.Parallel()
	const writers, each, size = 8, 500, 100
	lg, buf, _ := newLogger(size, slog.LevelInfo)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := lg.With("writer", w)
			for i := range each {
				l.Info("m", "i", i)
				if i%50 == 0 {
					_ = buf.Query(Query{Limit: 10, MinLevel: slog.LevelInfo})
				}
			}
		}()
	}
	wg.Wait()
	es := buf.Query(Query{})
	require.Len(t, es, size, "the ring is full and never over its bound")
	last := map[int64]int64{}
	for _, e := range es {
		w, i := e.Attrs["writer"].(int64), e.Attrs["i"].(int64)
		if prev, ok := last[w]; ok {
			assert.Greater(t, i, prev, "entries of one writer stay in order")
		}
		last[w] = i
	}
}
