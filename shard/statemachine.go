package shard

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	sm "github.com/lni/dragonboat/v4/statemachine"

	"github.com/cavedb/cave/ring"
)

// StateMachine holds one shard's keys in the Store's Pebble database, under
// the shard's prefix. It is the dragonboat IOnDiskStateMachine of one
// replica; build it with Store.StateMachineFactory or Store.NewStateMachine.
//
// Update, Sync, PrepareSnapshot, RecoverFromSnapshot and Close never overlap:
// dragonboat calls them from one goroutine at a time. Lookup may run during
// any of them (after Close it fails with ErrClosed) and sees whole batches
// only; SaveSnapshot
// may run during Update and reads the Pebble snapshot taken by
// PrepareSnapshot. Update writes the entries' effects and the applied index
// in one batch. It returns an error only when the disk fails: a failed
// prev_revision or a malformed command is a ResultCode, because an Update
// error stops the process.
type StateMachine struct {
	store   *Store
	id      ring.ShardID
	replica ReplicaID
	lg      *slog.Logger
	metaKey []byte
	histKey []byte // the history meta record's key
	// lower and upper bound the shard's data range; lower is also the prefix
	// of every data key.
	lower, upper []byte

	// Owned by the goroutine that calls Update, Sync, PrepareSnapshot,
	// RecoverFromSnapshot and Close (they never overlap).
	m       meta     // applied index and counters as of the last commit
	hist    histMeta // history bounds as of the last commit
	histSeq uint32   // the next event's sequence within its entry
	ops     []Op
	results []OpResult // all results of an Update
	spans   []span     // each entry's part of results
	keyBuf  []byte
	valBuf  []byte
	evBuf   []byte
	// pending maps, during Update, every key written by the batch being
	// built to its state in pendingKeys: Pebble cannot see the batch until
	// it commits.
	pending     map[string]int
	pendingKeys []pendingKey

	// gen is even while the data is whole and odd while RecoverFromSnapshot
	// rewrites it; Lookup fails with ErrRecovering if it sees it odd or sees
	// it change.
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
// Open returns sm.ErrOpenStopped if stopc is already closed; any other error
// means the disk failed.
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
	prev := s.open[m.id]
	s.open[m.id] = m
	s.openMu.Unlock()
	if prev != nil {
		// Dragonboat runs one replica of a shard per NodeHost, but closes a
		// stopped one on a background worker: the previous state machine is
		// done with Update and only its Close is pending.
		m.lg.Warn("shard opened before its previous state machine closed", "previous_replica_id", uint64(prev.replica))
	}

	mt, found, err := s.readMeta(m.metaKey)
	if err == nil && !found {
		err = m.clearStrays()
	}
	if err == nil {
		err = m.openHistory(mt.applied)
	}
	if err != nil {
		s.openMu.Lock()
		if s.open[m.id] == m {
			delete(s.open, m.id)
		}
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
// DecodeResults). The effects of all of them, their change events (the
// history, history.go) and the new applied index are committed in one
// Pebble batch, after which Store.Changed's channel for the shard is
// closed, without waiting for fsync: after a crash
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
	b := m.store.db.NewBatch()
	defer b.Close()
	defer m.clearPending()
	c := m.m
	rs, spans := m.results[:0], m.spans[:0]
	defer func() {
		clear(m.ops[:cap(m.ops)]) // drop references to the commands
		if cap(m.ops) > 4096 {
			m.ops = nil
		}
	}()
	for i := range entries {
		e := &entries[i]
		if e.Index <= c.applied {
			return nil, fmt.Errorf("shard %d: apply index %d: not above applied index %d", m.id, e.Index, c.applied)
		}
		c.applied = e.Index
		m.histSeq = 0
		ops, err := DecodeCommand(m.ops[:0], e.Cmd)
		m.ops = ops[:0]
		if err != nil {
			m.lg.Warn("bad command", "index", e.Index, "err", err)
			spans = append(spans, span{start: -1})
			continue
		}
		start := len(rs)
		for j := range ops {
			r, err := m.apply(b, &ops[j], int64(e.Index), &c)
			if err != nil {
				return nil, fmt.Errorf("shard %d: apply index %d: %w", m.id, e.Index, err)
			}
			rs = append(rs, r)
		}
		spans = append(spans, span{start: start, end: len(rs)})
	}
	enc := c.encode()
	if err := b.Set(m.metaKey, enc[:], nil); err != nil {
		return nil, fmt.Errorf("shard %d: apply index %d: %w", m.id, c.applied, err)
	}
	h, err := m.commitHistory(b, c.applied)
	if err != nil {
		return nil, fmt.Errorf("shard %d: apply index %d: %w", m.id, c.applied, err)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return nil, fmt.Errorf("shard %d: commit index %d: %w", m.id, c.applied, err)
	}
	m.m, m.hist = c, h
	m.store.notify(m.id)
	m.valBuf, m.evBuf = trimBuf(m.valBuf), trimBuf(m.evBuf)
	setResults(entries, rs, spans)
	m.results, m.spans = rs[:0], spans[:0]
	if cap(m.results) > 4096 {
		m.results, m.spans = nil, nil
	}
	return entries, nil
}

// span locates one entry's results in a slice of all of an Update's
// results; start is -1 for a malformed entry.
type span struct{ start, end int }

// setResults sets each entry's Result from its span of rs. The Data of all
// the entries that need one share a single allocation.
func setResults(entries []sm.Entry, rs []OpResult, spans []span) {
	size := 0
	for _, sp := range spans {
		if n := sp.end - sp.start; n > 1 {
			size += 1 + n*(1+binary.MaxVarintLen64)
		}
	}
	var buf []byte
	if size > 0 {
		buf = make([]byte, 0, size)
	}
	for i, sp := range spans {
		if sp.start < 0 {
			entries[i].Result, _ = encodeSingle(OpResult{Code: ResultBadCommand})
			continue
		}
		entries[i].Result, buf = appendResult(buf, rs[sp.start:sp.end])
	}
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
	var p pendingKey
	slot, inBatch := m.pending[string(op.Key)]
	if inBatch {
		p = m.pendingKeys[slot]
	} else {
		var err error
		if p.cur, p.found, err = m.currentRecord(key); err != nil {
			return OpResult{}, err
		}
		slot = -1
	}
	cur := p.cur
	if op.HasPrevRevision && cur.mod != op.PrevRevision {
		return OpResult{Code: ResultConditionFailed, Revision: cur.mod}, nil
	}
	switch op.Kind {
	case OpPut:
		next := current{create: rev, mod: rev, version: 1, valueLen: int64(len(op.Value))}
		if p.found {
			next.create, next.version = cur.create, cur.version+1
			c.bytes += int64(len(op.Value)) - cur.valueLen
		} else {
			c.keys++
			c.bytes += int64(len(op.Key) + len(op.Value))
		}
		m.valBuf = appendRecord(m.valBuf[:0], next.create, rev, next.version, op.Value)
		if err := b.Set(key, m.valBuf, nil); err != nil {
			return OpResult{}, err
		}
		if err := m.recordEvent(b, rev, OpPut, op.Key, next.create, cur.mod, op.Value); err != nil {
			return OpResult{}, err
		}
		m.setPending(op.Key, slot, pendingKey{cur: next, found: true})
		return OpResult{Code: ResultOK, Revision: rev}, nil
	case OpDelete:
		if !p.found {
			return OpResult{Code: ResultNotFound}, nil
		}
		if err := b.Delete(key, nil); err != nil {
			return OpResult{}, err
		}
		if err := m.recordEvent(b, rev, OpDelete, op.Key, cur.create, cur.mod, nil); err != nil {
			return OpResult{}, err
		}
		c.keys--
		c.bytes -= int64(len(op.Key)) + cur.valueLen
		m.setPending(op.Key, slot, pendingKey{})
		return OpResult{Code: ResultOK, Revision: rev}, nil
	default:
		// DecodeCommand admits only the kinds above.
		panic(fmt.Sprintf("shard: op kind %d passed DecodeCommand", op.Kind))
	}
}

// setPending records the state key has in the batch being built; slot is
// its index in pendingKeys, or -1 when it is not yet pending.
func (m *StateMachine) setPending(key []byte, slot int, p pendingKey) {
	if slot >= 0 {
		m.pendingKeys[slot] = p
		return
	}
	if m.pending == nil {
		m.pending = make(map[string]int)
	}
	m.pending[string(key)] = len(m.pendingKeys)
	m.pendingKeys = append(m.pendingKeys, p)
}

// clearPending empties pending and pendingKeys, keeping their memory unless
// a large Update grew them.
func (m *StateMachine) clearPending() {
	if len(m.pendingKeys) > 4096 {
		m.pending, m.pendingKeys = nil, nil
		return
	}
	clear(m.pending)
	m.pendingKeys = m.pendingKeys[:0]
}

// current is what Update needs of a key's stored record.
type current struct {
	create, mod, version int64
	valueLen             int64
}

// pendingKey is a key's state in the batch being built; found is false once
// it is deleted.
type pendingKey struct {
	cur   current
	found bool
}

// currentRecord reads the committed record of key. found is false, with a
// zero current, when the key is absent.
func (m *StateMachine) currentRecord(key []byte) (_ current, found bool, _ error) {
	v, closer, err := m.store.db.Get(key)
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
