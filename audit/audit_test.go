package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sink is an io.Writer that keeps every Write call separately.
type sink struct {
	mu     sync.Mutex
	writes [][]byte
}

func (s *sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes = append(s.writes, bytes.Clone(p))
	return len(p), nil
}

// lines returns everything written, split into lines.
func (s *sink) lines(t *testing.T) []string {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	all := bytes.Join(s.writes, nil)
	if len(all) == 0 {
		return nil
	}
	require.True(t, bytes.HasSuffix(all, []byte("\n")), "the log ends with a newline")
	return strings.Split(strings.TrimSuffix(string(all), "\n"), "\n")
}

// recorder is a slog.Handler that keeps every record.
type recorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec.Clone())
	return nil
}

func (r *recorder) count(level slog.Level, msg string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, rec := range r.recs {
		if rec.Level == level && rec.Message == msg {
			n++
		}
	}
	return n
}

// newLogger returns a Logger writing to w with a buffer of size events,
// closed when the test ends.
func newLogger(t *testing.T, w interface{ Write([]byte) (int, error) }, size int) (*Logger, *recorder) {
	t.Helper()
	rec := &recorder{}
	cfg := DefaultConfig()
	cfg.Writer, cfg.Logger = w, slog.New(rec)
	if size > 0 {
		cfg.BufferEvents = size
	}
	l, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return l, rec
}

// decode parses one line strictly into a map, so unexpected fields show.
func decode(t *testing.T, s string) map[string]string {
	t.Helper()
	var m map[string]string
	require.NoError(t, json.Unmarshal([]byte(s), &m), "line %q", s)
	return m
}

func TestLine(t *testing.T) {
	t.Parallel()
	w := &sink{}
	l, _ := newLogger(t, w, 0)
	at := time.Date(2026, 5, 1, 14, 0, 0, 123456789, time.FixedZone("CEST", 2*60*60))
	l.Log(Event{Time: at, Subject: "alice", Source: "10.0.0.7:52144", Method: "/cave.v1.KV/Put", Key: "app/x", Result: ResultOK})
	l.Log(Event{Time: at, Subject: "bob", Source: "10.0.0.8:40000", Method: "/cave.v1.Auth/AddUser", Result: ResultDenied, Detail: "no admin grant <&>"})
	l.Log(Event{Time: at, Method: "/cave.v1.KV/Put", Key: "a\nb\"c", Result: "InvalidArgument"})
	require.NoError(t, l.Close())
	assert.Equal(t, []string{
		`{"time":"2026-05-01T12:00:00.123456789Z","subject":"alice","source":"10.0.0.7:52144","method":"/cave.v1.KV/Put","key":"app/x","result":"ok"}`,
		`{"time":"2026-05-01T12:00:00.123456789Z","subject":"bob","source":"10.0.0.8:40000","method":"/cave.v1.Auth/AddUser","result":"denied","detail":"no admin grant <&>"}`,
		`{"time":"2026-05-01T12:00:00.123456789Z","subject":"","source":"","method":"/cave.v1.KV/Put","key":"a\nb\"c","result":"InvalidArgument"}`,
	}, w.lines(t))
}

func TestZeroTimeIsStamped(t *testing.T) {
	t.Parallel()
	w := &sink{}
	l, _ := newLogger(t, w, 0)
	before := time.Now()
	l.Log(Event{Method: "/cave.v1.KV/Delete", Key: "k", Result: ResultOK})
	require.NoError(t, l.Close())
	after := time.Now()
	lines := w.lines(t)
	require.Len(t, lines, 1)
	got, err := time.Parse(time.RFC3339Nano, decode(t, lines[0])["time"])
	require.NoError(t, err)
	assert.False(t, got.Before(before) || got.After(after), "time %s not within [%s, %s]", got, before, after)
}

// TestNoValueField pins the fields an event has and writes: nothing that
// could hold a value, password or token.
func TestNoValueField(t *testing.T) {
	t.Parallel()
	var fields []string
	for f := range reflect.TypeFor[Event]().Fields() {
		fields = append(fields, f.Name)
	}
	assert.Equal(t, []string{"Time", "Subject", "Source", "Method", "Key", "Result", "Detail"}, fields,
		"adding a field to Event needs a review: values, passwords and tokens must never be audited")

	w := &sink{}
	l, _ := newLogger(t, w, 0)
	l.Log(Event{Subject: "s", Source: "a", Method: "m", Key: "k", Result: ResultOK, Detail: "d"})
	require.NoError(t, l.Close())
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range decode(t, w.lines(t)[0]) {
			if !yield(k) {
				return
			}
		}
	})
	assert.Equal(t, []string{"detail", "key", "method", "result", "source", "subject", "time"}, keys)
}

// TestTruncate checks that oversize fields are cut to their limit at a
// rune boundary, so a Detail cannot carry a value in by accident.
func TestTruncate(t *testing.T) {
	t.Parallel()
	huge := strings.Repeat("v", 1<<20)
	w := &sink{}
	l, _ := newLogger(t, w, 0)
	l.Log(Event{Key: huge, Subject: huge, Source: huge, Method: huge, Result: huge, Detail: huge})
	l.Log(Event{Detail: strings.Repeat("é", 200), Key: strings.Repeat("日", 400)}) // 400 and 1200 bytes
	require.NoError(t, l.Close())
	lines := w.lines(t)
	require.Len(t, lines, 2)

	first := decode(t, lines[0])
	assert.Len(t, first["detail"], MaxDetailBytes)
	assert.True(t, strings.HasSuffix(first["detail"], "..."))
	for _, k := range []string{"key", "subject", "source", "method", "result"} {
		assert.Len(t, first[k], MaxFieldBytes, k)
	}
	assert.Less(t, len(lines[0]), 6*MaxFieldBytes, "a line stays small whatever the event holds")

	second := decode(t, lines[1])
	for k, limit := range map[string]int{"detail": MaxDetailBytes, "key": MaxFieldBytes} {
		v := second[k]
		assert.LessOrEqual(t, len(v), limit, k)
		assert.Greater(t, len(v), limit-len("...")-utf8.UTFMax, k)
		assert.True(t, utf8.ValidString(v), "%s cut inside a rune: %q", k, v)
		assert.True(t, strings.HasSuffix(v, "..."), k)
	}
}

func TestTruncateTable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"", 8, ""},
		{"12345678", 8, "12345678"},
		{"123456789", 8, "12345..."},
		{"ééééé", 8, "éé..."}, // 10 bytes; a third é would end at byte 6, past 5
		{"abcdé", 8, "abcdé"},
		{"abcdéf", 6, "abc..."},
	} {
		assert.Equal(t, tc.want, truncate(tc.in, tc.max), "truncate(%q, %d)", tc.in, tc.max)
	}
}

// TestConcurrent logs from many goroutines and checks that every event
// comes out once, whole, on its own line, and that each Write holds whole
// lines only.
func TestConcurrent(t *testing.T) {
	t.Parallel()
	const goroutines, each = 8, 2000
	w := &sink{}
	l, _ := newLogger(t, w, goroutines*each)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				l.Log(Event{Subject: fmt.Sprintf("user-%d", g), Source: "127.0.0.1:1", Method: "/cave.v1.KV/Put", Key: fmt.Sprintf("k/%d/%d", g, i), Result: ResultOK, Detail: strings.Repeat("x", i%300)})
			}
		})
	}
	wg.Wait()
	require.NoError(t, l.Close())
	assert.Zero(t, l.Dropped())

	w.mu.Lock()
	for _, b := range w.writes {
		assert.True(t, bytes.HasSuffix(b, []byte("\n")), "a Write ends with a whole line")
	}
	batches := len(w.writes)
	w.mu.Unlock()
	t.Logf("%d events in %d writes", goroutines*each, batches)

	seen := map[string]bool{}
	for _, s := range w.lines(t) {
		m := decode(t, s)
		assert.False(t, seen[m["key"]], "duplicate %s", m["key"])
		seen[m["key"]] = true
		var g, i int
		_, err := fmt.Sscanf(m["key"], "k/%d/%d", &g, &i)
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprintf("user-%d", g), m["subject"])
		assert.Len(t, m["detail"], min(i%300, MaxDetailBytes))
	}
	assert.Len(t, seen, goroutines*each)
}

// blockingWriter blocks every Write until release is closed; entered
// receives a value when a Write starts.
type blockingWriter struct {
	sink
	entered chan struct{}
	release chan struct{}
}

func (b *blockingWriter) Write(p []byte) (int, error) {
	select {
	case b.entered <- struct{}{}:
	default:
	}
	<-b.release
	return b.sink.Write(p)
}

// TestFullQueueDrops stalls the writer and checks that Log neither blocks
// nor loses count: every event is either written or counted as dropped.
func TestFullQueueDrops(t *testing.T) {
	t.Parallel()
	const total = 1000
	w := &blockingWriter{entered: make(chan struct{}, 1), release: make(chan struct{})}
	l, rec := newLogger(t, w, 4)
	l.Log(Event{Method: "m", Key: "0", Result: ResultOK})
	<-w.entered // the writer holds event 0 and is stuck
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; i < total; i++ {
			l.Log(Event{Method: "m", Key: fmt.Sprint(i), Result: ResultOK})
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Log blocked behind a stalled writer")
	}
	assert.Equal(t, uint64(total-5), l.Dropped(), "only the event being written and the 4 queued survive")
	close(w.release)
	require.NoError(t, l.Close())
	assert.Equal(t, uint64(total), uint64(len(w.lines(t)))+l.Dropped())
	assert.Equal(t, 1, rec.count(slog.LevelWarn, "audit events dropped"))
}

// TestClose checks that Close writes everything queued, can be called
// again and concurrently, and that later events are counted as dropped.
func TestClose(t *testing.T) {
	t.Parallel()
	w := &sink{}
	l, _ := newLogger(t, w, 0)
	for i := range 100 {
		l.Log(Event{Key: fmt.Sprint(i), Result: ResultOK})
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { assert.NoError(t, l.Close()) })
	}
	wg.Wait()
	assert.Len(t, w.lines(t), 100, "Close flushed every queued event")
	assert.NoError(t, l.Close())

	l.Log(Event{Key: "late"})
	assert.Equal(t, uint64(1), l.Dropped())
	assert.Len(t, w.lines(t), 100)
}

// TestCloseWhileLogging races Close against loggers: nothing panics and
// every event is accounted for.
func TestCloseWhileLogging(t *testing.T) {
	t.Parallel()
	const goroutines, each = 4, 500
	w := &sink{}
	l, _ := newLogger(t, w, 0)
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range each {
				l.Log(Event{Key: "k", Result: ResultOK})
			}
		})
	}
	require.NoError(t, l.Close())
	wg.Wait()
	assert.Equal(t, uint64(goroutines*each), uint64(len(w.lines(t)))+l.Dropped())
}

// failingWriter fails the first fails writes, writing partial bytes of
// each, then works.
type failingWriter struct {
	sink
	fails    int
	partial  int // bytes a failing write still writes
	attempts int // Write calls so far
}

var errDiskFull = errors.New("disk full")

func (f *failingWriter) Write(p []byte) (int, error) {
	f.mu.Lock()
	f.attempts++
	failing := f.fails > 0
	if failing {
		f.fails--
	}
	f.mu.Unlock()
	if failing {
		n := min(f.partial, len(p))
		_, _ = f.sink.Write(p[:n])
		return n, errDiskFull
	}
	return f.sink.Write(p)
}

// TestWriteErrors checks that failed writes count their events as
// dropped, are logged once until the writer recovers, leave later lines
// readable even after a partial write, and make Close report the cause.
func TestWriteErrors(t *testing.T) {
	t.Parallel()
	for _, partial := range []int{0, 10} {
		t.Run(fmt.Sprintf("partial=%d", partial), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) { testWriteErrors(t, partial) })
		})
	}
}

// testWriteErrors runs TestWriteErrors for one partial length inside a
// synctest bubble, where synctest.Wait tells when the writer goroutine has
// taken an event and is waiting for the next.
func testWriteErrors(t *testing.T, partial int) {
	w := &failingWriter{fails: 3, partial: partial}
	l, rec := newLogger(t, w, 0)
	// One event at a time, so that each is a batch of its own.
	for i := range 5 {
		l.Log(Event{Key: fmt.Sprint(i), Result: ResultOK})
		synctest.Wait()
		w.mu.Lock()
		attempts := w.attempts
		w.mu.Unlock()
		require.Equal(t, i+1, attempts, "event %d is written on its own", i)
	}
	err := l.Close()
	assert.ErrorIs(t, err, errDiskFull)
	assert.Equal(t, uint64(3), l.Dropped())
	assert.Equal(t, 1, rec.count(slog.LevelError, "audit log write failed; events are being lost"))
	assert.Equal(t, 1, rec.count(slog.LevelInfo, "audit log write recovered"))

	var keys []string
	for _, s := range w.lines(t) {
		if partial > 0 && !strings.HasSuffix(s, "}") {
			continue // the fragment of a failed write
		}
		keys = append(keys, decode(t, s)["key"])
	}
	assert.Equal(t, []string{"3", "4"}, keys)
}

// TestAppendFile writes through two Loggers in turn to a file opened with
// O_APPEND, as cmd/cave does across restarts.
func TestAppendFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.log")
	for run := range 2 {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		require.NoError(t, err)
		l, _ := newLogger(t, f, 0)
		for i := range 3 {
			l.Log(Event{Subject: "alice", Key: fmt.Sprintf("%d/%d", run, i), Result: ResultOK})
		}
		require.NoError(t, l.Close())
		require.NoError(t, f.Close())
	}
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	require.Len(t, lines, 6)
	for i, s := range lines {
		assert.Equal(t, fmt.Sprintf("%d/%d", i/3, i%3), decode(t, s)["key"])
	}
}

func TestNilLogger(t *testing.T) {
	t.Parallel()
	var l *Logger
	l.Log(Event{Key: "k"})
	assert.Zero(t, l.Dropped())
	assert.NoError(t, l.Close())
}

func TestConfig(t *testing.T) {
	t.Parallel()
	err := Config{}.Validate()
	require.Error(t, err)
	for _, want := range []string{"writer", "BufferEvents must be >= 1, got 0", "logger"} {
		assert.Contains(t, err.Error(), want)
	}
	_, err = New(DefaultConfig())
	assert.ErrorContains(t, err, "writer")

	cfg := DefaultConfig()
	cfg.Writer, cfg.Logger = &sink{}, slog.New(&recorder{})
	assert.NoError(t, cfg.Validate())
	assert.Equal(t, 4096, cfg.BufferEvents)
}
