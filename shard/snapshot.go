package shard

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/cockroachdb/pebble/v2"
	sm "github.com/lni/dragonboat/v4/statemachine"
)

// Snapshot stream format, version 1:
//
//	header:  format byte (1), applied index, key count, byte count (8 bytes
//	         big-endian each)
//	records: uvarint key length, user key, uvarint record length, data record
//	         (as stored: revisions, version, value), in strictly increasing key
//	         order
//	end:     uvarint 0 (keys are never empty), uvarint record count
//
// Dragonboat checksums the stream, so a record is either intact or the
// stream fails as a whole.
const (
	snapshotFormatV1  byte = 1
	snapshotHeaderLen      = metaLen

	// snapshotChunkBytes is how much SaveSnapshot buffers before writing.
	snapshotChunkBytes = 64 << 10
	// maxSnapshotRecordBytes bounds one data record in a snapshot, which is
	// far above any Raft entry dragonboat accepts.
	maxSnapshotRecordBytes = 1 << 30
)

// SaveSnapshot writes the shard's data as of PrepareSnapshot to w, in a
// deterministic order, and then releases the Pebble snapshot. It may run
// concurrently with Update and Lookup. It returns sm.ErrSnapshotStopped when
// done is closed before it finishes, and a Write error from w (dragonboat's
// sm.ErrSnapshotStreaming when the receiver is gone) as is; any other error
// means the disk failed.
func (m *StateMachine) SaveSnapshot(state any, w io.Writer, done <-chan struct{}) error {
	st, ok := state.(*snapshotState)
	if !ok {
		return fmt.Errorf("shard %d: save snapshot: state is %T, not from PrepareSnapshot", m.id, state)
	}
	if err := m.store.acquire(); err != nil {
		return err // Store.Close released the snapshot
	}
	defer m.store.release()
	defer m.releaseSnapshot(st.snap)
	err := m.saveSnapshot(st, &countingWriter{w: throttle(w, m.store.snapshotBytesPerSecond, done), n: &m.store.snapshotSent}, done)
	if err != nil && !errors.Is(err, sm.ErrSnapshotStopped) {
		return fmt.Errorf("shard %d: save snapshot at index %d: %w", m.id, st.m.applied, err)
	}
	return err
}

// saveSnapshot writes the stream; see SaveSnapshot.
func (m *StateMachine) saveSnapshot(st *snapshotState, w io.Writer, done <-chan struct{}) error {
	it, err := st.snap.NewIter(&pebble.IterOptions{LowerBound: m.lower, UpperBound: m.upper})
	if err != nil {
		return err
	}
	buf := make([]byte, 0, snapshotChunkBytes+binary.MaxVarintLen64)
	hdr := st.m.encode()
	hdr[0] = snapshotFormatV1
	buf = append(buf, hdr[:]...)
	var count uint64
	flush := func() error {
		select {
		case <-done:
			return sm.ErrSnapshotStopped
		default:
		}
		_, err := w.Write(buf)
		buf = buf[:0]
		return err
	}
	for valid := it.First(); valid; valid = it.Next() {
		key := it.Key()[len(m.lower):]
		v, err := it.ValueAndErr()
		if err != nil {
			return errors.Join(err, it.Close())
		}
		buf = binary.AppendUvarint(buf, uint64(len(key)))
		buf = append(buf, key...)
		buf = binary.AppendUvarint(buf, uint64(len(v)))
		count++
		if len(buf)+len(v) > snapshotChunkBytes {
			if err := flush(); err != nil {
				return errors.Join(err, it.Close())
			}
		}
		if len(v) > snapshotChunkBytes {
			// Write a large value straight from Pebble's buffer.
			if _, err := w.Write(v); err != nil {
				return errors.Join(err, it.Close())
			}
			continue
		}
		buf = append(buf, v...)
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return err
	}
	buf = binary.AppendUvarint(buf, 0)
	buf = binary.AppendUvarint(buf, count)
	return flush()
}

// RecoverFromSnapshot replaces the shard's data with a stream written by
// SaveSnapshot, possibly on another node, and sets the applied index to the
// stream's. It first deletes the shard's data and applied index, then writes
// the stream in batches of about Config.Expert.RecoverBatchBytes, the applied
// index last, and starts the shard's history afresh at the stream's index
// (snapshots carry no history), without waiting for fsync. Lookup fails with ErrRecovering
// meanwhile. If it stops or fails after its first batch, the shard is left
// without an applied index, so the next Open reports 0 and deletes the
// partial data, and dragonboat loads the snapshot again; if it stops before,
// the old state stays.
//
// It returns sm.ErrSnapshotStopped when done is closed before it finishes,
// an error wrapping ErrBadSnapshot when the stream is malformed or
// truncated, and any other error when the disk fails.
func (m *StateMachine) RecoverFromSnapshot(r io.Reader, done <-chan struct{}) error {
	if err := m.store.acquire(); err != nil {
		return err
	}
	defer m.store.release()
	wasWhole := m.gen.Load()%2 == 0
	if wasWhole {
		m.gen.Add(1) // odd: Lookup fails until the data is whole again
	}
	mt, changed, err := m.recoverSnapshot(&countingReader{r: r, n: &m.store.snapshotReceived}, done)
	if err != nil {
		if !changed && wasWhole {
			m.gen.Add(1) // nothing was written: the old data is whole
		}
		if errors.Is(err, sm.ErrSnapshotStopped) {
			m.lg.Info("snapshot load stopped", "changed", changed)
			return err
		}
		return fmt.Errorf("shard %d: recover snapshot: %w", m.id, err)
	}
	m.m, m.hist = mt, histMeta{floor: mt.applied, last: mt.applied}
	m.gen.Add(1)
	m.store.notify(m.id)
	m.lg.Info("snapshot loaded", "index", mt.applied, "keys", mt.keys, "bytes", mt.bytes)
	return nil
}

// recoverSnapshot loads the stream; see RecoverFromSnapshot. changed
// reports whether it committed anything, which also leaves m.m zero.
func (m *StateMachine) recoverSnapshot(r io.Reader, done <-chan struct{}) (_ meta, changed bool, err error) {
	src := &srcReader{r: r}
	br := bufio.NewReaderSize(src, snapshotChunkBytes)
	badSnapshot := src.badSnapshot
	var hdr [snapshotHeaderLen]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return meta{}, changed, badSnapshot("header", err)
	}
	if hdr[0] != snapshotFormatV1 {
		return meta{}, changed, fmt.Errorf("%w: unknown format %d", ErrBadSnapshot, hdr[0])
	}
	hdr[0] = metaFormatV1
	want, _ := decodeMeta(hdr[:]) // the length and format byte are right

	db := m.store.db
	b := db.NewBatch()
	defer func() { b.Close() }()
	if err := b.DeleteRange(m.lower, m.upper, nil); err != nil {
		return meta{}, changed, err
	}
	if err := b.Delete(m.metaKey, nil); err != nil {
		return meta{}, changed, err
	}
	hl, hu := histBounds(m.id)
	if err := b.DeleteRange(hl, hu, nil); err != nil {
		return meta{}, changed, err
	}
	got := meta{applied: want.applied}
	key := append(m.keyBuf[:0], m.lower...)
	prev := make([]byte, 0, 64)
	val := m.valBuf[:0]
	defer func() { m.keyBuf, m.valBuf = trimBuf(key), trimBuf(val) }()
	var count uint64
	for {
		n, err := binary.ReadUvarint(br)
		if err != nil {
			return meta{}, changed, badSnapshot(fmt.Sprintf("record %d", count), err)
		}
		if n == 0 {
			break
		}
		if n > MaxKeyBytes {
			return meta{}, changed, fmt.Errorf("%w: record %d: key of %d bytes", ErrBadSnapshot, count, n)
		}
		key, err = readN(br, key[:len(m.lower)], int(n))
		if err != nil {
			return meta{}, changed, badSnapshot(fmt.Sprintf("record %d", count), err)
		}
		userKey := key[len(m.lower):]
		if count > 0 && bytes.Compare(prev, userKey) >= 0 {
			return meta{}, changed, fmt.Errorf("%w: record %d: keys out of order", ErrBadSnapshot, count)
		}
		prev = append(prev[:0], userKey...)
		if n, err = binary.ReadUvarint(br); err != nil {
			return meta{}, changed, badSnapshot(fmt.Sprintf("record %d", count), err)
		}
		if n > maxSnapshotRecordBytes {
			return meta{}, changed, fmt.Errorf("%w: record %d: %d bytes", ErrBadSnapshot, count, n)
		}
		if val, err = readN(br, val[:0], int(n)); err != nil {
			return meta{}, changed, badSnapshot(fmt.Sprintf("record %d", count), err)
		}
		rec, ok := decodeRecord(val)
		if !ok {
			return meta{}, changed, fmt.Errorf("%w: record %d: bad data record", ErrBadSnapshot, count)
		}
		got.keys++
		got.bytes += int64(len(userKey) + len(rec.value))
		count++
		if err := b.Set(key, val, nil); err != nil {
			return meta{}, changed, err
		}
		if b.Len() >= m.store.recoverBatchBytes {
			select {
			case <-done:
				return meta{}, changed, sm.ErrSnapshotStopped
			default:
			}
			if err := b.Commit(pebble.NoSync); err != nil {
				return meta{}, changed, err
			}
			// The disk now holds no applied index for the shard.
			changed, m.m = true, meta{}
			b.Close()
			b = db.NewBatch()
		}
	}
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return meta{}, changed, badSnapshot("end", err)
	}
	if n != count {
		return meta{}, changed, fmt.Errorf("%w: %d records, end says %d", ErrBadSnapshot, count, n)
	}
	if got != want {
		// The sender's counters drifted; the recount is right.
		m.lg.Warn("snapshot counters differ from its data",
			"index", want.applied, "keys", got.keys, "want_keys", want.keys,
			"bytes", got.bytes, "want_bytes", want.bytes)
	}
	select {
	case <-done:
		return meta{}, changed, sm.ErrSnapshotStopped
	default:
	}
	enc := got.encode()
	if err := b.Set(m.metaKey, enc[:], nil); err != nil {
		return meta{}, changed, err
	}
	// The stream carries no history: this replica's starts at its index.
	henc := histMeta{floor: got.applied, last: got.applied}.encode()
	if err := b.Set(m.histKey, henc[:], nil); err != nil {
		return meta{}, changed, err
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return meta{}, changed, err
	}
	return got, true, nil
}

// srcReader remembers the first error, other than io.EOF, of the reader
// RecoverFromSnapshot was given, to tell a failing reader from a bad stream.
type srcReader struct {
	r   io.Reader
	err error
}

// Read reads from the wrapped reader.
func (s *srcReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}

// badSnapshot describes err, met while reading what: the reader's own error
// is returned as is; anything else (end of stream, a malformed varint) means
// the stream is bad.
func (s *srcReader) badSnapshot(what string, err error) error {
	if s.err != nil {
		return fmt.Errorf("%s: %w", what, s.err)
	}
	return fmt.Errorf("%w: %s: %w", ErrBadSnapshot, what, err)
}

// readN appends n bytes from r to dst. It grows dst as data arrives, so a
// bogus length in a truncated stream does not allocate n bytes up front.
func readN(r io.Reader, dst []byte, n int) ([]byte, error) {
	const step = 1 << 20
	for n > 0 {
		k := min(n, step)
		start := len(dst)
		if cap(dst)-start < k {
			dst = append(dst, make([]byte, k)...)[:start]
		}
		if _, err := io.ReadFull(r, dst[start:start+k]); err != nil {
			return dst, err
		}
		dst = dst[:start+k]
		n -= k
	}
	return dst, nil
}
