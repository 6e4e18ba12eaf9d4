package shard

import (
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStoreMetrics follows the engine metrics through writes, a flush and
// reads: the WAL and memtable grow by at least the bytes written, a flush
// turns them into an sstable that reads must consult, and reads from it go
// through the block cache.
func TestStoreMetrics(t *testing.T) {
	t.Parallel()
	s, err := Open(t.TempDir(), testConfig(t))
	require.NoError(t, err)
	m := s.NewStateMachine(1, 1)
	_, err = m.Open(make(chan struct{}))
	require.NoError(t, err)

	start, err := s.Metrics()
	require.NoError(t, err)
	assert.Zero(t, start.Tables, "a new store has no sstable")
	assert.Zero(t, start.ReadAmplification, "nothing to read on disk yet")

	// Random values, so the sstable cannot compress them below their size.
	const keys, valueLen = 100, 1 << 10
	var written uint64
	ops := make([]Op, keys)
	for i := range ops {
		v := make([]byte, valueLen)
		_, _ = rand.Read(v)
		ops[i] = Op{Kind: OpPut, Key: fmt.Appendf(nil, "k%03d", i), Value: v}
		written += uint64(len(ops[i].Key) + len(v))
	}
	apply(t, m, 1, ops...)
	require.NoError(t, m.Sync())

	synced, err := s.Metrics()
	require.NoError(t, err)
	assert.GreaterOrEqual(t, synced.WALWrittenBytes-start.WALWrittenBytes, written, "the WAL received every byte written")
	assert.GreaterOrEqual(t, synced.WALBytes, written, "the live WAL holds the unflushed writes")
	assert.GreaterOrEqual(t, synced.MemTableBytes, written, "the memtable holds the writes")
	assert.Zero(t, synced.Tables, "no flush yet")

	require.NoError(t, s.db.Flush())
	flushed, err := s.Metrics()
	require.NoError(t, err)
	assert.Greater(t, flushed.Flushes, start.Flushes, "the flush is counted")
	assert.Positive(t, flushed.Tables, "the flush wrote an sstable")
	assert.GreaterOrEqual(t, flushed.ReadAmplification, 1, "a read must consult the new sstable")
	assert.LessOrEqual(t, int64(flushed.ReadAmplification), flushed.Tables, "every sublevel or level read holds a table")
	assert.GreaterOrEqual(t, flushed.DiskUsageBytes, uint64(keys*valueLen), "the sstable holds the incompressible values")
	assert.GreaterOrEqual(t, flushed.Compactions, start.Compactions)

	// Reads now come from the sstable, through the block cache: the first
	// pass loads blocks into it, the second finds them there.
	for _, op := range ops {
		require.Equal(t, op.Value, get(t, m, string(op.Key)).Value)
	}
	read, err := s.Metrics()
	require.NoError(t, err)
	assert.Greater(t, read.BlockCacheMisses, flushed.BlockCacheMisses, "the first reads miss the cache")
	assert.Positive(t, read.BlockCacheBytes, "the cache holds the blocks read")
	for _, op := range ops {
		get(t, m, string(op.Key))
	}
	reread, err := s.Metrics()
	require.NoError(t, err)
	assert.Greater(t, reread.BlockCacheHits, read.BlockCacheHits, "rereads hit the cache")
	assert.LessOrEqual(t, reread.BlockCacheBytes, testConfig(t).CacheBytes, "the cache stays within its size")

	require.NoError(t, m.Close())
	require.NoError(t, s.Close())
	_, err = s.Metrics()
	assert.ErrorIs(t, err, ErrClosed)
}
