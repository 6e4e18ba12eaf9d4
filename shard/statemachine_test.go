package shard

import (
	"bytes"
	"fmt"
	"testing"

	sm "github.com/lni/dragonboat/v4/statemachine"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cavedb/cave/ring"
)

func TestPutGetDelete(t *testing.T) {
	t.Parallel()
	s := openStore(t, "", testConfig(t))
	m, idx := openSM(t, s, 1)
	require.Zero(t, idx, "a new shard starts at index 0")

	assert.Nil(t, get(t, m, "a"), "absent key")
	assert.Equal(t, []OpResult{ok(1)}, apply(t, m, 1, put("a", "one")))
	assert.Equal(t, &KeyValue{Key: []byte("a"), Value: []byte("one"), CreateRevision: 1, ModRevision: 1, Version: 1, Size: 3}, get(t, m, "a"))

	assert.Equal(t, []OpResult{ok(2)}, apply(t, m, 2, put("a", "two!")))
	assert.Equal(t, &KeyValue{Key: []byte("a"), Value: []byte("two!"), CreateRevision: 1, ModRevision: 2, Version: 2, Size: 4}, get(t, m, "a"))

	assert.Equal(t, []OpResult{ok(3)}, apply(t, m, 3, del("a")))
	assert.Nil(t, get(t, m, "a"))
	assert.Equal(t, []OpResult{{Code: ResultNotFound}}, apply(t, m, 4, del("a")), "delete of a missing key")

	// A key created again starts a new life: new create revision, version 1.
	assert.Equal(t, []OpResult{ok(5)}, apply(t, m, 5, put("a", "")))
	assert.Equal(t, &KeyValue{Key: []byte("a"), Value: []byte{}, CreateRevision: 5, ModRevision: 5, Version: 1, Size: 0}, get(t, m, "a"))
	assert.Equal(t, Stats{Keys: 1, Bytes: 1, AppliedIndex: 5}, stats(t, m))
}

func TestLookupQueryForms(t *testing.T) {
	t.Parallel()
	s := openStore(t, "", testConfig(t))
	m, _ := openSM(t, s, 1)
	apply(t, m, 1, put("k", "v"))
	for _, q := range []any{GetQuery{Key: []byte("k")}, &GetQuery{Key: []byte("k")}} {
		res, err := m.Lookup(q)
		require.NoError(t, err)
		assert.Equal(t, "v", string(res.(*KeyValue).Value), "%T", q)
	}
	for _, q := range []any{ListQuery{}, &ListQuery{}} {
		res, err := m.Lookup(q)
		require.NoError(t, err)
		assert.Len(t, res.(*ListResult).Items, 1, "%T", q)
	}
	for _, q := range []any{StatsQuery{}, &StatsQuery{}} {
		res, err := m.Lookup(q)
		require.NoError(t, err)
		assert.Equal(t, Stats{Keys: 1, Bytes: 2, AppliedIndex: 1}, res, "%T", q)
	}
	_, err := m.Lookup("nope")
	assert.ErrorIs(t, err, ErrUnknownQuery)
}

func TestConditionalWrites(t *testing.T) {
	t.Parallel()
	s := openStore(t, "", testConfig(t))
	m, _ := openSM(t, s, 1)

	cases := []struct {
		name string
		op   Op
		want OpResult
	}{
		{"create only on absent key", putIf("k", "v1", 0), ok(1)},
		{"create only on existing key", putIf("k", "v2", 0), OpResult{Code: ResultConditionFailed, Revision: 1}},
		{"put with stale revision", putIf("k", "v2", 7), OpResult{Code: ResultConditionFailed, Revision: 1}},
		{"put with current revision", putIf("k", "v2", 1), ok(4)},
		{"put on absent key with revision", putIf("other", "v", 3), OpResult{Code: ResultConditionFailed, Revision: 0}},
		{"delete with stale revision", delIf("k", 1), OpResult{Code: ResultConditionFailed, Revision: 4}},
		{"delete with negative revision", delIf("k", -4), OpResult{Code: ResultConditionFailed, Revision: 4}},
		{"delete with current revision", delIf("k", 4), ok(8)},
		{"delete absent with revision", delIf("k", 4), OpResult{Code: ResultConditionFailed, Revision: 0}},
		{"delete absent with revision 0", delIf("k", 0), OpResult{Code: ResultNotFound}},
	}
	index := uint64(1)
	for _, tc := range cases {
		got := apply(t, m, index, tc.op)
		assert.Equal(t, []OpResult{tc.want}, got, tc.name)
		index++
	}
	assert.Nil(t, get(t, m, "k"))
	assert.Nil(t, get(t, m, "other"), "a failed condition writes nothing")
	assert.Equal(t, Stats{AppliedIndex: index - 1}, stats(t, m))
}

func TestOpsInOneEntry(t *testing.T) {
	t.Parallel()
	s := openStore(t, "", testConfig(t))
	m, _ := openSM(t, s, 1)
	apply(t, m, 1, put("b", "old"))

	// Ops are independent: a failed condition does not stop the others, and
	// later ops see earlier ones of the same entry. All share the revision.
	got := apply(t, m, 2,
		put("a", "1"),
		putIf("b", "x", 99),
		put("a", "2"),
		putIf("a", "3", 2),
		del("b"),
		del("zzz"),
	)
	assert.Equal(t, []OpResult{
		ok(2),
		{Code: ResultConditionFailed, Revision: 1},
		ok(2),
		ok(2),
		ok(2),
		{Code: ResultNotFound},
	}, got)
	assert.Equal(t, &KeyValue{Key: []byte("a"), Value: []byte("3"), CreateRevision: 2, ModRevision: 2, Version: 3, Size: 1}, get(t, m, "a"))
	assert.Nil(t, get(t, m, "b"))
	assert.Equal(t, Stats{Keys: 1, Bytes: 2, AppliedIndex: 2}, stats(t, m))
}

func TestUpdateBatch(t *testing.T) {
	t.Parallel()
	s := openStore(t, "", testConfig(t))
	m, _ := openSM(t, s, 1)

	// Several entries in one Update: later entries see earlier ones, a bad
	// entry yields ResultBadCommand and changes nothing, and the applied index
	// is the last entry's.
	ents := []sm.Entry{
		{Index: 10, Cmd: EncodeCommand(nil, []Op{put("a", "1"), put("b", "1")})},
		{Index: 11, Cmd: []byte{commandFormatV1, 2, byte(OpPut), 1, 'c', 1, 'x'}}, // truncated second op
		{Index: 12, Cmd: EncodeCommand(nil, []Op{putIf("a", "2", 10)})},
		{Index: 13, Cmd: nil},
		{Index: 14, Cmd: EncodeCommand(nil, []Op{del("b")})},
	}
	out, err := m.Update(ents)
	require.NoError(t, err)
	want := [][]OpResult{
		{ok(10), ok(10)},
		{{Code: ResultBadCommand}},
		{ok(12)},
		{{Code: ResultBadCommand}},
		{ok(14)},
	}
	for i, e := range out {
		got, err := DecodeResults(e.Result)
		require.NoError(t, err)
		assert.Equal(t, want[i], got, "entry %d", e.Index)
	}
	assert.Nil(t, get(t, m, "c"), "the bad entry's first op must not apply")
	assert.Equal(t, int64(12), get(t, m, "a").ModRevision)
	assert.Equal(t, Stats{Keys: 1, Bytes: 2, AppliedIndex: 14}, stats(t, m))
	st, err := s.Stats(1)
	require.NoError(t, err)
	assert.Equal(t, Stats{Keys: 1, Bytes: 2, AppliedIndex: 14}, st, "Store.Stats agrees with Lookup")

	// An index at or below the applied index is a broken invariant.
	_, err = m.Update([]sm.Entry{{Index: 14, Cmd: EncodeCommand(nil, []Op{put("z", "z")})}})
	require.Error(t, err)
	assert.Nil(t, get(t, m, "z"))

	out, err = m.Update(nil)
	require.NoError(t, err)
	assert.Empty(t, out)
}

func TestShardsAreIsolated(t *testing.T) {
	t.Parallel()
	s := openStore(t, "", testConfig(t))
	// Neighbouring IDs, and the largest ID, whose range ends the namespace.
	ids := []ring.ShardID{1, 2, 1<<64 - 1}
	sms := make([]*StateMachine, len(ids))
	for i, id := range ids {
		sms[i], _ = openSM(t, s, id)
		apply(t, sms[i], 1, put("k", fmt.Sprint(id)), put(fmt.Sprintf("only/%d", id), "x"))
	}
	for i, id := range ids {
		m := sms[i]
		assert.Equal(t, fmt.Sprint(id), string(get(t, m, "k").Value), "shard %d", id)
		assert.Equal(t, []string{"k", fmt.Sprintf("only/%d", id)}, listKeys(list(t, m, ListQuery{})), "shard %d", id)
		assert.Equal(t, Stats{Keys: 2, Bytes: int64(1 + len(fmt.Sprint(id)) + len(fmt.Sprintf("only/%d", id)) + 1), AppliedIndex: 1}, stats(t, m))
	}
	unused, _ := openSM(t, s, 3)
	assert.Nil(t, get(t, unused, "k"))
	assert.Empty(t, list(t, unused, ListQuery{}).Items)
}

func TestList(t *testing.T) {
	t.Parallel()
	s := openStore(t, "", testConfig(t))
	m, _ := openSM(t, s, 7)
	keys := []string{"a", "a/1", "a/2", "a/3", "a0", "b/1", "b/2", "c\xff", "c\xff\xff"}
	ops := make([]Op, len(keys))
	for i, k := range keys {
		ops[i] = put(k, "value-"+k)
	}
	apply(t, m, 1, ops...)

	cases := []struct {
		name     string
		q        ListQuery
		wantKeys []string
		wantMore bool
	}{
		{"all", ListQuery{}, keys, false},
		{"prefix", ListQuery{Prefix: []byte("a/")}, []string{"a/1", "a/2", "a/3"}, false},
		{"prefix is a key", ListQuery{Prefix: []byte("a")}, []string{"a", "a/1", "a/2", "a/3", "a0"}, false},
		{"prefix ending in 0xff", ListQuery{Prefix: []byte("c\xff")}, []string{"c\xff", "c\xff\xff"}, false},
		{"no match", ListQuery{Prefix: []byte("zz")}, []string{}, false},
		{"limit", ListQuery{Limit: 2}, []string{"a", "a/1"}, true},
		{"limit exact", ListQuery{Prefix: []byte("b/"), Limit: 2}, []string{"b/1", "b/2"}, false},
		{"start after", ListQuery{Prefix: []byte("a/"), StartAfter: []byte("a/1")}, []string{"a/2", "a/3"}, false},
		{"start after absent key", ListQuery{Prefix: []byte("a/"), StartAfter: []byte("a/15"), Limit: 1}, []string{"a/2"}, true},
		{"start after below prefix", ListQuery{Prefix: []byte("b/"), StartAfter: []byte("a")}, []string{"b/1", "b/2"}, false},
		{"start after past prefix", ListQuery{Prefix: []byte("a/"), StartAfter: []byte("b")}, []string{}, false},
		{"start after last", ListQuery{StartAfter: []byte("c\xff\xff")}, []string{}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lr := list(t, m, tc.q)
			assert.Equal(t, tc.wantKeys, listKeys(lr))
			assert.Equal(t, tc.wantMore, lr.More)
		})
	}

	t.Run("pagination", func(t *testing.T) {
		var got []string
		var after []byte
		for page := 0; ; page++ {
			require.Less(t, page, 10)
			lr := list(t, m, ListQuery{StartAfter: after, Limit: 4, KeysOnly: true})
			got = append(got, listKeys(lr)...)
			if !lr.More {
				break
			}
			after = lr.Items[len(lr.Items)-1].Key
		}
		assert.Equal(t, keys, got)
	})

	t.Run("values and keys only", func(t *testing.T) {
		full := list(t, m, ListQuery{Prefix: []byte("b/1")}).Items
		require.Len(t, full, 1)
		assert.Equal(t, KeyValue{Key: []byte("b/1"), Value: []byte("value-b/1"), CreateRevision: 1, ModRevision: 1, Version: 1, Size: 9}, full[0])
		bare := list(t, m, ListQuery{Prefix: []byte("b/1"), KeysOnly: true}).Items
		require.Len(t, bare, 1)
		assert.Equal(t, KeyValue{Key: []byte("b/1"), CreateRevision: 1, ModRevision: 1, Version: 1, Size: 9}, bare[0])
	})
}

func TestBadCommandsNeverPanic(t *testing.T) {
	t.Parallel()
	s := openStore(t, "", testConfig(t))
	m, _ := openSM(t, s, 1)
	good := EncodeCommand(nil, []Op{put("k", "v"), delIf("j", 3)})
	var ents []sm.Entry
	idx := uint64(1)
	// Every truncation of a good command, and a few bit flips.
	for i := 0; i < len(good); i++ {
		ents = append(ents, sm.Entry{Index: idx, Cmd: good[:i]})
		idx++
	}
	for i := range good {
		c := append([]byte(nil), good...)
		c[i] ^= 0x40
		ents = append(ents, sm.Entry{Index: idx, Cmd: c})
		idx++
	}
	out, err := m.Update(ents)
	require.NoError(t, err)
	for _, e := range out {
		rs, err := DecodeResults(e.Result)
		require.NoError(t, err)
		require.NotEmpty(t, rs, "entry %d", e.Index)
		if e.Index < uint64(len(good))+1 {
			assert.Equal(t, []OpResult{{Code: ResultBadCommand}}, rs, "truncated to %d bytes", e.Index-1)
		}
	}
	assert.Equal(t, idx-1, stats(t, m).AppliedIndex)
}

func TestRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := testConfig(t)
	s, err := Open(dir, cfg)
	require.NoError(t, err)
	m := s.NewStateMachine(4, 1)
	_, err = m.Open(make(chan struct{}))
	require.NoError(t, err)
	for i := uint64(1); i <= 50; i++ {
		apply(t, m, i, put(fmt.Sprintf("k%02d", i%20), fmt.Sprint(i)))
	}
	require.NoError(t, m.Sync())
	require.NoError(t, m.Close())
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close is idempotent")

	s2 := openStore(t, dir, cfg)
	m2, idx := openSM(t, s2, 4)
	assert.Equal(t, uint64(50), idx)
	kv := get(t, m2, "k10")
	assert.Equal(t, &KeyValue{Key: []byte("k10"), Value: []byte("50"), CreateRevision: 10, ModRevision: 50, Version: 3, Size: 2}, kv)
	assert.Equal(t, Stats{Keys: 20, Bytes: 20*3 + 20*2, AppliedIndex: 50}, stats(t, m2))
	// Updates go on from the reported index.
	assert.Equal(t, []OpResult{ok(51)}, apply(t, m2, 51, put("k10", "51")))
	assert.Equal(t, int64(4), get(t, m2, "k10").Version)
}

func TestOpenStopped(t *testing.T) {
	t.Parallel()
	s := openStore(t, "", testConfig(t))
	stopc := make(chan struct{})
	close(stopc)
	_, err := s.NewStateMachine(1, 1).Open(stopc)
	assert.ErrorIs(t, err, sm.ErrOpenStopped)
	// It registered nothing: the shard can still be opened.
	openSM(t, s, 1)
}

func TestRemoveShardData(t *testing.T) {
	t.Parallel()
	s := openStore(t, "", testConfig(t))
	m1, _ := openSM(t, s, 1)
	m2, _ := openSM(t, s, 2)
	apply(t, m1, 1, put("a", "1"), put("b", "2"))
	apply(t, m2, 1, put("a", "other shard"))

	assert.ErrorIs(t, s.RemoveShardData(1), ErrShardOpen)
	// Dragonboat may open a replica's state machine before the previous
	// one's Close; the new one takes over, and the old Close leaves it be.
	m1new := s.NewStateMachine(1, 2)
	idx, err := m1new.Open(make(chan struct{}))
	require.NoError(t, err)
	assert.Equal(t, uint64(1), idx)
	require.NoError(t, m1.Close())
	assert.ErrorIs(t, s.RemoveShardData(1), ErrShardOpen, "the new state machine is open")
	require.NoError(t, m1new.Close())
	require.NoError(t, m1.Close(), "Close is idempotent")
	_, err = m1.Lookup(GetQuery{Key: []byte("a")})
	assert.ErrorIs(t, err, ErrClosed, "Lookup after Close")

	require.NoError(t, s.RemoveShardData(1))
	st, err := s.Stats(1)
	require.NoError(t, err)
	assert.Equal(t, Stats{}, st)
	m1b, idx := openSM(t, s, 1)
	assert.Zero(t, idx, "a re-added replica starts empty")
	assert.Nil(t, get(t, m1b, "a"))
	assert.Empty(t, list(t, m1b, ListQuery{}).Items)
	assert.Equal(t, "other shard", string(get(t, m2, "a").Value), "other shards keep their data")
}

func TestStoreClosed(t *testing.T) {
	t.Parallel()
	s, err := Open(t.TempDir(), testConfig(t))
	require.NoError(t, err)
	m := s.NewStateMachine(1, 1)
	_, err = m.Open(make(chan struct{}))
	require.NoError(t, err)
	apply(t, m, 1, put("a", "1"))
	_, err = m.PrepareSnapshot() // never saved: Close must release it
	require.NoError(t, err)
	require.NoError(t, s.Close())

	_, err = m.Lookup(GetQuery{Key: []byte("a")})
	assert.ErrorIs(t, err, ErrClosed)
	_, err = m.Update([]sm.Entry{{Index: 2, Cmd: EncodeCommand(nil, []Op{put("b", "2")})}})
	assert.ErrorIs(t, err, ErrClosed)
	assert.ErrorIs(t, m.Sync(), ErrClosed)
	_, err = s.Stats(1)
	assert.ErrorIs(t, err, ErrClosed)
	assert.ErrorIs(t, s.RemoveShardData(1), ErrClosed)
	assert.NoError(t, m.Close())
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	err := cfg.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Logger must be set")

	cfg = Config{}
	err = cfg.Validate()
	require.Error(t, err)
	for _, want := range []string{"CacheBytes", "MemTableBytes", "Logger", "Expert.FS", "Expert.RecoverBatchBytes"} {
		assert.Contains(t, err.Error(), want, "Validate reports every problem")
	}
	_, err = Open(t.TempDir(), cfg)
	assert.Error(t, err, "Open validates")

	assert.NoError(t, testConfig(t).Validate())
}

func TestStateMachineFactory(t *testing.T) {
	t.Parallel()
	s := openStore(t, "", testConfig(t))
	f := s.StateMachineFactory()
	m, isSM := f(9, 3).(*StateMachine)
	require.True(t, isSM)
	assert.Equal(t, ring.ShardID(9), m.id)
	assert.Equal(t, ReplicaID(3), m.replica)
}

func BenchmarkUpdate(b *testing.B) {
	s := openStore(b, "", testConfig(b))
	m, _ := openSM(b, s, 1)
	value := make([]byte, 100)
	const perEntry, perUpdate = 4, 16
	ents := make([]sm.Entry, perUpdate)
	ops := make([]Op, perEntry)
	var idx uint64
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range ents {
			for k := range ops {
				ops[k] = Op{Kind: OpPut, Key: fmt.Appendf(nil, "key/%d", (i*perUpdate*perEntry+j*perEntry+k)%10000), Value: value}
			}
			idx++
			ents[j] = sm.Entry{Index: idx, Cmd: EncodeCommand(ents[j].Cmd[:0], ops)}
		}
		if _, err := m.Update(ents); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*perUpdate*perEntry)/b.Elapsed().Seconds(), "ops/s")
}

func BenchmarkGet(b *testing.B) {
	s := openStore(b, "", testConfig(b))
	m, _ := openSM(b, s, 1)
	apply(b, m, 1, put("users/42/name", "alice"))
	q := GetQuery{Key: []byte("users/42/name")}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := m.Lookup(q); err != nil {
			b.Fatal(err)
		}
	}
}

// TestLookupSeesWholeBatches runs Lookups and a SaveSnapshot while Updates
// write two keys per batch, and checks that no read sees half a batch.
func TestLookupSeesWholeBatches(t *testing.T) {
	t.Parallel()
	s := openStore(t, "", testConfig(t))
	m, _ := openSM(t, s, 1)
	apply(t, m, 1, put("a", "1"), put("b", "1"))

	stop := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- func() error {
			for {
				select {
				case <-stop:
					return nil
				default:
				}
				// No require here: FailNow must run on the test's goroutine.
				res, err := m.Lookup(ListQuery{})
				if err != nil {
					return err
				}
				items := res.(*ListResult).Items
				if len(items) != 2 || string(items[0].Value) != string(items[1].Value) {
					return fmt.Errorf("list saw half a batch: %+v", items)
				}
				if res, err = m.Lookup(StatsQuery{}); err != nil {
					return err
				}
				if st := res.(Stats); st.Keys != 2 {
					return fmt.Errorf("stats saw %d keys", st.Keys)
				}
				if res, err = m.Lookup(GetQuery{Key: []byte("a")}); err != nil {
					return err
				}
				if kv := res.(*KeyValue); string(kv.Value) != fmt.Sprint(kv.ModRevision) {
					return fmt.Errorf("get a: value %q at revision %d", kv.Value, kv.ModRevision)
				}
			}
		}()
	}()
	snapState, err := m.PrepareSnapshot()
	require.NoError(t, err)
	for i := uint64(2); i <= 300; i++ {
		v := fmt.Sprint(i)
		apply(t, m, i, put("a", v), put("b", v))
		if i == 150 {
			var buf bytes.Buffer
			require.NoError(t, m.SaveSnapshot(snapState, &buf, make(chan struct{})))
		}
	}
	close(stop)
	require.NoError(t, <-errc)
}
