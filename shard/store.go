package shard

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	sm "github.com/lni/dragonboat/v4/statemachine"

	"github.com/cavedb/cave/ring"
)

// ReplicaID identifies one replica of a shard. It converts to dragonboat's
// replicaID at the NodeHost call.
type ReplicaID uint64

// Store is one node's Pebble database, holding the data of every shard that
// has a replica on the node. Each shard's keys live in their own key range,
// so shards never see each other's keys.
//
// A Store is safe for concurrent use. Close it only after the NodeHost that
// runs its state machines has been closed; afterwards every method returns
// ErrClosed.
type Store struct {
	lg                *slog.Logger
	recoverBatchBytes int
	// snapshotBytesPerSecond caps SaveSnapshot's stream; 0: no cap.
	snapshotBytesPerSecond uint64
	// snapshotSent and snapshotReceived count the bytes of snapshot
	// streams written by SaveSnapshot and read by RecoverFromSnapshot.
	snapshotSent, snapshotReceived atomic.Uint64
	historyRevisions               uint64

	// changedMu guards changed, the channel of each shard that its next
	// commit closes (Changed). Taken alone.
	changedMu sync.Mutex
	changed   map[ring.ShardID]chan struct{}

	// mu guards closed and every use of db: an operation holds mu.RLock while
	// it uses db, and Close takes mu.Lock, so db is never used once closed.
	// openMu, if both are taken, is taken after mu.
	mu     sync.RWMutex
	closed bool
	db     *pebble.DB

	// openMu guards open, the shards whose StateMachine is open.
	openMu sync.Mutex
	open   map[ring.ShardID]*StateMachine

	// keyBufs pools *[]byte scratch buffers for building Pebble keys in
	// Lookup, which runs on many goroutines.
	keyBufs sync.Pool
}

// getKeyBuf returns a scratch buffer from the pool; give it back with
// putKeyBuf.
func (s *Store) getKeyBuf() *[]byte {
	if b, ok := s.keyBufs.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, 128)
	return &b
}

// putKeyBuf returns b to the pool unless it grew large.
func (s *Store) putKeyBuf(b *[]byte) {
	if cap(*b) <= 4<<10 {
		s.keyBufs.Put(b)
	}
}

// Open opens, or creates, the Pebble database in dir with cfg, which it
// validates first. The caller must Close the returned Store.
func Open(dir string, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cache := pebble.NewCache(cfg.CacheBytes)
	defer cache.Unref() // the DB holds its own reference
	opts := &pebble.Options{
		Cache:              cache,
		MemTableSize:       uint64(cfg.MemTableBytes),
		FS:                 cfg.Expert.FS,
		Logger:             pebbleLogger{lg: cfg.Logger},
		FormatMajorVersion: pebble.FormatNewest,
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("shard: open pebble in %s: %w", dir, err)
	}
	cfg.Logger.Info("store opened", "dir", dir)
	return &Store{
		lg:                     cfg.Logger,
		recoverBatchBytes:      cfg.Expert.RecoverBatchBytes,
		snapshotBytesPerSecond: cfg.SnapshotBytesPerSecond,
		historyRevisions:       cfg.HistoryRevisions,
		db:                     db,
		open:                   make(map[ring.ShardID]*StateMachine),
		changed:                make(map[ring.ShardID]chan struct{}),
	}, nil
}

// Close waits for in-flight operations, releases snapshots that were
// prepared but never saved, and closes the database, which syncs its
// write-ahead log. Close is idempotent; later calls return nil.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	// Release snapshots that were prepared but never saved, so Pebble closes
	// cleanly.
	s.openMu.Lock()
	for _, m := range s.open {
		m.releaseSnapshots()
	}
	s.openMu.Unlock()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("shard: close pebble: %w", err)
	}
	s.lg.Info("store closed")
	return nil
}

// acquire takes a read hold on the database, or returns ErrClosed. A nil
// error must be followed by release.
func (s *Store) acquire() error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	return nil
}

// release ends a hold taken by acquire.
func (s *Store) release() { s.mu.RUnlock() }

// StateMachineFactory returns the function that dragonboat's
// NodeHost.StartOnDiskReplica takes. Each call of it returns a new
// StateMachine for the shard on this Store.
func (s *Store) StateMachineFactory() func(shardID, replicaID uint64) sm.IOnDiskStateMachine {
	return func(shardID, replicaID uint64) sm.IOnDiskStateMachine {
		return s.NewStateMachine(ring.ShardID(shardID), ReplicaID(replicaID))
	}
}

// NewStateMachine returns a StateMachine for replica rid of shard id, backed
// by this Store. It does no I/O; StateMachine.Open does.
func (s *Store) NewStateMachine(id ring.ShardID, rid ReplicaID) *StateMachine {
	lower, upper := dataBounds(id)
	mk := shardPrefix(nsMeta, id)
	hk := shardPrefix(nsHistory, id)
	return &StateMachine{
		store:   s,
		id:      id,
		replica: rid,
		lg:      s.lg.With("shard_id", uint64(id), "replica_id", uint64(rid)),
		metaKey: mk[:],
		histKey: hk[:],
		lower:   lower,
		upper:   upper,
		snaps:   make(map[*pebble.Snapshot]struct{}),
	}
}

// RemoveShardData deletes every key of shard id, its data, its history and
// its applied index, and syncs the deletion to disk. Call it after dragonboat's
// RemoveData and before a replica of the shard is added to this node again;
// otherwise the new replica would start from the old data. It returns
// ErrShardOpen, having changed nothing, if a StateMachine of the shard is
// open: dragonboat closes a stopped replica's state machine on a background
// worker, so this can happen briefly after StopReplica or SyncRemoveData
// return, and the caller should retry.
func (s *Store) RemoveShardData(id ring.ShardID) error {
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.release()
	s.openMu.Lock()
	_, open := s.open[id]
	s.openMu.Unlock()
	if open {
		return fmt.Errorf("shard %d: remove data: %w", id, ErrShardOpen)
	}
	if err := s.deleteShard(id, pebble.Sync); err != nil {
		return fmt.Errorf("shard %d: remove data: %w", id, err)
	}
	s.lg.Info("shard data removed", "shard_id", uint64(id))
	return nil
}

// deleteShard deletes shard id's data, history and meta record in one
// batch. The caller holds a read hold on the database.
func (s *Store) deleteShard(id ring.ShardID, opts *pebble.WriteOptions) error {
	lower, upper := dataBounds(id)
	hl, hu := histBounds(id)
	mk := shardPrefix(nsMeta, id)
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.DeleteRange(lower, upper, nil); err != nil {
		return err
	}
	if err := b.DeleteRange(hl, hu, nil); err != nil {
		return err
	}
	if err := b.Delete(mk[:], nil); err != nil {
		return err
	}
	return b.Commit(opts)
}

// Stats describes one shard's data as of its last applied entry.
type Stats struct {
	// Keys is the number of keys.
	Keys int64
	// Bytes is the sum of the lengths of every key and value.
	Bytes int64
	// AppliedIndex is the Raft index of the last entry applied.
	AppliedIndex uint64
}

// Stats returns shard id's counters as last committed by its StateMachine,
// without going through Raft; a shard this Store has no data for has zero
// Stats. It costs one point read.
func (s *Store) Stats(id ring.ShardID) (Stats, error) {
	if err := s.acquire(); err != nil {
		return Stats{}, err
	}
	defer s.release()
	mk := shardPrefix(nsMeta, id)
	m, _, err := s.readMeta(mk[:])
	if err != nil {
		return Stats{}, fmt.Errorf("shard %d: stats: %w", id, err)
	}
	return Stats{Keys: m.keys, Bytes: m.bytes, AppliedIndex: m.applied}, nil
}

// readMeta reads a meta record; found is false, with a zero meta, when it is
// absent. The caller holds a read hold on the database.
func (s *Store) readMeta(key []byte) (m meta, found bool, err error) {
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return meta{}, false, nil
	}
	if err != nil {
		return meta{}, false, err
	}
	defer closer.Close()
	m, ok := decodeMeta(v)
	if !ok {
		return meta{}, false, fmt.Errorf("%w: meta record", ErrCorrupt)
	}
	return m, true, nil
}

// pebbleLogger sends Pebble's log lines to slog.
type pebbleLogger struct{ lg *slog.Logger }

// Infof logs at Info.
func (l pebbleLogger) Infof(format string, args ...any) {
	l.lg.Info("pebble message", "detail", fmt.Sprintf(format, args...))
}

// Errorf logs at Error.
func (l pebbleLogger) Errorf(format string, args ...any) {
	l.lg.Error("pebble error", "detail", fmt.Sprintf(format, args...))
}

// Fatalf logs at Error and panics: Pebble calls it on a broken invariant and
// expects it not to return.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.lg.Error("pebble fatal error", "detail", msg)
	panic("pebble: " + msg)
}

// EngineMetrics are a few of Pebble's counters for the Store's database,
// for a node's metrics.
type EngineMetrics struct {
	// DiskUsageBytes is the space the database takes on disk: tables, WAL,
	// manifests and obsolete files not yet deleted.
	DiskUsageBytes uint64
	// MemTableBytes is the size of the memtables, flushing ones included.
	MemTableBytes uint64
	// Compactions and Flushes count the compactions and memtable flushes
	// since the database was opened.
	Compactions, Flushes int64
	// ReadAmplification is the number of sublevels a point read may have
	// to consult: L0 sublevels plus non-empty lower levels.
	ReadAmplification int
	// WALBytes is the live data in the write-ahead log files.
	WALBytes uint64
	// WALWrittenBytes counts the bytes written to the write-ahead log
	// since the database was opened.
	WALWrittenBytes uint64
	// Tables is the number of sstables.
	Tables int64
	// BlockCacheBytes is the size of the block cache in use;
	// BlockCacheHits and BlockCacheMisses count its lookups.
	BlockCacheBytes, BlockCacheHits, BlockCacheMisses int64
	// SnapshotSentBytes and SnapshotReceivedBytes count the bytes of shard
	// snapshots streamed to new or lagging replicas elsewhere and loaded
	// from them here, since the store was opened: the data moves carry.
	SnapshotSentBytes, SnapshotReceivedBytes uint64
}

// Metrics returns the database's engine metrics, or ErrClosed. It is cheap
// enough to call on every metrics scrape.
func (s *Store) Metrics() (EngineMetrics, error) {
	if err := s.acquire(); err != nil {
		return EngineMetrics{}, err
	}
	defer s.release()
	m := s.db.Metrics()
	return EngineMetrics{
		DiskUsageBytes:        m.DiskSpaceUsage(),
		MemTableBytes:         m.MemTable.Size,
		Compactions:           m.Compact.Count,
		Flushes:               m.Flush.Count,
		ReadAmplification:     m.ReadAmp(),
		WALBytes:              m.WAL.Size,
		WALWrittenBytes:       m.WAL.BytesWritten,
		Tables:                m.Total().TablesCount,
		BlockCacheBytes:       m.BlockCache.Size,
		BlockCacheHits:        m.BlockCache.Hits,
		BlockCacheMisses:      m.BlockCache.Misses,
		SnapshotSentBytes:     s.snapshotSent.Load(),
		SnapshotReceivedBytes: s.snapshotReceived.Load(),
	}, nil
}
