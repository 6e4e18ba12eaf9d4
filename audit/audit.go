// Package audit writes the audit log: one JSON line per write, delete,
// admin or auth call and per denial, saying who did what to which key,
// when, from where, and with what result. Values never appear: Event has no
// field that could carry one.
//
// Log never waits for the disk. Events go into a bounded queue that one
// goroutine drains into the Writer, batching whatever has queued up into a
// single Write; when the queue is full, Log drops the event and counts it
// (Dropped), so a stalled log file slows no request. Close writes out every
// queued event before it returns. Events still queued when the process dies
// are lost; the queue is flushed as soon as it empties, so in practice that
// is the last few milliseconds.
//
// A line looks like:
//
//	{"time":"2026-05-01T12:00:00.123456789Z","subject":"alice","source":"10.0.0.7:52144","method":"/cave.v1.KV/Put","key":"app/x","result":"ok"}
package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Limits on what one event may write. Longer fields are cut at a UTF-8
// boundary and end in "...", so the cut text, marker included, fits the
// limit.
const (
	// MaxDetailBytes bounds Event.Detail.
	MaxDetailBytes = 256
	// MaxFieldBytes bounds each other string field. Keys are at most 1024
	// bytes (docs/architecture.md, "Data model"), so valid keys are never cut; an oversize key
	// in a refused request is.
	MaxFieldBytes = 1024
)

// The results every caller spells the same way. Any other outcome is
// written as the gRPC code name of the error ("InvalidArgument",
// "FailedPrecondition", ...).
const (
	ResultOK     = "ok"
	ResultDenied = "denied"
)

// Event is one audited call. It has no field for a value, a password or a
// token, and must never be given one inside Detail.
type Event struct {
	// Time is when the call was made; zero means Log stamps the current
	// time. It is written in UTC with nanoseconds.
	Time time.Time
	// Subject is who made the call: the verified client certificate's
	// common name or the bearer token's user; empty when unauthenticated.
	Subject string
	// Source is the caller's network address (host:port).
	Source string
	// Method is the call, as the full gRPC method name
	// ("/cave.v1.KV/Put"); REST calls reach the same gRPC handlers.
	Method string
	// Key is the key or key prefix the call names; empty for calls on no
	// key (left out of the line then).
	Key string
	// Result is ResultOK, ResultDenied or the gRPC code name of the error.
	Result string
	// Detail is a short free-form note (the grant that denied, the user an
	// admin call created); cut to MaxDetailBytes, left out when empty.
	Detail string
}

// line is an Event as written; the tags are the log's interface.
type line struct {
	Time    string `json:"time"`
	Subject string `json:"subject"`
	Source  string `json:"source"`
	Method  string `json:"method"`
	Key     string `json:"key,omitempty"`
	Result  string `json:"result"`
	Detail  string `json:"detail,omitempty"`
}

// Config configures a Logger.
type Config struct {
	// Writer receives the log. cmd/cave passes the --audit-log file, opened
	// with O_APPEND so that each batch lands whole at the end, or stdout.
	// It is written by one goroutine at a time, and never closed or synced
	// by the Logger. Required.
	Writer io.Writer
	// BufferEvents is how many events may wait for the Writer; Log drops
	// events beyond that. Default 4096; must be at least 1.
	BufferEvents int
	// Logger receives the Logger's own troubles: failed writes and dropped
	// events. Required.
	Logger *slog.Logger
}

// DefaultConfig returns the defaults; Writer and Logger must still be set.
func DefaultConfig() Config {
	return Config{BufferEvents: 4096}
}

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	if c.Writer == nil {
		errs = append(errs, errors.New("audit: a writer is required (--audit-log FILE or stdout)"))
	}
	if c.BufferEvents < 1 {
		errs = append(errs, fmt.Errorf("audit: BufferEvents must be >= 1, got %d", c.BufferEvents))
	}
	if c.Logger == nil {
		errs = append(errs, errors.New("audit: a logger is required"))
	}
	return errors.Join(errs...)
}

// maxBatchBytes caps one Write; a batch ends early when the queue holds
// more than this.
const maxBatchBytes = 64 << 10

// dropWarnEvery is the least time between two warnings about drops.
const dropWarnEvery = 10 * time.Second

// Logger writes audit events as JSON lines. It is safe for concurrent use:
// Log, Dropped and Close may be called from any goroutine at any time.
//
// A nil *Logger is valid and discards every event, so callers need not check
// whether auditing is on.
type Logger struct {
	w  io.Writer
	lg *slog.Logger

	// mu makes a send on events and the close of events exclusive: Log
	// holds it shared while it tries a non-blocking send, Close holds it
	// to set closed and close the channel.
	mu     sync.RWMutex
	closed bool
	events chan Event

	dropped atomic.Uint64

	closeOnce sync.Once
	done      chan struct{} // closed when run returns
	err       error         // first write error; owned by run until done is closed
}

// New returns a Logger writing to cfg.Writer and starts its writer
// goroutine; Close stops it. It fails only when cfg does not validate.
func New(cfg Config) (*Logger, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l := &Logger{
		w:      cfg.Writer,
		lg:     cfg.Logger,
		events: make(chan Event, cfg.BufferEvents),
		done:   make(chan struct{}),
	}
	go l.run()
	return l, nil
}

// Log queues e to be written and returns without waiting for the write.
// When the queue is full, or after Close, e is dropped and counted in
// Dropped.
func (l *Logger) Log(e Event) {
	if l == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		l.dropped.Add(1)
		return
	}
	select {
	case l.events <- e:
	default:
		l.dropped.Add(1)
	}
}

// Dropped returns how many events were not written: dropped because the
// queue was full or the Logger closed, or lost in a failed write. It only
// grows.
func (l *Logger) Dropped() uint64 {
	if l == nil {
		return 0
	}
	return l.dropped.Load()
}

// Close writes out every queued event, stops the writer goroutine and
// returns the first write error the Logger met, if any, so the caller can
// report that the audit trail has gaps. It blocks while the Writer does. It
// does not close the Writer. Close may be called more than once, also
// concurrently; every call returns the same result once the first is done.
func (l *Logger) Close() error {
	if l == nil {
		return nil
	}
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closed = true
		close(l.events)
		l.mu.Unlock()
		<-l.done
	})
	<-l.done
	return l.err
}

// run is the writer goroutine: it encodes queued events and writes them in
// batches, one Write per batch, until events is closed and drained.
func (l *Logger) run() {
	defer close(l.done)
	var (
		buf      bytes.Buffer
		enc      = json.NewEncoder(&buf)
		n        int       // events in buf
		failing  bool      // the last write failed
		newline  bool      // a failed write left a partial line behind
		warned   uint64    // Dropped at the last warning
		lastWarn time.Time // when that was
	)
	enc.SetEscapeHTML(false)
	for e := range l.events {
		if n == 0 && newline {
			buf.WriteByte('\n')
		}
		if err := enc.Encode(toLine(e)); err != nil {
			// Strings and a formatted time always encode; this is a bug.
			panic("audit: encode event: " + err.Error())
		}
		n++
		if len(l.events) > 0 && buf.Len() < maxBatchBytes {
			continue
		}
		b := buf.Bytes()
		written, err := l.w.Write(b)
		switch {
		case err != nil:
			l.dropped.Add(uint64(n))
			if written > 0 {
				// Start the next batch on a new line, so that only the
				// fragment is unreadable.
				newline = written < len(b)
			}
			if l.err == nil {
				l.err = err
			}
			if !failing {
				failing = true
				l.lg.Error("audit log write failed; events are being lost", "err", err, "events", n)
			}
		case failing:
			failing, newline = false, false
			l.lg.Info("audit log write recovered", "dropped", l.dropped.Load())
		default:
			newline = false
		}
		buf.Reset()
		n = 0
		if d := l.dropped.Load(); d != warned && time.Since(lastWarn) >= dropWarnEvery {
			l.lg.Warn("audit events dropped", "dropped", d)
			warned, lastWarn = d, time.Now()
		}
	}
}

// toLine bounds e's fields and formats its time.
func toLine(e Event) line {
	return line{
		Time:    e.Time.UTC().Format(time.RFC3339Nano),
		Subject: truncate(e.Subject, MaxFieldBytes),
		Source:  truncate(e.Source, MaxFieldBytes),
		Method:  truncate(e.Method, MaxFieldBytes),
		Key:     truncate(e.Key, MaxFieldBytes),
		Result:  truncate(e.Result, MaxFieldBytes),
		Detail:  truncate(e.Detail, MaxDetailBytes),
	}
}

// truncate returns s if it has at most max bytes, and otherwise its longest
// prefix that ends on a rune boundary and, followed by "...", fits in max.
func truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	const marker = "..."
	cut := max - len(marker)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + marker
}
