package dblog

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// record is one log record a test handler kept.
type record struct {
	level    slog.Level
	msg      string
	repeated int64
}

// collector is a slog.Handler that keeps every record.
type collector struct {
	mu      sync.Mutex
	records []record
}

func (c *collector) Enabled(context.Context, slog.Level) bool { return true }
func (c *collector) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *collector) WithGroup(string) slog.Handler            { return c }
func (c *collector) Handle(_ context.Context, r slog.Record) error {
	rec := record{level: r.Level, msg: r.Message}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "repeated" {
			rec.repeated = a.Value.Int64()
		}
		return true
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	c.records = append(c.records, rec)
	return nil
}

func (c *collector) take() []record {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.records
	c.records = nil
	return out
}

// fakeClock is a settable clock for limiter.
type fakeClock struct{ t time.Time }

func (f *fakeClock) now() time.Time { return f.t }

// TestLevels checks how dragonboat's and serf's messages map to slog
// levels: a peer that cannot be reached is a warning, not an error, and
// serf's failed re-join after a restart is info.
func TestLevels(t *testing.T) {
	t.Parallel()
	var c collector
	lg := slog.New(&c)
	clk := &fakeClock{t: time.Unix(0, 0)}
	transport := newAdapter(lg, "transport", newLimiter(clk.now))
	transport.Errorf("Nodehost %s failed to get a connection to %s, %v", "n1", "n2:8742", "connection refused")
	transport.Errorf("send batch failed, target %s (%v), %d", "n2:8742", "EOF", 3)
	transport.Errorf("invalid payload checksum")
	transport.Infof("connected to %s", "n2")
	raft := newAdapter(lg, "raft", newLimiter(clk.now))
	raft.Warningf("%s became leader", "shard 1")
	assert.Equal(t, []record{
		{level: slog.LevelWarn, msg: "Nodehost n1 failed to get a connection to n2:8742, connection refused"},
		{level: slog.LevelWarn, msg: "send batch failed, target n2:8742 (EOF), 3"},
		{level: slog.LevelError, msg: "invalid payload checksum"},
		{level: slog.LevelDebug, msg: "connected to n2"},
		{level: slog.LevelDebug, msg: "shard 1 became leader"},
	}, c.take())

	std := StdLogger(lg)
	std.Print("[WARN] serf: Failed to re-join any previously known node")
	std.Print("[ERR] memberlist: Failed to send ping: write: broken pipe")
	std.Print("[WARN] memberlist: Refuting a suspect message")
	std.Print("[INFO] serf: EventMemberJoin: n2 127.0.0.1")
	assert.Equal(t, []record{
		{level: slog.LevelInfo, msg: "[WARN] serf: Failed to re-join any previously known node"},
		{level: slog.LevelError, msg: "[ERR] memberlist: Failed to send ping: write: broken pipe"},
		{level: slog.LevelWarn, msg: "[WARN] memberlist: Refuting a suspect message"},
		{level: slog.LevelDebug, msg: "[INFO] serf: EventMemberJoin: n2 127.0.0.1"},
	}, c.take())
}

// TestRepeatsAreLimited checks that identical messages are logged once
// per RepeatInterval, the next one with the number dropped, and that
// different messages are not held back.
func TestRepeatsAreLimited(t *testing.T) {
	t.Parallel()
	var c collector
	clk := &fakeClock{t: time.Unix(0, 0)}
	a := newAdapter(slog.New(&c), "transport", newLimiter(clk.now))
	refused := func() { a.Errorf("failed to connect to %s", "n2") }
	for range 50 {
		refused()
		clk.t = clk.t.Add(200 * time.Millisecond)
	}
	a.Errorf("failed to connect to %s", "n3")
	got := c.take()
	require.Len(t, got, 2, "%v", got)
	assert.Equal(t, record{level: slog.LevelWarn, msg: "failed to connect to n2"}, got[0])
	assert.Equal(t, record{level: slog.LevelWarn, msg: "failed to connect to n3"}, got[1])

	clk.t = clk.t.Add(RepeatInterval)
	refused()
	assert.Equal(t, []record{{level: slog.LevelWarn, msg: "failed to connect to n2", repeated: 49}}, c.take())
	refused()
	assert.Empty(t, c.take())
}

// TestLimiterIsBounded checks that a limiter forgets messages rather
// than grow without bound.
func TestLimiterIsBounded(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{t: time.Unix(0, 0)}
	l := newLimiter(clk.now)
	lg := slog.New(slog.DiscardHandler)
	for i := range 3 * maxTracked {
		l.log(lg, slog.LevelWarn, time.Duration(i).String())
	}
	assert.LessOrEqual(t, len(l.seen), maxTracked)
}
