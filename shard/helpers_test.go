package shard

import (
	"log/slog"
	"strings"
	"testing"

	sm "github.com/lni/dragonboat/v4/statemachine"
	"github.com/stretchr/testify/require"

	"github.com/cavedb/cave/ring"
)

// testWriter sends log lines to t.Log, so they show only when a test fails.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func testConfig(t testing.TB) Config {
	cfg := DefaultConfig()
	cfg.CacheBytes = 8 << 20
	cfg.MemTableBytes = 4 << 20
	cfg.Logger = testLogger(t)
	return cfg
}

// openStore opens a Store in dir (a new temporary directory if empty) and
// closes it when the test ends.
func openStore(t testing.TB, dir string, cfg Config) *Store {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	s, err := Open(dir, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

// openSM opens the state machine of shard id on s and returns it with the
// applied index Open reported.
func openSM(t testing.TB, s *Store, id ring.ShardID) (*StateMachine, uint64) {
	t.Helper()
	m := s.NewStateMachine(id, 1)
	idx, err := m.Open(make(chan struct{}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	return m, idx
}

// update applies one entry per command, with consecutive indexes from first,
// in one Update call, and returns each entry's results.
func update(t testing.TB, m *StateMachine, first uint64, cmds ...[]Op) [][]OpResult {
	t.Helper()
	ents := make([]sm.Entry, len(cmds))
	for i, ops := range cmds {
		ents[i] = sm.Entry{Index: first + uint64(i), Cmd: EncodeCommand(nil, ops)}
	}
	out, err := m.Update(ents)
	require.NoError(t, err)
	require.Len(t, out, len(cmds))
	res := make([][]OpResult, len(out))
	for i, e := range out {
		require.Equal(t, first+uint64(i), e.Index)
		res[i], err = DecodeResults(e.Result)
		require.NoError(t, err)
	}
	return res
}

// apply applies one command at index and returns its results.
func apply(t testing.TB, m *StateMachine, index uint64, ops ...Op) []OpResult {
	t.Helper()
	return update(t, m, index, ops)[0]
}

func put(key, value string) Op {
	return Op{Kind: OpPut, Key: []byte(key), Value: []byte(value)}
}

func putIf(key, value string, prev int64) Op {
	return Op{Kind: OpPut, Key: []byte(key), Value: []byte(value), PrevRevision: prev, HasPrevRevision: true}
}

func del(key string) Op { return Op{Kind: OpDelete, Key: []byte(key)} }

func delIf(key string, prev int64) Op {
	return Op{Kind: OpDelete, Key: []byte(key), PrevRevision: prev, HasPrevRevision: true}
}

func ok(rev int64) OpResult { return OpResult{Code: ResultOK, Revision: rev} }

// get looks key up and returns its KeyValue, nil when absent.
func get(t testing.TB, m *StateMachine, key string) *KeyValue {
	t.Helper()
	res, err := m.Lookup(GetQuery{Key: []byte(key)})
	require.NoError(t, err)
	kv, isKV := res.(*KeyValue)
	require.True(t, isKV, "Lookup(GetQuery) returned %T", res)
	return kv
}

func list(t testing.TB, m *StateMachine, q ListQuery) *ListResult {
	t.Helper()
	res, err := m.Lookup(q)
	require.NoError(t, err)
	lr, isLR := res.(*ListResult)
	require.True(t, isLR, "Lookup(ListQuery) returned %T", res)
	return lr
}

func listKeys(lr *ListResult) []string {
	keys := make([]string, len(lr.Items))
	for i, kv := range lr.Items {
		keys[i] = string(kv.Key)
	}
	return keys
}

func stats(t testing.TB, m *StateMachine) Stats {
	t.Helper()
	res, err := m.Lookup(StatsQuery{})
	require.NoError(t, err)
	st, isStats := res.(Stats)
	require.True(t, isStats, "Lookup(StatsQuery) returned %T", res)
	return st
}
