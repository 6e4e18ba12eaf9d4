package shard

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	sm "github.com/lni/dragonboat/v4/statemachine"
)

// StateMachine holds one shard's keys in the Store's Pebble database, under
// the shard's prefix. It is the dragonboat IOnDiskStateMachine of one
// replica; build it with Store.StateMachineFactory or Store.NewStateMachine.
//
// Update, Sync, PrepareSnapshot, RecoverFromSnapshot and Close never overlap:
// dragonboat calls them from one goroutine at a time. Lookup may run during
// any of them, even after Close, and sees whole batches only; SaveSnapshot
// may run during Update and reads the Pebble snapshot taken by
// PrepareSnapshot. Update writes the entries' effects and the applied index
// in one batch. It returns an error only when the disk fails: a failed
// prev_revision or a malformed command is a ResultCode, because an Update
// error stops the process.
type StateMachine struct {
	store   *Store
	id      ShardID
	replica ReplicaID
	lg      *slog.Logger
	metaKey []byte
	// lower and upper bound the shard's data range; lower is also the prefix
	// of every data key.
	lower, upper []byte

	// Owned by the goroutine that calls Update, Sync, PrepareSnapshot,
	// RecoverFromSnapshot and Close (they never overlap).
	m       meta // applied index and counters as of the last commit
	ops     []Op
	results []OpResult
	keyBuf  []byte
	valBuf  []byte

	// gen is even while the data is whole and odd while RecoverFromSnapshot
	// rewrites it; Lookup fails with ErrRecovering if it sees it odd or see it
	// change.
	gen    atomic.Uint64
	closed atomic.Bool

	// snapMu guards snaps, the Pebble snapshots prepared and not yet
	// released. Taken after Store.mu and Store.openMu.
	snapMu sync.Mutex
	snaps  map[*pebble.Snapshot]struct{}
}

var _ sm.IOnDiskStateMachine = (*StateMachine)(nil)

// Open loads the shard's applied index and counters and returns the index:
// the Raft index of the last entry whose effects are on disk, 0 for a new
// shard. Dragonboat then replays the entries after it. Data found without an
// applied index, left by an interrupted snapshot load, is deleted first.
// Open returns sm.ErrOpenStopped if stopc is already closed, and ErrShardOpen
// if another StateMachine of the shard is open on the Store.
func (m *StateMachine) Open(stopc <-chan struct{}) (uint64, error) {
	select {
	case <-stopc:
		return 0, sm.ErrOpenStopped
	default:
	}
	if err := m.store.acquire(); err != nil {
		return 0, err
	}
	defer m.store.release()
	s := m.store
	s.openMu.Lock()
	if _, ok := s.open[m.id]; ok {
		s.openMu.Unlock()
		return 0, fmt.Errorf("shard %d: open: %w", m.id, ErrShardOpen)
	}
	s.open[m.id] = m
	s.openMu.Unlock()

	mt, found, err := s.readMeta(m.metaKey)
	if err == nil && !found {
		err = m.clearStrays()
	}
	if err != nil {
		s.openMu.Lock()
		delete(s.open, m.id)
		s.openMu.Unlock()
		return 0, fmt.Errorf("shard %d: open: %w", m.id, err)
	}
	m.m = mt
	m.lg.Info("shard opened", "index", mt.applied, "keys", mt.keys, "bytes", mt.bytes)
	return mt.applied, nil
}

// clearStrays deletes data of a shard that has no meta record. Every commit
// writes both, so such data is the remains of an interrupted
// RecoverFromSnapshot and the shard is, in truth, empty.
func (m *StateMachine) clearStrays() error {
	it, err := m.store.db.NewIter(&pebble.IterOptions{LowerBound: m.lower, UpperBound: m.upper})
	if err != nil {
		return err
	}
	nonEmpty := it.First()
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return err
	}
	if !nonEmpty {
		return nil
	}
	m.lg.Warn("deleting shard data without applied index")
	return m.store.deleteShard(m.id, pebble.NoSync)
}

// Update applies entries in order and sets each entry's Result (see
// DecodeResults). The effects of all of them and the new applied index are
// committed in one Pebble batch, without waiting for fsync: after a crash
// the shard comes back at an earlier index and dragonboat replays the rest.
// A malformed entry yields ResultBadCommand and changes nothing. Update is
// deterministic. It returns an error only when Pebble fails or a stored
// record is corrupt; nothing of the batch is then applied.
func (m *StateMachine) Update(entries []sm.Entry) ([]sm.Entry, error) {
	if len(entries) == 0 {
		return entries, nil
	}
	if err := m.store.acquire(); err != nil {
		return nil, err
	}
	defer m.store.release()
	b := m.store.db.NewIndexedBatch()
	defer b.Close()
	c := m.m
	for i := range entries {
		e := &entries[i]
		if e.Index <= c.applied {
			return nil, fmt.Errorf("shard %d: apply index %d: not above applied index %d", m.id, e.Index, c.applied)
		}
		c.applied = e.Index
		ops, err := DecodeCommand(m.ops[:0], e.Cmd)
		if err != nil {
			m.lg.Warn("bad command", "index", e.Index, "err", err)
			e.Result, _ = encodeSingle(OpResult{Code: ResultBadCommand})
			continue
		}
		rs := m.results[:0]
		for j := range ops {
			r, err := m.apply(b, &ops[j], int64(e.Index), &c)
			if err != nil {
				clear(ops)
				m.ops = ops[:0]
				return nil, fmt.Errorf("shard %d: apply index %d: %w", m.id, e.Index, err)
			}
			rs = append(rs, r)
		}
		e.Result = encodeResults(rs)
		clear(ops) // drop references to e.Cmd
		m.ops, m.results = ops[:0], rs[:0]
	}
	enc := c.encode()
	if err := b.Set(m.metaKey, enc[:], nil); err != nil {
		return nil, fmt.Errorf("shard %d: apply index %d: %w", m.id, c.applied, err)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return nil, fmt.Errorf("shard %d: commit index %d: %w", m.id, c.applied, err)
	}
	m.m = c
	m.valBuf = trimBuf(m.valBuf)
	return entries, nil
}

// maxRetainedBytes is the largest scratch buffer a StateMachine keeps
// between calls; a node has many shards, and values can be large.
const maxRetainedBytes = 64 << 10

// trimBuf returns b emptied, or nil if it grew beyond maxRetainedBytes.
func trimBuf(b []byte) []byte {
	if cap(b) > maxRetainedBytes {
		return nil
	}
	return b[:0]
}

// apply applies op at revision rev to b, updating the counters in c.
func (m *StateMachine) apply(b *pebble.Batch, op *Op, rev int64, c *meta) (OpResult, error) {
	m.keyBuf = append(append(m.keyBuf[:0], m.lower...), op.Key...)
	key := m.keyBuf
	cur, found, err := currentRecord(b, key)
	if err != nil {
		return OpResult{}, err
	}
	if op.HasPrevRevision && cur.mod != op.PrevRevision {
		return OpResult{Code: ResultConditionFailed, Revision: cur.mod}, nil
	}
	switch op.Kind {
	case OpPut:
		create, version := rev, int64(1)
		if found {
			create, version = cur.create, cur.version+1
			c.bytes += int64(len(op.Value)) - cur.valueLen
		} else {
			c.keys++
			c.bytes += int64(len(op.Key) + len(op.Value))
		}
		m.valBuf = appendRecord(m.valBuf[:0], create, rev, version, op.Value)
		if err := b.Set(key, m.valBuf, nil); err != nil {
			return OpResult{}, err
		}
		return OpResult{Code: ResultOK, Revision: rev}, nil
	case OpDelete:
		if !found {
			return OpResult{Code: ResultNotFound}, nil
		}
		if err := b.Delete(key, nil); err != nil {
			return OpResult{}, err
		}
		c.keys--
		c.bytes -= int64(len(op.Key)) + cur.valueLen
		return OpResult{Code: ResultOK, Revision: rev}, nil
	default:
		// DecodeCommand admits only the kinds above.
		panic(fmt.Sprintf("shard: op kind %d passed DecodeCommand", op.Kind))
	}
}

// current is what Update needs of a key's stored record.
type current struct {
	create, mod, version int64
	valueLen             int64
}

// currentRecord reads key through the indexed batch b, so that it sees the
// writes of earlier ops of the same Update. found is false, with a zero
// current, when the key is absent.
func currentRecord(b *pebble.Batch, key []byte) (current, bool, error) {
	v, closer, err := b.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return current{}, false, nil
	}
	if err != nil {
		return current{}, false, err
	}
	rec, ok := decodeRecord(v)
	cur := current{create: rec.create, mod: rec.mod, version: rec.version, valueLen: int64(len(rec.value))}
	if err := closer.Close(); err != nil {
		return current{}, false, err
	}
	if !ok {
		return current{}, false, fmt.Errorf("%w: data record", ErrCorrupt)
	}
	return cur, true, nil
}

// Sync makes every batch Update and RecoverFromSnapshot committed durable,
// by syncing Pebble's write-ahead log (which all shards share).
func (m *StateMachine) Sync() error {
	if err := m.store.acquire(); err != nil {
		return err
	}
	defer m.store.release()
	if err := m.store.db.LogData(nil, pebble.Sync); err != nil {
		return fmt.Errorf("shard %d: sync: %w", m.id, err)
	}
	return nil
}

// snapshotState is what PrepareSnapshot hands to SaveSnapshot.
type snapshotState struct {
	snap *pebble.Snapshot
	m    meta
}

// PrepareSnapshot takes a Pebble snapshot of the shard as of the last
// applied entry and returns it for SaveSnapshot, which releases it. A
// prepared snapshot that SaveSnapshot never receives is released by Close.
func (m *StateMachine) PrepareSnapshot() (any, error) {
	if err := m.store.acquire(); err != nil {
		return nil, err
	}
	defer m.store.release()
	snap := m.store.db.NewSnapshot()
	m.snapMu.Lock()
	m.snaps[snap] = struct{}{}
	m.snapMu.Unlock()
	return &snapshotState{snap: snap, m: m.m}, nil
}

// releaseSnapshot closes snap unless it was already released. The caller
// holds a read hold on the database, or Store.mu.
func (m *StateMachine) releaseSnapshot(snap *pebble.Snapshot) {
	m.snapMu.Lock()
	_, ok := m.snaps[snap]
	delete(m.snaps, snap)
	m.snapMu.Unlock()
	if ok {
		if err := snap.Close(); err != nil {
			m.lg.Warn("release snapshot failed", "err", err)
		}
	}
}

// releaseSnapshots closes every snapshot not yet released. The caller holds
// a read hold on the database, or Store.mu.
func (m *StateMachine) releaseSnapshots() {
	m.snapMu.Lock()
	snaps := m.snaps
	m.snaps = make(map[*pebble.Snapshot]struct{})
	m.snapMu.Unlock()
	for snap := range snaps {
		if err := snap.Close(); err != nil {
			m.lg.Warn("release snapshot failed", "err", err)
		}
	}
}

// Close marks the state machine closed, so Lookup fails with ErrClosed, and
// releases prepared snapshots. It does not close the shared database and
// changes no data: safety never depends on Close being called. Close is
// idempotent.
func (m *StateMachine) Close() error {
	if m.closed.Swap(true) {
		return nil
	}
	s := m.store
	if err := s.acquire(); err == nil {
		m.releaseSnapshots()
		s.release()
	}
	s.openMu.Lock()
	if s.open[m.id] == m {
		delete(s.open, m.id)
	}
	s.openMu.Unlock()
	m.lg.Info("shard closed", "index", m.m.applied)
	return nil
}
