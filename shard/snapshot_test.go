package shard

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"

	sm "github.com/lni/dragonboat/v4/statemachine"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// snapshotConfig makes RecoverFromSnapshot commit in small batches, so the
// tests cross batch boundaries.
func snapshotConfig(t testing.TB) Config {
	cfg := testConfig(t)
	cfg.Expert.RecoverBatchBytes = 64 << 10
	return cfg
}

// fill writes n keys of about size bytes each to m at index idx, plus one
// value larger than SaveSnapshot's chunk, and deletes a few keys at idx+1.
func fill(t testing.TB, m *StateMachine, idx uint64, n, size int) {
	t.Helper()
	ops := make([]Op, 0, n+1)
	for i := 0; i < n; i++ {
		ops = append(ops, put(fmt.Sprintf("key/%05d", i), fmt.Sprintf("%0*d", size, i)))
	}
	ops = append(ops, Op{Kind: OpPut, Key: []byte("big"), Value: bytes.Repeat([]byte("B"), 3*snapshotChunkBytes+17)})
	apply(t, m, idx, ops...)
	apply(t, m, idx+1, del("key/00003"), put("key/00004", "rewritten"))
}

// save prepares and saves a snapshot of m.
func save(t testing.TB, m *StateMachine) []byte {
	t.Helper()
	st, err := m.PrepareSnapshot()
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, m.SaveSnapshot(st, &buf, make(chan struct{})))
	return buf.Bytes()
}

func allKVs(t testing.TB, m *StateMachine) []KeyValue {
	t.Helper()
	lr := list(t, m, ListQuery{})
	require.False(t, lr.More)
	return lr.Items
}

func TestSnapshotRoundTrip(t *testing.T) {
	t.Parallel()
	src := openStore(t, "", snapshotConfig(t))
	a, _ := openSM(t, src, 5)
	fill(t, a, 1, 2000, 100)
	wantKVs := allKVs(t, a)
	wantStats := stats(t, a)
	require.Equal(t, uint64(2), wantStats.AppliedIndex)

	st, err := a.PrepareSnapshot()
	require.NoError(t, err)
	// Writes after PrepareSnapshot are not in the snapshot.
	apply(t, a, 3, put("key/00000", "later"), put("later", "x"))
	var buf bytes.Buffer
	require.NoError(t, a.SaveSnapshot(st, &buf, make(chan struct{})))
	assert.Empty(t, a.snaps, "SaveSnapshot releases the Pebble snapshot")
	stream := buf.Bytes()

	// The target already holds other data for the shard (which must go) and
	// data of other shards (which must stay).
	dstDir := t.TempDir()
	dst := openStore(t, dstDir, snapshotConfig(t))
	b, _ := openSM(t, dst, 5)
	other, _ := openSM(t, dst, 6)
	apply(t, b, 1, put("key/00001", "stale"), put("zzz/stale", "x"), put("a-stale", "y"))
	apply(t, other, 1, put("key/00001", "shard 6"))

	require.NoError(t, b.RecoverFromSnapshot(bytes.NewReader(stream), make(chan struct{})))
	assert.Equal(t, wantKVs, allKVs(t, b))
	assert.Equal(t, wantStats, stats(t, b))
	assert.Equal(t, "shard 6", string(get(t, other, "key/00001").Value))
	assert.Equal(t, stream, save(t, b), "a recovered shard saves the same stream")

	// Updates continue after the snapshot's index.
	assert.Equal(t, []OpResult{ok(3)}, apply(t, b, 3, put("key/00004", "again")))
	assert.Equal(t, int64(3), get(t, b, "key/00004").Version)

	// The recovered state survives a restart.
	require.NoError(t, b.Sync())
	require.NoError(t, b.Close())
	require.NoError(t, other.Close())
	require.NoError(t, dst.Close())
	dst2 := openStore(t, dstDir, snapshotConfig(t))
	b2, idx := openSM(t, dst2, 5)
	assert.Equal(t, uint64(3), idx)
	assert.Equal(t, len(wantKVs), len(allKVs(t, b2)))
	assert.Nil(t, get(t, b2, "zzz/stale"))
}

func TestSnapshotOfEmptyShard(t *testing.T) {
	t.Parallel()
	s := openStore(t, "", snapshotConfig(t))
	a, _ := openSM(t, s, 1)
	stream := save(t, a)
	b, _ := openSM(t, s, 2)
	apply(t, b, 1, put("x", "y"))
	require.NoError(t, b.RecoverFromSnapshot(bytes.NewReader(stream), make(chan struct{})))
	assert.Empty(t, allKVs(t, b))
	assert.Equal(t, Stats{}, stats(t, b))
	assert.Equal(t, []OpResult{ok(1)}, apply(t, b, 1, put("x", "z")), "index 0 again")
}

func TestSaveSnapshotStopped(t *testing.T) {
	t.Parallel()
	s := openStore(t, "", snapshotConfig(t))
	m, _ := openSM(t, s, 1)
	fill(t, m, 1, 100, 10)
	st, err := m.PrepareSnapshot()
	require.NoError(t, err)
	done := make(chan struct{})
	close(done)
	err = m.SaveSnapshot(st, io.Discard, done)
	assert.ErrorIs(t, err, sm.ErrSnapshotStopped)
	assert.Empty(t, m.snaps, "a stopped SaveSnapshot releases the Pebble snapshot")
}

// failWriter fails every Write after the first n bytes.
type failWriter struct {
	n   int
	err error
}

func (w *failWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		return 0, w.err
	}
	w.n -= len(p)
	return len(p), nil
}

func TestSaveSnapshotWriteError(t *testing.T) {
	t.Parallel()
	s := openStore(t, "", snapshotConfig(t))
	m, _ := openSM(t, s, 1)
	fill(t, m, 1, 100, 10)
	st, err := m.PrepareSnapshot()
	require.NoError(t, err)
	err = m.SaveSnapshot(st, &failWriter{n: 100, err: sm.ErrSnapshotStreaming}, make(chan struct{}))
	assert.ErrorIs(t, err, sm.ErrSnapshotStreaming)
	assert.Empty(t, m.snaps)

	err = m.SaveSnapshot("not a state", io.Discard, make(chan struct{}))
	assert.Error(t, err)
}

// closingReader closes done once more than n bytes have been read.
type closingReader struct {
	r    io.Reader
	n    int
	done chan struct{}
}

func (c *closingReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	c.n -= k
	if c.n < 0 && c.done != nil {
		close(c.done)
		c.done = nil
	}
	return k, err
}

func TestRecoverStopped(t *testing.T) {
	t.Parallel()
	s := openStore(t, "", snapshotConfig(t))
	a, _ := openSM(t, s, 1)
	fill(t, a, 1, 2000, 100) // about 450 KiB: several recovery batches
	stream := save(t, a)
	b, _ := openSM(t, s, 2)
	apply(t, b, 1, put("old", "data"))

	// Stopped before it wrote anything: the old state is intact.
	done := make(chan struct{})
	close(done)
	require.ErrorIs(t, b.RecoverFromSnapshot(bytes.NewReader(stream), done), sm.ErrSnapshotStopped)
	st, err := s.Stats(2)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), st.AppliedIndex)

	// Stopped half way: the shard has no applied index, and partial data is
	// not served.
	done = make(chan struct{})
	r := &closingReader{r: bytes.NewReader(stream), n: len(stream) / 2, done: done}
	require.ErrorIs(t, b.RecoverFromSnapshot(r, done), sm.ErrSnapshotStopped)
	_, err = b.Lookup(GetQuery{Key: []byte("old")})
	assert.ErrorIs(t, err, ErrRecovering, "partial data is not served")
	st, err = s.Stats(2)
	require.NoError(t, err)
	assert.Equal(t, Stats{}, st, "a load stopped half way leaves no applied index")

	// Dragonboat restarts the replica: Open reports 0 and drops the partial
	// data, and the snapshot can be loaded again.
	require.NoError(t, b.Close())
	b2, idx := openSM(t, s, 2)
	assert.Zero(t, idx)
	assert.Empty(t, allKVs(t, b2))
	require.NoError(t, b2.RecoverFromSnapshot(bytes.NewReader(stream), make(chan struct{})))
	assert.Equal(t, allKVs(t, a), allKVs(t, b2))
	assert.Equal(t, stats(t, a), stats(t, b2))
}

// errReader returns its error after its data.
type errReader struct {
	data []byte
	err  error
}

func (r *errReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestRecoverBadSnapshot(t *testing.T) {
	t.Parallel()
	s := openStore(t, "", snapshotConfig(t))
	a, _ := openSM(t, s, 1)
	apply(t, a, 1, put("a", "1"), put("b", "2"), put("c", "3"))
	stream := save(t, a)

	// A stream with keys out of order.
	var swapped []byte
	{
		hdr := stream[:snapshotHeaderLen]
		rec := func(k string) []byte {
			v := appendRecord(nil, 1, 1, 1, []byte("v"))
			return append(append(append([]byte{byte(len(k))}, k...), byte(len(v))), v...)
		}
		swapped = append(append(append(append([]byte(nil), hdr...), rec("b")...), rec("a")...), 0, 2)
	}
	badRecord := append([]byte(nil), stream[:snapshotHeaderLen]...)
	badRecord = append(badRecord, 1, 'a', 2, 9, 9, 0, 1) // record of an unknown format

	cases := []struct {
		name   string
		stream []byte
	}{
		{"empty", nil},
		{"header only", stream[:snapshotHeaderLen]},
		{"unknown format", append([]byte{7}, stream[1:]...)},
		{"no count", stream[:len(stream)-1]},
		{"wrong count", append(append([]byte(nil), stream[:len(stream)-1]...), 9)},
		{"out of order", swapped},
		{"bad record", badRecord},
	}
	for i := 1; i < len(stream)-2; i += 3 {
		cases = append(cases, struct {
			name   string
			stream []byte
		}{fmt.Sprintf("truncated at %d", i), stream[:i]})
	}
	b, _ := openSM(t, s, 2)
	for _, tc := range cases {
		err := b.RecoverFromSnapshot(bytes.NewReader(tc.stream), make(chan struct{}))
		assert.ErrorIs(t, err, ErrBadSnapshot, tc.name)
	}

	// A failing reader is not a bad snapshot: its error comes back.
	readErr := errors.New("disk on fire")
	err := b.RecoverFromSnapshot(&errReader{data: stream[:10], err: readErr}, make(chan struct{}))
	assert.ErrorIs(t, err, readErr)
	assert.NotErrorIs(t, err, ErrBadSnapshot)

	// The good stream still loads after all that.
	require.NoError(t, b.RecoverFromSnapshot(bytes.NewReader(stream), make(chan struct{})))
	assert.Equal(t, allKVs(t, a), allKVs(t, b))
}

func TestLookupDuringRecover(t *testing.T) {
	t.Parallel()
	s := openStore(t, "", snapshotConfig(t))
	a, _ := openSM(t, s, 1)
	fill(t, a, 1, 100, 10)
	stream := save(t, a)

	b, _ := openSM(t, s, 2)
	apply(t, b, 1, put("x", "y"))
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() { errc <- b.RecoverFromSnapshot(pr, make(chan struct{})) }()
	// Once the header has been read, the load is under way.
	_, err := pw.Write(stream[:snapshotHeaderLen])
	require.NoError(t, err)
	_, err = b.Lookup(GetQuery{Key: []byte("x")})
	assert.ErrorIs(t, err, ErrRecovering)
	_, err = b.Lookup(StatsQuery{})
	assert.ErrorIs(t, err, ErrRecovering)
	_, err = pw.Write(stream[snapshotHeaderLen:])
	require.NoError(t, err)
	require.NoError(t, pw.Close())
	require.NoError(t, <-errc)
	assert.Equal(t, allKVs(t, a), allKVs(t, b))
}
