package shard

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStoreMetrics(t *testing.T) {
	t.Parallel()
	s, err := Open(t.TempDir(), testConfig(t))
	require.NoError(t, err)
	m := s.NewStateMachine(1, 1)
	_, err = m.Open(make(chan struct{}))
	require.NoError(t, err)
	apply(t, m, 1, put("a", "1"), put("b", "2"))
	require.NoError(t, m.Sync())

	em, err := s.Metrics()
	require.NoError(t, err)
	assert.Positive(t, em.DiskUsageBytes, "disk usage")
	assert.Positive(t, em.WALWrittenBytes, "WAL bytes written after a synced write")
	assert.Positive(t, em.MemTableBytes, "memtable holds the writes")
	assert.GreaterOrEqual(t, em.ReadAmplification, 0)

	require.NoError(t, m.Close())
	require.NoError(t, s.Close())
	_, err = s.Metrics()
	assert.ErrorIs(t, err, ErrClosed)
}
