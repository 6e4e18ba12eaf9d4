package shard

import (
	"encoding/binary"
	"math"

	"github.com/cavedb/cave/ring"
)

// Pebble key layout. Every key starts with a namespace byte and the shard ID
// as 8 big-endian bytes, so one shard's keys of one namespace form one
// contiguous range and shards sort by ID:
//
//	nsMeta | shard ID            → meta record (applied index, counters)
//	nsData | shard ID | user key → data record (revisions, version, value)
//	nsHistory | shard ID [| revision | seq] → history (history.go)
const (
	nsMeta    byte = 0x01
	nsData    byte = 0x02
	nsHistory byte = 0x03

	shardPrefixLen = 1 + 8
)

// shardPrefix returns ns followed by id.
func shardPrefix(ns byte, id ring.ShardID) [shardPrefixLen]byte {
	var p [shardPrefixLen]byte
	p[0] = ns
	binary.BigEndian.PutUint64(p[1:], uint64(id))
	return p
}

// dataBounds returns the range [lower, upper) that holds shard id's data.
func dataBounds(id ring.ShardID) (lower, upper []byte) {
	l := shardPrefix(nsData, id)
	if id == math.MaxUint64 {
		return l[:], []byte{nsData + 1}
	}
	u := shardPrefix(nsData, id+1)
	return l[:], u[:]
}

// prefixSuccessor returns the smallest key greater than every key with
// prefix p, or nil when there is none (p is empty or all 0xff).
func prefixSuccessor(p []byte) []byte {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] != 0xff {
			s := make([]byte, i+1)
			copy(s, p[:i+1])
			s[i]++
			return s
		}
	}
	return nil
}

// Data record: format byte, then create_revision, mod_revision and version as
// uvarints, then the user value.
const recordFormatV1 byte = 1

// record is a decoded data record. value aliases the encoded bytes.
type record struct {
	create, mod, version int64
	value                []byte
}

// appendRecord appends the encoding of a data record to dst.
func appendRecord(dst []byte, create, mod, version int64, value []byte) []byte {
	dst = append(dst, recordFormatV1)
	dst = binary.AppendUvarint(dst, uint64(create))
	dst = binary.AppendUvarint(dst, uint64(mod))
	dst = binary.AppendUvarint(dst, uint64(version))
	return append(dst, value...)
}

// decodeRecord decodes a data record; false means it is corrupt.
func decodeRecord(b []byte) (record, bool) {
	if len(b) == 0 || b[0] != recordFormatV1 {
		return record{}, false
	}
	p := b[1:]
	var vals [3]int64
	for i := range vals {
		v, w := binary.Uvarint(p)
		if w <= 0 || v > math.MaxInt64 {
			return record{}, false
		}
		vals[i] = int64(v)
		p = p[w:]
	}
	return record{create: vals[0], mod: vals[1], version: vals[2], value: p}, true
}

// Meta record: format byte, then the applied index, the key count and the
// byte count as 8 big-endian bytes each.
const (
	metaFormatV1 byte = 1
	metaLen           = 1 + 3*8
)

// meta is a shard's applied index and counters, stored in its meta record.
type meta struct {
	applied uint64
	keys    int64
	bytes   int64
}

// encode returns the meta record.
func (m meta) encode() [metaLen]byte {
	var b [metaLen]byte
	b[0] = metaFormatV1
	binary.BigEndian.PutUint64(b[1:], m.applied)
	binary.BigEndian.PutUint64(b[9:], uint64(m.keys))
	binary.BigEndian.PutUint64(b[17:], uint64(m.bytes))
	return b
}

// decodeMeta decodes a meta record; false means it is corrupt.
func decodeMeta(b []byte) (meta, bool) {
	if len(b) != metaLen || b[0] != metaFormatV1 {
		return meta{}, false
	}
	return meta{
		applied: binary.BigEndian.Uint64(b[1:]),
		keys:    int64(binary.BigEndian.Uint64(b[9:])),
		bytes:   int64(binary.BigEndian.Uint64(b[17:])),
	}, true
}
