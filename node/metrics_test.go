package node

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/lni/dragonboat/v4"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestResultOf(t *testing.T) {
	t.Parallel()
	cases := []struct {
		err  error
		want string
	}{
		{nil, "ok"},
		{translate(dragonboat.ErrShardNotFound, true), "no_replica"},
		{translate(dragonboat.ErrShardNotReady, true), "not_ready"},
		{translate(dragonboat.ErrTimeout, true), "unknown_outcome"},
		{translate(dragonboat.ErrTimeout, false), "not_ready"},
		{translate(dragonboat.ErrPayloadTooBig, true), "too_large"},
		{translate(dragonboat.ErrClosed, false), "closed"},
		{fmt.Errorf("wrapped: %w", ErrNotInitialized), "not_ready"},
		{errors.New("disk on fire"), "error"},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, resultNames[resultOf(tc.err)], "resultOf(%v)", tc.err)
	}
}

func TestLeaderChanges(t *testing.T) {
	t.Parallel()
	var l leaderSet
	l.init()
	assert.True(t, l.update(1, 3, false), "the first leader seen counts")
	assert.False(t, l.update(1, 3, false), "the same leader again does not")
	assert.False(t, l.update(1, 0, false), "losing the leader is not a change yet")
	assert.False(t, l.update(1, 3, false), "the same leader coming back is not a change")
	assert.True(t, l.update(1, 5, true), "a new leader is")
	assert.Equal(t, []uint64{1}, func() []uint64 {
		var out []uint64
		for _, id := range l.led() {
			out = append(out, uint64(id))
		}
		return out
	}())
	assert.True(t, l.update(2, 1, false), "shards are tracked separately")
}

func TestMetricsSeries(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	require.NoError(t, m.register(prometheus.NewGauge(prometheus.GaugeOpts{Name: "test_collector"})))
	m.proposed(3, nil, 0)
	m.proposed(3, translate(dragonboat.ErrTimeout, true), 0)
	m.read(3, true, nil)
	m.read(3, false, translate(dragonboat.ErrShardNotReady, false))
	m.action(kindLeaderTransfer, nil)
	m.action(stepAdd, errors.New("x"))
	m.moveDone(moveAdd, "rolled back")

	series := gather(t, reg)
	for _, s := range []string{
		`cave_node_raft_proposals_total{result="ok",shard="3"}`,
		`cave_node_raft_proposals_total{result="unknown_outcome",shard="3"}`,
		`cave_node_raft_reads_total{kind="stale",result="ok",shard="3"}`,
		`cave_node_raft_reads_total{kind="linearizable",result="not_ready",shard="3"}`,
		`cave_node_reconcile_actions_total{kind="leader-transfer",result="ok"}`,
		`cave_node_reconcile_actions_total{kind="add",result="error"}`,
		`cave_node_moves_total{kind="add",result="rolled back"}`,
	} {
		assert.InDelta(t, 1, series[s], 0, "%s", s)
	}
	assert.InDelta(t, 2, series["cave_node_raft_propose_duration_seconds"], 0, "every proposal is timed")
	assert.InDelta(t, 0, series[`cave_node_raft_reads_total{kind="linearizable",result="ok",shard="3"}`], 0, "ok series exist from the start")
	count := func(prefix string) int {
		n := 0
		for s := range series {
			if strings.HasPrefix(s, prefix+"{") {
				n++
			}
		}
		return n
	}
	assert.Equal(t, 2, count("cave_node_raft_proposals_total"), "failure series appear only when they happen")
	assert.Equal(t, 2*len(reconcileKinds), count("cave_node_reconcile_actions_total"), "every action kind has its series from the start")

	assert.Error(t, newMetrics(reg).register(prometheus.NewGauge(prometheus.GaugeOpts{Name: "other"})), "a second node on the same registry")
	m.unregister()
	assert.NoError(t, newMetrics(reg).register(prometheus.NewGauge(prometheus.GaugeOpts{Name: "test_collector"})), "after unregister the registry is free again")
}

// gather returns every series of reg as name{labels} (labels sorted by
// name, as Gather returns them) -> counter or gauge value, or a
// histogram's sample count.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	fams, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, lp := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", lp.GetName(), lp.GetValue()))
			}
			sort.Strings(labels)
			name := f.GetName()
			if len(labels) > 0 {
				name += "{" + strings.Join(labels, ",") + "}"
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[name] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[name] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[name] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}
