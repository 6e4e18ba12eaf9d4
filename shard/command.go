package shard

import (
	"encoding/binary"
	"fmt"

	sm "github.com/lni/dragonboat/v4/statemachine"
)

// MaxKeyBytes is the largest user key, in bytes, that a command may carry.
// DecodeCommand rejects longer keys, so Update stores none. Callers enforce
// their own, smaller limit (1024 bytes, docs/architecture.md, "Data model") before proposing.
const MaxKeyBytes = 64 << 10

// commandFormatV1 is the leading byte of every command EncodeCommand writes.
const commandFormatV1 byte = 1

// Op flag bits, in the byte that starts each op of a command.
const (
	opKindMask      byte = 0x03
	opFlagPrevRev   byte = 0x80
	opFlagsReserved      = ^(opKindMask | opFlagPrevRev)
)

// OpKind says what an Op does.
type OpKind uint8

const (
	// OpPut sets Key to Value.
	OpPut OpKind = 1
	// OpDelete removes Key.
	OpDelete OpKind = 2
)

// String returns "put", "delete", or "OpKind(n)" for an invalid kind.
func (k OpKind) String() string {
	switch k {
	case OpPut:
		return "put"
	case OpDelete:
		return "delete"
	default:
		return fmt.Sprintf("OpKind(%d)", uint8(k))
	}
}

// Op is one write of a command. The ops of one command are independent: each
// has its own condition and its own OpResult, and one op failing its
// condition does not stop the others. Ops apply in order, so a later op on
// the same key sees the earlier one's effect.
type Op struct {
	// Kind is OpPut or OpDelete.
	Kind OpKind
	// Key is the user key: 1..MaxKeyBytes bytes.
	Key []byte
	// Value is the value to store; OpDelete ignores it.
	Value []byte
	// PrevRevision is the mod_revision the key must have for the op to apply;
	// 0 means the key must not exist. It counts only if HasPrevRevision.
	PrevRevision int64
	// HasPrevRevision makes the op conditional on PrevRevision.
	HasPrevRevision bool
}

// EncodeCommand appends to dst the encoding of ops as one Raft entry and
// returns the extended slice. It does not validate ops: an op with an invalid
// Kind, or an empty or oversize Key, makes Update report the entry as
// ResultBadCommand. Encoding does not allocate when dst has room.
//
// The format is a format byte (1), the op count as a uvarint, then per op: a
// flags byte (kind in the low two bits, 0x80 when conditional), the key length
// as a uvarint and the key, for a put the value length as a uvarint and the
// value, and for a conditional op PrevRevision as a zig-zag varint.
func EncodeCommand(dst []byte, ops []Op) []byte {
	dst = append(dst, commandFormatV1)
	dst = binary.AppendUvarint(dst, uint64(len(ops)))
	for i := range ops {
		op := &ops[i]
		flags := byte(op.Kind) & opKindMask
		if byte(op.Kind) > opKindMask {
			flags = 0 // an invalid kind stays invalid
		}
		if op.HasPrevRevision {
			flags |= opFlagPrevRev
		}
		dst = append(dst, flags)
		dst = binary.AppendUvarint(dst, uint64(len(op.Key)))
		dst = append(dst, op.Key...)
		if op.Kind == OpPut {
			dst = binary.AppendUvarint(dst, uint64(len(op.Value)))
			dst = append(dst, op.Value...)
		}
		if op.HasPrevRevision {
			dst = binary.AppendVarint(dst, op.PrevRevision)
		}
	}
	return dst
}

// DecodeCommand appends the ops encoded in cmd to dst and returns the
// extended slice. Each op's Key and Value alias cmd, so they are valid only
// while cmd is. On error it returns dst unextended and an error that wraps
// ErrBadCommand; it never panics, whatever cmd holds. Decoding does not
// allocate when dst has room.
func DecodeCommand(dst []Op, cmd []byte) ([]Op, error) {
	if len(cmd) == 0 {
		return dst, fmt.Errorf("%w: empty", ErrBadCommand)
	}
	if cmd[0] != commandFormatV1 {
		return dst, fmt.Errorf("%w: unknown format %d", ErrBadCommand, cmd[0])
	}
	p := cmd[1:]
	n, w := binary.Uvarint(p)
	if w <= 0 {
		return dst, fmt.Errorf("%w: bad op count", ErrBadCommand)
	}
	p = p[w:]
	// Every op takes at least three bytes (flags, key length, one key byte).
	if n > uint64(len(p)/3) {
		return dst, fmt.Errorf("%w: %d ops in %d bytes", ErrBadCommand, n, len(p))
	}
	start := len(dst)
	for i := uint64(0); i < n; i++ {
		var op Op
		flags := p[0] // len(p) >= 3*(n-i) > 0 held before this op
		p = p[1:]
		if flags&opFlagsReserved != 0 {
			return dst[:start], fmt.Errorf("%w: op %d: reserved flags %#x", ErrBadCommand, i, flags)
		}
		op.Kind = OpKind(flags & opKindMask)
		if op.Kind != OpPut && op.Kind != OpDelete {
			return dst[:start], fmt.Errorf("%w: op %d: unknown kind %d", ErrBadCommand, i, op.Kind)
		}
		var ok bool
		if op.Key, p, ok = readBytes(p, MaxKeyBytes); !ok || len(op.Key) == 0 {
			return dst[:start], fmt.Errorf("%w: op %d: bad key", ErrBadCommand, i)
		}
		if op.Kind == OpPut {
			if op.Value, p, ok = readBytes(p, len(p)); !ok {
				return dst[:start], fmt.Errorf("%w: op %d: bad value", ErrBadCommand, i)
			}
		}
		if flags&opFlagPrevRev != 0 {
			v, w := binary.Varint(p)
			if w <= 0 {
				return dst[:start], fmt.Errorf("%w: op %d: bad prev revision", ErrBadCommand, i)
			}
			p = p[w:]
			op.PrevRevision, op.HasPrevRevision = v, true
		}
		if i+1 < n && len(p) < 3 {
			return dst[:start], fmt.Errorf("%w: op %d: truncated", ErrBadCommand, i+1)
		}
		dst = append(dst, op)
	}
	if len(p) != 0 {
		return dst[:start], fmt.Errorf("%w: %d trailing bytes", ErrBadCommand, len(p))
	}
	return dst, nil
}

// readBytes reads a uvarint length of at most max followed by that many
// bytes from p. The returned slice aliases p and has its capacity capped.
func readBytes(p []byte, max int) (b, rest []byte, ok bool) {
	n, w := binary.Uvarint(p)
	if w <= 0 || n > uint64(max) || n > uint64(len(p)-w) {
		return nil, p, false
	}
	end := w + int(n)
	return p[w:end:end], p[end:], true
}

// ResultCode is the outcome of one Op.
type ResultCode uint8

const (
	// ResultOK means the op applied; OpResult.Revision is its revision.
	ResultOK ResultCode = 0
	// ResultNotFound means an OpDelete found no key; nothing changed.
	ResultNotFound ResultCode = 1
	// ResultConditionFailed means the key's mod_revision was not
	// PrevRevision; nothing changed and OpResult.Revision is the key's current
	// mod_revision, 0 if it is absent.
	ResultConditionFailed ResultCode = 2
	// ResultBadCommand means the entry could not be decoded; none of its ops
	// applied.
	ResultBadCommand ResultCode = 3
)

// String returns the code's name: "ok", "not_found", "condition_failed",
// "bad_command", or "ResultCode(n)".
func (c ResultCode) String() string {
	switch c {
	case ResultOK:
		return "ok"
	case ResultNotFound:
		return "not_found"
	case ResultConditionFailed:
		return "condition_failed"
	case ResultBadCommand:
		return "bad_command"
	default:
		return fmt.Sprintf("ResultCode(%d)", uint8(c))
	}
}

// OpResult is the outcome of one Op.
type OpResult struct {
	// Code says whether the op applied.
	Code ResultCode
	// Revision is, for ResultOK, the revision of the write (the entry's Raft
	// index); for ResultConditionFailed, the key's current mod_revision (0 if
	// absent); otherwise 0.
	Revision int64
}

// Result encodings. A single result travels in sm.Result.Value alone,
// without allocating: revision<<8 | singleResultFlag | code. Several results
// travel in sm.Result.Data: resultFormatV1, then per result its code byte and
// revision as a uvarint; Value then holds the count.
const (
	singleResultFlag uint64 = 0x80
	maxSingleRev            = 1<<55 - 1
	resultFormatV1   byte   = 1
)

// encodeSingle returns the sm.Result for one OpResult, or false when its
// revision does not fit in Value.
func encodeSingle(r OpResult) (sm.Result, bool) {
	if r.Revision < 0 || r.Revision > maxSingleRev {
		return sm.Result{}, false
	}
	return sm.Result{Value: uint64(r.Revision)<<8 | singleResultFlag | uint64(r.Code)}, true
}

// encodeResults returns the sm.Result for rs.
func encodeResults(rs []OpResult) sm.Result {
	r, _ := appendResult(nil, rs)
	return r
}

// appendResult returns the sm.Result for rs. When it needs Data, it appends
// it to buf and returns the extended buf; Data's capacity is capped, so later
// appends to buf never touch it.
func appendResult(buf []byte, rs []OpResult) (sm.Result, []byte) {
	if len(rs) == 0 {
		return sm.Result{}, buf
	}
	if len(rs) == 1 {
		if r, ok := encodeSingle(rs[0]); ok {
			return r, buf
		}
	}
	start := len(buf)
	buf = append(buf, resultFormatV1)
	for _, r := range rs {
		buf = append(buf, byte(r.Code))
		buf = binary.AppendUvarint(buf, uint64(r.Revision))
	}
	return sm.Result{Value: uint64(len(rs)), Data: buf[start:len(buf):len(buf)]}, buf
}

// DecodeResults returns the per-op results of one entry, as returned by
// Update in sm.Result (dragonboat hands it back from SyncPropose). It holds
// one OpResult per Op of the command, in order, except for a malformed
// command: then it holds a single OpResult with ResultBadCommand whatever the
// number of ops. An error wraps ErrBadResult.
func DecodeResults(r sm.Result) ([]OpResult, error) {
	return AppendResults(nil, r)
}

// AppendResults is DecodeResults appending to dst, so a caller can reuse a
// slice; it does not allocate when dst has room.
func AppendResults(dst []OpResult, r sm.Result) ([]OpResult, error) {
	if r.Data == nil {
		if r.Value == 0 {
			return dst, nil
		}
		if r.Value&singleResultFlag == 0 || r.Value&0x7f > uint64(ResultBadCommand) {
			return dst, fmt.Errorf("%w: value %#x", ErrBadResult, r.Value)
		}
		return append(dst, OpResult{Code: ResultCode(r.Value & 0x7f), Revision: int64(r.Value >> 8)}), nil
	}
	if len(r.Data) == 0 || r.Data[0] != resultFormatV1 {
		return dst, fmt.Errorf("%w: unknown format", ErrBadResult)
	}
	start := len(dst)
	p := r.Data[1:]
	for len(p) > 0 {
		code := ResultCode(p[0])
		if code > ResultBadCommand {
			return dst[:start], fmt.Errorf("%w: code %d", ErrBadResult, code)
		}
		rev, w := binary.Uvarint(p[1:])
		if w <= 0 {
			return dst[:start], fmt.Errorf("%w: truncated", ErrBadResult)
		}
		p = p[1+w:]
		dst = append(dst, OpResult{Code: code, Revision: int64(rev)})
	}
	if uint64(len(dst)-start) != r.Value {
		return dst[:start], fmt.Errorf("%w: %d results, want %d", ErrBadResult, len(dst)-start, r.Value)
	}
	return dst, nil
}
