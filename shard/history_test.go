package shard

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func history(t testing.TB, m *StateMachine, q HistoryQuery) *HistoryResult {
	t.Helper()
	res, err := m.Lookup(q)
	require.NoError(t, err)
	hr, isHR := res.(*HistoryResult)
	require.True(t, isHR, "Lookup(HistoryQuery) returned %T", res)
	return hr
}

// eventLines renders events one per line: "rev kind key create prev value".
func eventLines(evs []Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "%d %s %s c=%d p=%d %q\n", e.Revision, e.Kind, e.Key, e.CreateRevision, e.PrevRevision, e.Value)
	}
	return b.String()
}

// writeSample applies, at indexes 1..6: puts, an overwrite, a failed CAS
// (no event), a batch of two ops in one entry, a delete and a failed
// delete of a missing key (no event).
func writeSample(t testing.TB, m *StateMachine) {
	t.Helper()
	apply(t, m, 1, put("app/a", "1"))
	apply(t, m, 2, put("app/b", "2"), put("other/x", "x"))
	apply(t, m, 3, put("app/a", "3"))
	apply(t, m, 4, putIf("app/a", "no", 1))
	apply(t, m, 5, del("app/b"), put("app/c", "5"))
	apply(t, m, 6, del("app/missing"))
}

func TestHistoryQuery(t *testing.T) {
	t.Parallel()
	m, _ := openSM(t, openStore(t, "", testConfig(t)), 3)
	writeSample(t, m)
	all := "" +
		"1 put app/a c=1 p=0 \"1\"\n" +
		"2 put app/b c=2 p=0 \"2\"\n" +
		"2 put other/x c=2 p=0 \"x\"\n" +
		"3 put app/a c=1 p=1 \"3\"\n" +
		"5 delete app/b c=2 p=2 \"\"\n" +
		"5 put app/c c=5 p=0 \"5\"\n"
	cases := []struct {
		name string
		q    HistoryQuery
		want string
		next int64
	}{
		{"all", HistoryQuery{}, all, 6},
		{"from now", HistoryQuery{After: -1}, "", 6},
		{"prefix", HistoryQuery{Prefix: []byte("other/")}, "2 put other/x c=2 p=0 \"x\"\n", 6},
		{"after", HistoryQuery{After: 3}, "5 delete app/b c=2 p=2 \"\"\n5 put app/c c=5 p=0 \"5\"\n", 6},
		{"after the end", HistoryQuery{After: 9}, "", 9},
		{"keys only", HistoryQuery{After: 2, KeysOnly: true}, "3 put app/a c=1 p=1 \"\"\n5 delete app/b c=2 p=2 \"\"\n5 put app/c c=5 p=0 \"\"\n", 6},
		// A limit never splits an entry: revision 2's second event comes too.
		{"limit", HistoryQuery{Limit: 2}, "1 put app/a c=1 p=0 \"1\"\n2 put app/b c=2 p=0 \"2\"\n2 put other/x c=2 p=0 \"x\"\n", 2},
		{"limit 1", HistoryQuery{After: 2, Limit: 1}, "3 put app/a c=1 p=1 \"3\"\n", 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := history(t, m, tc.q)
			assert.Equal(t, tc.want, eventLines(res.Events))
			assert.Equal(t, tc.next, res.Next)
			assert.Equal(t, int64(0), res.Floor)
		})
	}
}

func TestHistoryTrimAndRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := testConfig(t)
	cfg.HistoryRevisions = 16
	s := openStore(t, dir, cfg)
	m, _ := openSM(t, s, 3)
	for i := uint64(1); i <= 18; i++ {
		apply(t, m, i, put(fmt.Sprintf("k%d", i%4), fmt.Sprint(i)))
	}
	// 18 - 0 is not above 16 + 16/8: nothing trimmed yet.
	assert.Len(t, history(t, m, HistoryQuery{}).Events, 18)
	apply(t, m, 19, put("k", "19"))
	res := history(t, m, HistoryQuery{After: 3})
	assert.Equal(t, int64(3), res.Floor, "trimmed to the last 16 revisions")
	assert.Len(t, res.Events, 16)
	_, err := m.Lookup(HistoryQuery{After: 2})
	require.ErrorIs(t, err, ErrCompacted)
	_, err = m.Lookup(HistoryQuery{After: -1})
	require.NoError(t, err, "from now never fails")

	// After a restart the history and its floor are as they were.
	require.NoError(t, m.Close())
	require.NoError(t, s.Close())
	s2 := openStore(t, dir, cfg)
	m2, idx := openSM(t, s2, 3)
	require.Equal(t, uint64(19), idx)
	res2 := history(t, m2, HistoryQuery{After: 3})
	assert.Equal(t, eventLines(res.Events), eventLines(res2.Events))
	assert.Equal(t, res.Floor, res2.Floor)
	assert.Equal(t, int64(19), res2.Next)
}

func TestHistoryAfterSnapshot(t *testing.T) {
	t.Parallel()
	src, _ := openSM(t, openStore(t, "", testConfig(t)), 4)
	writeSample(t, src)
	stream := save(t, src)

	dst, _ := openSM(t, openStore(t, "", testConfig(t)), 4)
	apply(t, dst, 1, put("app/stale", "x"))
	require.NoError(t, dst.RecoverFromSnapshot(bytes.NewReader(stream), make(chan struct{})))
	res := history(t, dst, HistoryQuery{After: 6})
	assert.Empty(t, res.Events)
	assert.Equal(t, int64(6), res.Floor, "the history starts at the snapshot's index")
	_, err := dst.Lookup(HistoryQuery{After: 5})
	require.ErrorIs(t, err, ErrCompacted)

	apply(t, dst, 7, put("app/a", "7"))
	assert.Equal(t, "7 put app/a c=1 p=3 \"7\"\n", eventLines(history(t, dst, HistoryQuery{After: 6}).Events))
}

func TestHistoryRemovedWithShard(t *testing.T) {
	t.Parallel()
	s := openStore(t, "", testConfig(t))
	m, _ := openSM(t, s, 5)
	writeSample(t, m)
	require.NoError(t, m.Close())
	require.NoError(t, s.RemoveShardData(5))
	m2, idx := openSM(t, s, 5)
	require.Equal(t, uint64(0), idx)
	res := history(t, m2, HistoryQuery{})
	assert.Empty(t, res.Events)
	assert.Equal(t, int64(0), res.Next)
}

func TestChangedWakesOnCommit(t *testing.T) {
	t.Parallel()
	s := openStore(t, "", testConfig(t))
	m, _ := openSM(t, s, 6)
	ch := s.Changed(6)
	other := s.Changed(7)
	select {
	case <-ch:
		t.Fatal("closed before any commit")
	default:
	}
	apply(t, m, 1, put("a", "1"))
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("not closed by the commit")
	}
	select {
	case <-other:
		t.Fatal("another shard's channel was closed")
	default:
	}
	assert.NotEqual(t, ch, s.Changed(6), "a fresh channel for the next commit")
}

func TestDecodeEventRejects(t *testing.T) {
	t.Parallel()
	good := appendEvent(nil, OpPut, []byte("k"), 1, 0, []byte("v"))
	kind, key, create, prev, value, ok := decodeEvent(good)
	require.True(t, ok)
	assert.Equal(t, []any{OpPut, "k", int64(1), int64(0), "v"}, []any{kind, string(key), create, prev, string(value)})
	for _, b := range [][]byte{nil, {eventFormatV1}, {2, 1, 0, 0, 0}, {eventFormatV1, 3, 0, 0, 0}, good[:4], {eventFormatV1, 1, 0, 0, 9, 'k'}} {
		_, _, _, _, _, ok := decodeEvent(b)
		assert.False(t, ok, "%x", b)
	}
}
