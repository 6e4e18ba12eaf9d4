package nodetest

import (
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// logSink sends log lines to t.Log until stop is called. Goroutines that
// outlive a test (dragonboat keeps a process-wide logger, see Install in
// node/internal/dblog) may still log after it ends, when t.Log panics, so
// every line is written under mu and dropped once stopped.
type logSink struct {
	t       testing.TB
	mu      sync.Mutex // guards stopped; held while calling t.Log
	stopped bool
}

// stop makes later lines vanish. It is registered with t.Cleanup before the
// cluster's own cleanup, so it runs after the nodes are closed.
func (s *logSink) stop() {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
}

// logger returns a text logger whose lines go to t.Log prefixed with name.
func (s *logSink) logger(name string, level slog.Level) *slog.Logger {
	w := &lineWriter{sink: s, prefix: name + ": "}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey && a.Value.Kind() == slog.KindTime {
				// t.Log has no timestamps; a short one helps with timing
				// questions without drowning the line.
				return slog.String(slog.TimeKey, a.Value.Time().Format("15:04:05.000"))
			}
			return a
		},
	}))
}

// lineWriter receives one record per Write from slog.TextHandler.
type lineWriter struct {
	sink   *logSink
	prefix string
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.sink.mu.Lock()
	defer w.sink.mu.Unlock()
	if !w.sink.stopped {
		w.sink.t.Log(w.prefix + strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}
