package router

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cavedb/cave/node"
	"github.com/cavedb/cave/peer"
	"github.com/cavedb/cave/ring"
	"github.com/cavedb/cave/shard"
)

// flakyBackend hosts every shard locally, or none, and fails the first
// notReady proposals with node.ErrNotReady.
type flakyBackend struct {
	table    *ring.Table
	local    bool
	notReady int
	proposed int
}

func (b *flakyBackend) Table(context.Context) (*ring.Table, error) { return b.table, nil }
func (b *flakyBackend) HasReplica(ring.ShardID) bool               { return b.local }
func (b *flakyBackend) ShardHosts(ring.ShardID) []node.Host        { return nil }
func (b *flakyBackend) LeaderHost(ring.ShardID) (node.Host, bool)  { return node.Host{}, false }
func (b *flakyBackend) Get(context.Context, ring.ShardID, []byte, bool) (*shard.KeyValue, error) {
	return nil, nil
}
func (b *flakyBackend) List(context.Context, ring.ShardID, shard.ListQuery, bool) (*shard.ListResult, error) {
	return &shard.ListResult{Items: []shard.KeyValue{}}, nil
}

func (b *flakyBackend) History(context.Context, ring.ShardID, shard.HistoryQuery, time.Duration) (*shard.HistoryResult, error) {
	return &shard.HistoryResult{Events: []shard.Event{}}, nil
}

func (b *flakyBackend) Propose(context.Context, ring.ShardID, []byte) ([]shard.OpResult, error) {
	b.proposed++
	if b.proposed <= b.notReady {
		return nil, node.ErrNotReady
	}
	return []shard.OpResult{{Code: shard.ResultOK, Revision: 7}}, nil
}

// counter returns the value of family name's series with label op=op.
func counter(t *testing.T, reg *prometheus.Registry, name, op string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "op" && lp.GetValue() == op {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no series %s{op=%q}", name, op)
	return 0
}

func newTestRouter(t *testing.T, be Backend, attempts int) (*Router, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	peers := peer.New()
	t.Cleanup(func() { _ = peers.Close() })
	cfg := DefaultConfig()
	cfg.Backend, cfg.Forwarder, cfg.Metrics = be, peer.NewClient(peers), reg
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.Attempts, cfg.Backoff = attempts, time.Millisecond
	r, err := New(cfg)
	require.NoError(t, err)
	return r, reg
}

func TestRetriesAndForwardsCounted(t *testing.T) {
	t.Parallel()
	tbl, err := ring.NewTable(2)
	require.NoError(t, err)
	ctx := t.Context()

	be := &flakyBackend{table: tbl, local: true, notReady: 2}
	r, reg := newTestRouter(t, be, 5)
	for _, op := range []string{"get", "put", "delete", "list"} {
		assert.Zero(t, counter(t, reg, "cave_router_retries_total", op), "series exist at zero from the start")
		assert.Zero(t, counter(t, reg, "cave_router_forwards_total", op))
	}
	rev, err := r.Put(ctx, "a/b", []byte("v"), nil)
	require.NoError(t, err)
	assert.Equal(t, int64(7), rev)
	assert.InDelta(t, 2, counter(t, reg, "cave_router_retries_total", "put"), 0, "two attempts after the first")
	assert.Zero(t, counter(t, reg, "cave_router_forwards_total", "put"), "a local replica is not a forward")

	// No local replica and no known host: every attempt is a forward that
	// finds nobody, and the retries run out.
	remote := &flakyBackend{table: tbl}
	r, reg = newTestRouter(t, remote, 3)
	_, err = r.Get(ctx, "a/b", false)
	assert.True(t, errors.Is(err, ErrUnavailable), "got %v", err)
	assert.InDelta(t, 3, counter(t, reg, "cave_router_forwards_total", "get"), 0)
	assert.InDelta(t, 2, counter(t, reg, "cave_router_retries_total", "get"), 0)

	_, err = New(Config{Backend: be, Forwarder: peer.NewClient(peer.New()), Logger: slog.New(slog.DiscardHandler), Attempts: 1, Backoff: time.Millisecond, MaxListLimit: 1, Metrics: reg})
	assert.Error(t, err, "a second router on the same registry")
	cfg := DefaultConfig()
	cfg.Backend, cfg.Forwarder, cfg.Logger = be, peer.NewClient(peer.New()), slog.New(slog.DiscardHandler)
	assert.ErrorContains(t, cfg.Validate(), "Metrics must be set")
}
