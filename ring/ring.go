// Package ring maps keys onto the fixed ring of slots and slots onto shards.
//
// The ring has a fixed number of slots (Slots). A key's slot is a pure
// function of its bytes and never changes; which shard owns a slot is recorded
// in a Table that is created at bootstrap, stored in the meta shard and never
// rewritten, so the shard that owns a key never changes. Moving load between
// nodes moves replicas and leaders of shards, never keys (see
// docs/architecture.md).
//
// ring is a leaf package: it imports nothing of cave, and every layer may
// import it for ShardID and the slot table.
package ring

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Slots is the number of slots on the ring.
const Slots = 4096

// MaxShards is the largest number of data shards a Table can hold.
const MaxShards = Slots

// Slot is a position on the ring, in [0, Slots).
type Slot uint32

// ShardID identifies a Raft shard, in every layer from the state machine to
// the API. It converts to dragonboat's bare uint64 only at the NodeHost call.
// Shard 0 is the meta shard and never owns a slot; data shards are numbered
// from 1.
type ShardID uint64

// MetaShard is the shard that holds cluster metadata.
const MetaShard ShardID = 0

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// SlotOf returns the slot that key hashes to. It is stable across versions:
// changing it would move every key.
func SlotOf(key string) Slot {
	return Slot(crc32.Checksum([]byte(key), castagnoli) % Slots)
}

// Table assigns every slot to a data shard. A Table is immutable after
// creation and safe for concurrent use.
type Table struct {
	owner  [Slots]ShardID
	shards []ShardID
}

// ErrBadTable is returned by Decode and FromRanges when the table they are
// given is malformed.
var ErrBadTable = errors.New("ring: malformed slot table")

// NewTable returns a table that splits the ring into n contiguous ranges of
// (nearly) equal size owned by shards 1..n. It fails when n is outside
// [1, MaxShards].
func NewTable(n int) (*Table, error) {
	if n < 1 || n > MaxShards {
		return nil, fmt.Errorf("ring: shard count must be in [1, %d], got %d", MaxShards, n)
	}
	t := &Table{}
	for s := 0; s < Slots; s++ {
		t.owner[s] = ShardID(1 + s*n/Slots)
	}
	t.index()
	return t, nil
}

func (t *Table) index() {
	seen := map[ShardID]bool{}
	t.shards = t.shards[:0]
	for _, id := range t.owner {
		if !seen[id] {
			seen[id] = true
			t.shards = append(t.shards, id)
		}
	}
}

// Owner returns the shard that owns slot s. s must be < Slots.
func (t *Table) Owner(s Slot) ShardID { return t.owner[s] }

// Route returns the slot of key and the shard that owns it.
func (t *Table) Route(key string) (Slot, ShardID) {
	s := SlotOf(key)
	return s, t.owner[s]
}

// Shards returns the data shards that own at least one slot, in ascending
// order of their first slot. The caller must not modify the returned slice.
func (t *Table) Shards() []ShardID { return t.shards }

// Encode returns the table's stable binary form: Slots big-endian uint32
// shard ids, one per slot.
func (t *Table) Encode() []byte {
	b := make([]byte, 4*Slots)
	for s, id := range t.owner {
		binary.BigEndian.PutUint32(b[4*s:], uint32(id))
	}
	return b
}

// Decode parses the output of Encode. It returns ErrBadTable when b has the
// wrong length or assigns a slot to the meta shard.
func Decode(b []byte) (*Table, error) {
	if len(b) != 4*Slots {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrBadTable, len(b), 4*Slots)
	}
	t := &Table{}
	for s := range t.owner {
		id := ShardID(binary.BigEndian.Uint32(b[4*s:]))
		if id == MetaShard {
			return nil, fmt.Errorf("%w: slot %d assigned to the meta shard", ErrBadTable, s)
		}
		t.owner[s] = id
	}
	t.index()
	return t, nil
}

// Range is a contiguous run of slots, [Start, End), owned by one shard.
type Range struct {
	Start, End Slot
	Shard      ShardID
}

// Ranges returns the table as its maximal runs of slots with one owner,
// sorted by Start: together they cover [0, Slots) exactly once. The slice
// is new and belongs to the caller.
func (t *Table) Ranges() []Range {
	var out []Range
	start := 0
	for s := 1; s <= Slots; s++ {
		if s == Slots || t.owner[s] != t.owner[start] {
			out = append(out, Range{Start: Slot(start), End: Slot(s), Shard: t.owner[start]})
			start = s
		}
	}
	return out
}

// FromRanges returns the table that the ranges describe, in any order; it
// is the inverse of Ranges. It returns ErrBadTable when a range is empty,
// ends past Slots or is owned by the meta shard, or when the ranges
// overlap or leave a slot without an owner.
func FromRanges(rs []Range) (*Table, error) {
	t := &Table{}
	var owned [Slots]bool
	for _, r := range rs {
		switch {
		case r.Start >= r.End || r.End > Slots:
			return nil, fmt.Errorf("%w: range [%d, %d) is empty or ends past %d", ErrBadTable, r.Start, r.End, Slots)
		case r.Shard == MetaShard:
			return nil, fmt.Errorf("%w: range [%d, %d) assigned to the meta shard", ErrBadTable, r.Start, r.End)
		}
		for s := r.Start; s < r.End; s++ {
			if owned[s] {
				return nil, fmt.Errorf("%w: slot %d is in two ranges", ErrBadTable, s)
			}
			owned[s] = true
			t.owner[s] = r.Shard
		}
	}
	for s, ok := range owned {
		if !ok {
			return nil, fmt.Errorf("%w: slot %d is in no range", ErrBadTable, s)
		}
	}
	t.index()
	return t, nil
}
