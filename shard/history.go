package shard

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cavedb/cave/ring"
)

// History: every put and delete that takes effect is also written, in the
// same Pebble batch as the write itself, as an event record under the
// shard's history namespace:
//
//	nsHistory | shard ID                          → history meta (floor, last)
//	nsHistory | shard ID | revision | op sequence → event record
//
// revision is the entry's Raft index and op sequence the op's position
// among the entry's effective ops, both big-endian, so a shard's events sort
// in commit order. The history keeps the events of the last
// Config.HistoryRevisions revisions: once the applied index runs an eighth
// of that past the floor, Update deletes the older events in one range
// deletion and raises the floor. Both depend on the Raft index alone, so
// every replica that applies the same log keeps the same history.
//
// Snapshots do not carry history: RecoverFromSnapshot deletes the shard's
// events and sets the floor to the snapshot's index, so a replica that
// loaded a snapshot answers ErrCompacted for anything before it.

// histMetaLen is the length of the history meta record: format byte, floor
// and last as 8 big-endian bytes each.
const (
	histMetaFormatV1 byte = 1
	histMetaLen           = 1 + 2*8
	histEventKeyLen       = shardPrefixLen + 8 + 4
	eventFormatV1    byte = 1
)

// histMeta is a shard's history bounds. Every event with a revision in
// (floor, last] is retained; last is the applied index of the commit that
// wrote the record.
type histMeta struct {
	floor, last uint64
}

func (h histMeta) encode() [histMetaLen]byte {
	var b [histMetaLen]byte
	b[0] = histMetaFormatV1
	binary.BigEndian.PutUint64(b[1:], h.floor)
	binary.BigEndian.PutUint64(b[9:], h.last)
	return b
}

func decodeHistMeta(b []byte) (histMeta, bool) {
	if len(b) != histMetaLen || b[0] != histMetaFormatV1 {
		return histMeta{}, false
	}
	return histMeta{floor: binary.BigEndian.Uint64(b[1:]), last: binary.BigEndian.Uint64(b[9:])}, true
}

// histBounds returns the range [lower, upper) holding shard id's history
// meta record and events; lower is the meta record's key.
func histBounds(id ring.ShardID) (lower, upper []byte) {
	l := shardPrefix(nsHistory, id)
	if id == math.MaxUint64 {
		return l[:], []byte{nsHistory + 1}
	}
	u := shardPrefix(nsHistory, id+1)
	return l[:], u[:]
}

// histEventKey returns the key of the event with sequence seq at rev.
func histEventKey(id ring.ShardID, rev uint64, seq uint32) []byte {
	k := make([]byte, histEventKeyLen)
	p := shardPrefix(nsHistory, id)
	copy(k, p[:])
	binary.BigEndian.PutUint64(k[shardPrefixLen:], rev)
	binary.BigEndian.PutUint32(k[shardPrefixLen+8:], seq)
	return k
}

// Event is one change of a key, as a HistoryQuery returns it. Its slices
// are the caller's.
type Event struct {
	// Revision is the Raft index of the entry that made the change: the
	// key's new mod_revision for a put, the deletion's revision for a delete.
	Revision int64
	// Kind is OpPut or OpDelete.
	Kind OpKind
	// Key is the user key.
	Key []byte
	// Value is the value written by a put; nil for a delete and with
	// HistoryQuery.KeysOnly.
	Value []byte
	// CreateRevision is the key's create_revision: the put's own revision
	// when it created the key, and for a delete that of the deleted key.
	CreateRevision int64
	// PrevRevision is the key's mod_revision before the change; 0 when a
	// put created the key.
	PrevRevision int64
}

// HistoryQuery asks Lookup for the shard's events after a revision.
// Lookup returns a *HistoryResult, or an error wrapping ErrCompacted when
// events after After are no longer retained.
type HistoryQuery struct {
	// After is the last revision already seen: events with a greater
	// revision are returned. Negative asks for no events, only the current
	// position (HistoryResult.Next): a watch "from now".
	After int64
	// Prefix selects the events of keys that start with it; empty selects
	// all.
	Prefix []byte
	// Limit is the most events to return; the revision of the last one is
	// completed beyond it, so a result never splits an entry. 0 or less
	// means DefaultHistoryLimit.
	Limit int
	// KeysOnly leaves Event.Value nil.
	KeysOnly bool
}

// DefaultHistoryLimit is the HistoryQuery.Limit used for 0. It also bounds
// the events a query examines: a query whose prefix matches few events
// stops after examining 8 times its limit and reports how far it got.
const DefaultHistoryLimit = 1000

// HistoryResult is a page of events.
type HistoryResult struct {
	// Events are the matching events in revision order (and op order within
	// an entry); empty, not nil, when there are none.
	Events []Event
	// Next is the revision up to which the shard's history was examined:
	// pass it as the next query's After. It is at least the query's After
	// (when After >= 0) and, when the whole history was examined, the
	// replica's applied index.
	Next int64
	// Floor is the revision below which events are no longer retained: a
	// query with After < Floor fails with ErrCompacted.
	Floor int64
}

// appendEvent appends the encoding of an event record to dst: format byte,
// kind, create and prev revisions and the key length as uvarints, the key,
// then the value.
func appendEvent(dst []byte, kind OpKind, key []byte, create, prev int64, value []byte) []byte {
	dst = append(dst, eventFormatV1, byte(kind))
	dst = binary.AppendUvarint(dst, uint64(create))
	dst = binary.AppendUvarint(dst, uint64(prev))
	dst = binary.AppendUvarint(dst, uint64(len(key)))
	dst = append(dst, key...)
	return append(dst, value...)
}

// decodeEvent decodes an event record; key and value alias b. false means
// it is corrupt.
func decodeEvent(b []byte) (kind OpKind, key []byte, create, prev int64, value []byte, ok bool) {
	if len(b) < 2 || b[0] != eventFormatV1 {
		return 0, nil, 0, 0, nil, false
	}
	kind = OpKind(b[1])
	if kind != OpPut && kind != OpDelete {
		return 0, nil, 0, 0, nil, false
	}
	p := b[2:]
	var vals [3]uint64
	for i := range vals {
		v, w := binary.Uvarint(p)
		if w <= 0 {
			return 0, nil, 0, 0, nil, false
		}
		vals[i] = v
		p = p[w:]
	}
	if vals[0] > math.MaxInt64 || vals[1] > math.MaxInt64 || vals[2] > uint64(len(p)) {
		return 0, nil, 0, 0, nil, false
	}
	return kind, p[:vals[2]], int64(vals[0]), int64(vals[1]), p[vals[2]:], true
}

// recordEvent adds the event of an effective op at rev to b.
func (m *StateMachine) recordEvent(b *pebble.Batch, rev int64, kind OpKind, key []byte, create, prev int64, value []byte) error {
	k := histEventKey(m.id, uint64(rev), m.histSeq)
	m.histSeq++
	m.evBuf = appendEvent(m.evBuf[:0], kind, key, create, prev, value)
	return b.Set(k, m.evBuf, nil)
}

// commitHistory adds to b the history meta record as of applied index c,
// first trimming the history when it has grown an eighth past its bound.
// It returns the new bounds.
func (m *StateMachine) commitHistory(b *pebble.Batch, applied uint64) (histMeta, error) {
	h := histMeta{floor: m.hist.floor, last: applied}
	keep := m.store.historyRevisions
	if applied > h.floor && applied-h.floor > keep+max(keep/8, 1) {
		h.floor = applied - keep
		if err := b.DeleteRange(histEventKey(m.id, 0, 0), histEventKey(m.id, h.floor+1, 0), nil); err != nil {
			return histMeta{}, err
		}
	}
	enc := h.encode()
	if err := b.Set(m.histKey, enc[:], nil); err != nil {
		return histMeta{}, err
	}
	return h, nil
}

// openHistory loads the history bounds; a shard without a history record
// (new, or written before history existed) starts its history at applied.
func (m *StateMachine) openHistory(applied uint64) error {
	v, closer, err := m.store.db.Get(m.histKey)
	if errors.Is(err, pebble.ErrNotFound) {
		m.hist = histMeta{floor: applied, last: applied}
		enc := m.hist.encode()
		return m.store.db.Set(m.histKey, enc[:], pebble.NoSync)
	}
	if err != nil {
		return err
	}
	h, ok := decodeHistMeta(v)
	if err := closer.Close(); err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: history meta record", ErrCorrupt)
	}
	m.hist = h
	return nil
}

// history answers a HistoryQuery from one consistent view: a single
// iterator over the shard's history range reads the bounds and the events.
func (m *StateMachine) history(q *HistoryQuery) (*HistoryResult, error) {
	lower, upper := histBounds(m.id)
	it, err := m.store.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, err
	}
	res, err := m.readHistory(it, q)
	if err := errors.Join(err, it.Close()); err != nil {
		return nil, err
	}
	return res, nil
}

func (m *StateMachine) readHistory(it *pebble.Iterator, q *HistoryQuery) (*HistoryResult, error) {
	var h histMeta
	if it.SeekGE(m.histKey) && len(it.Key()) == shardPrefixLen {
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, err
		}
		var ok bool
		if h, ok = decodeHistMeta(v); !ok {
			return nil, fmt.Errorf("%w: history meta record", ErrCorrupt)
		}
	}
	res := &HistoryResult{Events: []Event{}, Next: int64(h.last), Floor: int64(h.floor)}
	if q.After < 0 {
		return res, it.Error()
	}
	if q.After < res.Floor {
		return nil, fmt.Errorf("%w: events after revision %d were compacted, the history starts after %d", ErrCompacted, q.After, res.Floor)
	}
	if q.After >= res.Next {
		res.Next = q.After
		return res, it.Error()
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultHistoryLimit
	}
	scanLimit := 8 * limit
	var a arena
	done := int64(q.After) // every revision <= done has been examined whole
	scanned := 0
	for valid := it.SeekGE(histEventKey(m.id, uint64(q.After)+1, 0)); valid; valid = it.Next() {
		k := it.Key()
		if len(k) != histEventKeyLen {
			return nil, fmt.Errorf("%w: history key of %d bytes", ErrCorrupt, len(k))
		}
		rev := int64(binary.BigEndian.Uint64(k[shardPrefixLen:]))
		if rev != done && (len(res.Events) >= limit || scanned >= scanLimit) {
			res.Next = done
			return res, it.Error()
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, err
		}
		kind, key, create, prev, value, ok := decodeEvent(v)
		if !ok {
			return nil, fmt.Errorf("%w: event record at revision %d", ErrCorrupt, rev)
		}
		scanned++
		done = rev
		if !hasPrefix(key, q.Prefix) {
			continue
		}
		ev := Event{Revision: rev, Kind: kind, Key: a.copy(key), CreateRevision: create, PrevRevision: prev}
		if kind == OpPut && !q.KeysOnly {
			ev.Value = a.copy(value)
		}
		res.Events = append(res.Events, ev)
	}
	return res, it.Error()
}

func hasPrefix(key, prefix []byte) bool {
	return len(key) >= len(prefix) && string(key[:len(prefix)]) == string(prefix)
}

// Changed returns a channel that is closed after the next commit of shard
// id on this Store: an Update or a snapshot load. A watcher takes it, reads
// the history, and waits on it when the read found nothing new, so no
// commit between the two goes unnoticed. It is safe for concurrent use.
func (s *Store) Changed(id ring.ShardID) <-chan struct{} {
	s.changedMu.Lock()
	defer s.changedMu.Unlock()
	ch, ok := s.changed[id]
	if !ok {
		ch = make(chan struct{})
		s.changed[id] = ch
	}
	return ch
}

// notify wakes the watchers of shard id; see Changed.
func (s *Store) notify(id ring.ShardID) {
	s.changedMu.Lock()
	ch, ok := s.changed[id]
	if ok {
		delete(s.changed, id)
	}
	s.changedMu.Unlock()
	if ok {
		close(ch)
	}
}
