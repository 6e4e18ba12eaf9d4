package shard

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// KeyValue is one key as Lookup returns it. Its slices are the caller's.
type KeyValue struct {
	// Key is the user key.
	Key []byte
	// Value is the value; nil in a ListQuery result with KeysOnly.
	Value []byte
	// CreateRevision is the revision (Raft index) that created the key.
	CreateRevision int64
	// ModRevision is the revision of the key's last write.
	ModRevision int64
	// Version counts the writes since creation: 1 after the create.
	Version int64
	// Size is the length of the value in bytes, set even with KeysOnly.
	Size int64
}

// GetQuery asks Lookup for one key. Lookup returns a *KeyValue, nil when the
// key is absent.
type GetQuery struct {
	// Key is the user key.
	Key []byte
}

// ListQuery asks Lookup for the keys with a prefix, in byte order. Lookup
// returns a *ListResult.
type ListQuery struct {
	// Prefix selects the keys that start with it; empty selects all.
	Prefix []byte
	// StartAfter, if not empty, starts the list at the first key greater
	// than it: pass the last key of the previous page.
	StartAfter []byte
	// Limit is the most items to return; 0 or less means no limit.
	Limit int
	// KeysOnly leaves KeyValue.Value nil (Size is still set).
	KeysOnly bool
}

// ListResult is a page of keys.
type ListResult struct {
	// Items are the keys in byte order; empty, not nil, when there are none.
	Items []KeyValue
	// More is true when keys with the prefix follow the last item.
	More bool
}

// StatsQuery asks Lookup for the shard's Stats. Lookup returns a Stats value.
type StatsQuery struct{}

// Lookup answers a GetQuery, ListQuery, HistoryQuery or StatsQuery, passed by value or by
// pointer, from the data committed by Update; see each query for its result.
// It is a read and may run concurrently with every other method; it sees
// whole Update batches only. It returns ErrUnknownQuery for any other query,
// ErrClosed after Close, and ErrRecovering while RecoverFromSnapshot runs.
func (m *StateMachine) Lookup(query any) (any, error) {
	if m.closed.Load() {
		return nil, ErrClosed
	}
	gen := m.gen.Load()
	if gen%2 == 1 {
		return nil, ErrRecovering
	}
	if err := m.store.acquire(); err != nil {
		return nil, err
	}
	defer m.store.release()
	var res any
	var err error
	switch q := query.(type) {
	case GetQuery:
		res, err = m.get(q.Key)
	case *GetQuery:
		res, err = m.get(q.Key)
	case ListQuery:
		res, err = m.list(&q)
	case *ListQuery:
		res, err = m.list(q)
	case HistoryQuery:
		res, err = m.history(&q)
	case *HistoryQuery:
		res, err = m.history(q)
	case StatsQuery, *StatsQuery:
		res, err = m.stats()
	default:
		return nil, fmt.Errorf("%w: %T", ErrUnknownQuery, query)
	}
	if err != nil {
		return nil, fmt.Errorf("shard %d: lookup: %w", m.id, err)
	}
	if m.gen.Load() != gen {
		return nil, ErrRecovering
	}
	return res, nil
}

// get reads one key; it returns (*KeyValue)(nil) when the key is absent.
func (m *StateMachine) get(key []byte) (*KeyValue, error) {
	kb := m.store.getKeyBuf()
	defer m.store.putKeyBuf(kb)
	*kb = append(append((*kb)[:0], m.lower...), key...)
	v, closer, err := m.store.db.Get(*kb)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	rec, ok := decodeRecord(v)
	if !ok {
		return nil, fmt.Errorf("%w: data record", ErrCorrupt)
	}
	buf := make([]byte, len(key)+len(rec.value))
	n := copy(buf, key)
	copy(buf[n:], rec.value)
	return &KeyValue{
		Key:            buf[:n:n],
		Value:          buf[n:],
		CreateRevision: rec.create,
		ModRevision:    rec.mod,
		Version:        rec.version,
		Size:           int64(len(rec.value)),
	}, nil
}

// list reads a page of keys.
func (m *StateMachine) list(q *ListQuery) (*ListResult, error) {
	lower := make([]byte, 0, len(m.lower)+len(q.Prefix))
	lower = append(append(lower, m.lower...), q.Prefix...)
	// m.lower starts with nsData, which is not 0xff, so a successor exists.
	upper := prefixSuccessor(lower)
	it, err := m.store.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, err
	}
	var valid bool
	if len(q.StartAfter) > 0 && bytes.Compare(q.StartAfter, q.Prefix) >= 0 {
		// The first key after StartAfter is StartAfter followed by 0x00.
		seek := make([]byte, 0, len(m.lower)+len(q.StartAfter)+1)
		seek = append(append(append(seek, m.lower...), q.StartAfter...), 0)
		valid = it.SeekGE(seek)
	} else {
		valid = it.First()
	}
	res := &ListResult{Items: make([]KeyValue, 0, 16)}
	if q.Limit > 0 {
		res.Items = make([]KeyValue, 0, min(q.Limit, 128))
	}
	var a arena
	for ; valid; valid = it.Next() {
		if q.Limit > 0 && len(res.Items) == q.Limit {
			res.More = true
			break
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, errors.Join(err, it.Close())
		}
		rec, ok := decodeRecord(v)
		if !ok {
			return nil, errors.Join(fmt.Errorf("%w: data record", ErrCorrupt), it.Close())
		}
		kv := KeyValue{
			Key:            a.copy(it.Key()[len(m.lower):]),
			CreateRevision: rec.create,
			ModRevision:    rec.mod,
			Version:        rec.version,
			Size:           int64(len(rec.value)),
		}
		if !q.KeysOnly {
			kv.Value = a.copy(rec.value)
		}
		res.Items = append(res.Items, kv)
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, err
	}
	return res, nil
}

// stats reads the shard's meta record.
func (m *StateMachine) stats() (Stats, error) {
	mt, _, err := m.store.readMeta(m.metaKey)
	if err != nil {
		return Stats{}, err
	}
	return Stats{Keys: mt.keys, Bytes: mt.bytes, AppliedIndex: mt.applied}, nil
}

// arena copies many small slices into few allocations.
type arena struct{ buf []byte }

const (
	arenaChunkBytes = 32 << 10
	arenaMaxBytes   = 4 << 10 // larger slices get their own allocation
)

// copy returns a copy of b, with its capacity capped at its length.
func (a *arena) copy(b []byte) []byte {
	if len(b) > arenaMaxBytes {
		return bytes.Clone(b)
	}
	if len(b) > cap(a.buf)-len(a.buf) {
		a.buf = make([]byte, 0, arenaChunkBytes)
	}
	n := len(a.buf)
	a.buf = append(a.buf, b...)
	return a.buf[n:len(a.buf):len(a.buf)]
}
