// Package logbuf keeps a node's recent log records in memory, so that
// /api/v1/perf/logs can show them without shell access to the machine.
//
// A Handler is an slog.Handler that passes every record to the next handler
// (the node's stderr text or JSON output) and also stores it in a Buffer, a
// bounded ring that drops the oldest record when full.
//
//	buf := logbuf.NewBuffer(2000)
//	lg := slog.New(logbuf.NewHandler(slog.NewTextHandler(os.Stderr, opts), buf, level))
//	entries := buf.Query(logbuf.Query{MinLevel: slog.LevelWarn, Limit: 100})
package logbuf

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Entry is one stored log record. Attribute values are flattened into
// JSON-friendly scalars: strings, integers, floats and booleans; times,
// durations, errors and everything else are stored as strings. Keys of
// attributes inside groups are joined with dots ("group.key").
type Entry struct {
	Time  time.Time      `json:"time"`
	Level string         `json:"level"`
	Msg   string         `json:"msg"`
	Attrs map[string]any `json:"attrs"`

	level slog.Level
}

// LogLevel returns the entry's slog level.
func (e Entry) LogLevel() slog.Level { return e.level }

// Buffer is a bounded ring of log entries. It is safe for concurrent use.
type Buffer struct {
	mu      sync.Mutex // guards entries, next and full
	entries []Entry    // ring of len(entries) == capacity
	next    int        // index the next entry is written to
	full    bool       // whether the ring has wrapped
}

// NewBuffer returns a Buffer that keeps the newest size entries. size < 1
// is treated as 1.
func NewBuffer(size int) *Buffer {
	return &Buffer{entries: make([]Entry, max(size, 1))}
}

// Cap returns the most entries b keeps.
func (b *Buffer) Cap() int { return len(b.entries) }

func (b *Buffer) add(e Entry) {
	b.mu.Lock()
	b.entries[b.next] = e
	b.next++
	if b.next == len(b.entries) {
		b.next, b.full = 0, true
	}
	b.mu.Unlock()
}

// Query selects entries from a Buffer.
type Query struct {
	// MinLevel keeps entries at this level or above.
	MinLevel slog.Level
	// Limit keeps only the newest Limit matching entries; <= 0 means all.
	Limit int
	// Since, when not zero, keeps only entries strictly after it, so a
	// client polling with the time of the last entry it saw gets only new
	// ones.
	Since time.Time
}

// Query returns the entries that match q, oldest first (newest last). The
// returned slice is the caller's; its entries' Attrs maps are shared and
// must not be modified.
func (b *Buffer) Query(q Query) []Entry {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []Entry
	// Walk from newest to oldest so that Limit keeps the newest.
	n := b.next
	if b.full {
		n = len(b.entries)
	}
	for i := 0; i < n; i++ {
		idx := b.next - 1 - i
		if idx < 0 {
			idx += len(b.entries)
		}
		e := b.entries[idx]
		if !q.Since.IsZero() && !e.Time.After(q.Since) {
			// Entries are stored in the order they were logged, but clocks
			// and concurrent loggers do not guarantee monotonic times, so
			// keep scanning rather than stopping here.
			continue
		}
		if e.level < q.MinLevel {
			continue
		}
		out = append(out, e)
		if q.Limit > 0 && len(out) == q.Limit {
			break
		}
	}
	slices.Reverse(out)
	return out
}

// Handler tees records to the next handler and into a Buffer. It is safe
// for concurrent use, as slog requires.
type Handler struct {
	next  slog.Handler
	buf   *Buffer
	level slog.Leveler
	// prefix is the dotted group path that applies to attributes added
	// from now on, e.g. "a.b."; attrs are those added by WithAttrs,
	// already flattened under their own prefix.
	prefix string
	attrs  []flatAttr
}

type flatAttr struct {
	key string
	val any
}

// NewHandler returns a Handler that passes records to next and stores those
// at level or above in buf. level is usually the same Leveler as next's.
func NewHandler(next slog.Handler, buf *Buffer, level slog.Leveler) *Handler {
	if level == nil {
		level = slog.LevelInfo
	}
	return &Handler{next: next, buf: buf, level: level}
}

// Enabled implements slog.Handler: a record is wanted when the next
// handler or the buffer wants it.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.level.Level() || h.next.Enabled(ctx, l)
}

// Handle implements slog.Handler. An error of the next handler is returned
// after the record is stored.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= h.level.Level() {
		e := Entry{Time: r.Time, Level: r.Level.String(), Msg: r.Message, level: r.Level,
			Attrs: make(map[string]any, len(h.attrs)+r.NumAttrs())}
		for _, a := range h.attrs {
			e.Attrs[a.key] = a.val
		}
		set := func(k string, v any) { e.Attrs[k] = v }
		r.Attrs(func(a slog.Attr) bool {
			flatten(h.prefix, a, set)
			return true
		})
		h.buf.add(e)
	}
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	h2 := *h
	h2.next = h.next.WithAttrs(as)
	h2.attrs = slices.Clip(h.attrs)
	for _, a := range as {
		flatten(h.prefix, a, func(k string, v any) { h2.attrs = append(h2.attrs, flatAttr{key: k, val: v}) })
	}
	return &h2
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.next = h.next.WithGroup(name)
	h2.prefix = h.prefix + name + "."
	return &h2
}

// flatten passes a to emit under prefix+key, resolving LogValuers and
// descending into groups.
func flatten(prefix string, a slog.Attr, emit func(string, any)) {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, g := range v.Group() {
			flatten(p, g, emit)
		}
		return
	}
	if a.Key == "" {
		return
	}
	emit(prefix+a.Key, scalar(v))
}

// scalar converts a resolved, non-group value to a JSON-friendly scalar
// that keeps no reference to the logged object.
func scalar(v slog.Value) any {
	switch v.Kind() {
	case slog.KindString:
		return v.String()
	case slog.KindInt64:
		return v.Int64()
	case slog.KindUint64:
		return v.Uint64()
	case slog.KindFloat64:
		return v.Float64()
	case slog.KindBool:
		return v.Bool()
	case slog.KindDuration:
		return v.Duration().String()
	case slog.KindTime:
		return v.Time().Format(time.RFC3339Nano)
	}
	if v.Any() == nil {
		return nil
	}
	// fmt calls Error and String methods and survives their panics.
	return fmt.Sprint(v.Any())
}

var _ slog.Handler = (*Handler)(nil)
