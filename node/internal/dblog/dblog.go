// Package dblog routes the logs of dragonboat and serf into log/slog.
//
// dragonboat keeps a process-wide logger factory that may be set only once,
// so Install wraps it in a sync.Once: the first caller's logger receives
// dragonboat's logs for the life of the process.
//
// Both libraries repeat themselves while a peer is away (a reconnect
// attempt every few hundred milliseconds), so identical messages are
// rate-limited: the first is logged, repeats within RepeatInterval are
// dropped, and the first one after it carries the number dropped in the
// attribute "repeated".
package dblog

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"log/slog"
	"sync"
	"time"

	"github.com/lni/dragonboat/v4/logger"
)

// RepeatInterval is how long identical messages are dropped after one is
// logged.
const RepeatInterval = 30 * time.Second

var once sync.Once

// peerChurn holds the formats of dragonboat's errors about a peer it
// cannot reach: routine while a peer restarts or stops, so they are
// warnings, not errors.
var peerChurn = map[string]bool{
	"Nodehost %s failed to get a connection to %s, %v": true,
	"send batch failed, target %s (%v), %d":            true,
	"send batch failed, taret node %s (%v), %d":        true,
	"failed to get a job to %s, %v":                    true,
	"failed to connect to %s":                          true,
	"failed to send snapshot to %s":                    true,
	"streaming snapshot chunk to %s failed, %v":        true,
}

// Install makes lg the destination of dragonboat's logs. Only the first call
// in a process has an effect. dragonboat's info level is chatty (every
// snapshot, every connection), so it is logged at slog's debug level, as are
// the routine election warnings of its raft package; errors about a peer
// that cannot be reached are warnings; other warnings and errors keep
// their level.
func Install(lg *slog.Logger) {
	once.Do(func() {
		lim := newLimiter(time.Now)
		logger.SetLoggerFactory(func(pkg string) logger.ILogger { return newAdapter(lg, pkg, lim) })
	})
}

// newAdapter returns dragonboat's logger of package pkg, writing to lg
// through lim.
func newAdapter(lg *slog.Logger, pkg string, lim *limiter) *adapter {
	a := &adapter{lg: lg.With("component", "dragonboat", "pkg", pkg), warn: slog.LevelWarn, lim: lim}
	if pkg == "raft" || pkg == "dragonboat" {
		// Elections, leader changes and stale-read notices are
		// logged as warnings by these packages but are routine.
		a.warn = slog.LevelDebug
	}
	return a
}

type adapter struct {
	lg   *slog.Logger
	warn slog.Level // the slog level of dragonboat's warnings
	lim  *limiter
}

func (a *adapter) SetLevel(logger.LogLevel) {}
func (a *adapter) Debugf(format string, args ...any) {
	a.log(slog.LevelDebug-4, format, args)
}
func (a *adapter) Infof(format string, args ...any) { a.log(slog.LevelDebug, format, args) }
func (a *adapter) Warningf(format string, args ...any) {
	a.log(a.warn, format, args)
}
func (a *adapter) Errorf(format string, args ...any) {
	level := slog.LevelError
	if peerChurn[format] {
		level = slog.LevelWarn
	}
	a.log(level, format, args)
}

// Panicf logs and panics, as dragonboat requires: it is called only on a
// broken invariant inside dragonboat.
func (a *adapter) Panicf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	a.lg.Log(context.Background(), slog.LevelError, msg)
	panic(msg)
}

func (a *adapter) log(level slog.Level, format string, args []any) {
	if !a.lg.Enabled(context.Background(), level) {
		return
	}
	a.lim.log(a.lg, level, fmt.Sprintf(format, args...))
}

// StdLogger returns a *log.Logger for libraries such as serf and memberlist
// that write lines prefixed with "[DEBUG]", "[INFO]", "[WARN]" or "[ERR]".
// The prefix picks the slog level; info lines go to debug, as above, and
// serf's notice that it could not re-join the members it knew before a
// restart (routine: the node joins through --join, or is alone) to info.
// Identical lines are rate-limited.
func StdLogger(lg *slog.Logger) *log.Logger {
	return log.New(&lineWriter{lg: lg, lim: newLimiter(time.Now)}, "", 0)
}

type lineWriter struct {
	lg  *slog.Logger
	lim *limiter
}

// rejoinFailed is the line serf writes when none of the members it knew
// before a restart answers.
const rejoinFailed = "[WARN] serf: Failed to re-join any previously known node"

func (w *lineWriter) Write(p []byte) (int, error) {
	line := bytes.TrimSpace(p)
	level := slog.LevelDebug
	for prefix, l := range map[string]slog.Level{"[ERR]": slog.LevelError, "[ERROR]": slog.LevelError, "[WARN]": slog.LevelWarn} {
		if bytes.HasPrefix(line, []byte(prefix)) {
			level = l
			break
		}
	}
	if bytes.Equal(line, []byte(rejoinFailed)) {
		level = slog.LevelInfo
	}
	if w.lg.Enabled(context.Background(), level) {
		w.lim.log(w.lg, level, string(line))
	}
	return len(p), nil
}

// maxTracked bounds the messages a limiter remembers.
const maxTracked = 1024

// limiter drops repeats of identical messages for RepeatInterval. It is
// safe for concurrent use.
type limiter struct {
	now func() time.Time
	mu  sync.Mutex
	// seen holds, by message, until when repeats are dropped and how many
	// were; guarded by mu.
	seen map[string]*repeat
}

type repeat struct {
	until   time.Time
	dropped int
}

func newLimiter(now func() time.Time) *limiter {
	return &limiter{now: now, seen: map[string]*repeat{}}
}

// log writes msg to lg at level unless an identical message was written
// less than RepeatInterval ago; a message written after repeats were
// dropped says how many in the attribute "repeated".
func (l *limiter) log(lg *slog.Logger, level slog.Level, msg string) {
	now := l.now()
	l.mu.Lock()
	r, ok := l.seen[msg]
	if ok && now.Before(r.until) {
		r.dropped++
		l.mu.Unlock()
		return
	}
	dropped := 0
	if ok {
		dropped = r.dropped
	}
	if len(l.seen) >= maxTracked {
		for m, r := range l.seen {
			if !now.Before(r.until) {
				delete(l.seen, m)
			}
		}
		if len(l.seen) >= maxTracked {
			clear(l.seen)
		}
	}
	l.seen[msg] = &repeat{until: now.Add(RepeatInterval)}
	l.mu.Unlock()
	if dropped > 0 {
		lg.Log(context.Background(), level, msg, "repeated", dropped)
		return
	}
	lg.Log(context.Background(), level, msg)
}
