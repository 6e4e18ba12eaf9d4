// Package dblog routes the logs of dragonboat and serf into log/slog.
//
// dragonboat keeps a process-wide logger factory that may be set only once,
// so Install wraps it in a sync.Once: the first caller's logger receives
// dragonboat's logs for the life of the process.
package dblog

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"log/slog"
	"sync"

	"github.com/lni/dragonboat/v4/logger"
)

var once sync.Once

// Install makes lg the destination of dragonboat's logs. Only the first call
// in a process has an effect. dragonboat's info level is chatty (every
// snapshot, every connection), so it is logged at slog's debug level, as are
// the routine election warnings of its raft package; other warnings and
// errors keep their level.
func Install(lg *slog.Logger) {
	once.Do(func() {
		logger.SetLoggerFactory(func(pkg string) logger.ILogger {
			a := &adapter{lg: lg.With("component", "dragonboat", "pkg", pkg), warn: slog.LevelWarn}
			if pkg == "raft" || pkg == "dragonboat" {
				// Elections, leader changes and stale-read notices are
				// logged as warnings by these packages but are routine.
				a.warn = slog.LevelDebug
			}
			return a
		})
	})
}

type adapter struct {
	lg   *slog.Logger
	warn slog.Level // the slog level of dragonboat's warnings
}

func (a *adapter) SetLevel(logger.LogLevel) {}
func (a *adapter) Debugf(format string, args ...any) {
	a.log(slog.LevelDebug-4, format, args)
}
func (a *adapter) Infof(format string, args ...any) { a.log(slog.LevelDebug, format, args) }
func (a *adapter) Warningf(format string, args ...any) {
	a.log(a.warn, format, args)
}
func (a *adapter) Errorf(format string, args ...any) { a.log(slog.LevelError, format, args) }

// Panicf logs and panics, as dragonboat requires: it is called only on a
// broken invariant inside dragonboat.
func (a *adapter) Panicf(format string, args ...any) {
	a.log(slog.LevelError, format, args)
	panic(fmt.Sprintf(format, args...))
}

func (a *adapter) log(level slog.Level, format string, args []any) {
	if !a.lg.Enabled(context.Background(), level) {
		return
	}
	a.lg.Log(context.Background(), level, fmt.Sprintf(format, args...))
}

// StdLogger returns a *log.Logger for libraries such as serf and memberlist
// that write lines prefixed with "[DEBUG]", "[INFO]", "[WARN]" or "[ERR]".
// The prefix picks the slog level; info lines go to debug, as above.
func StdLogger(lg *slog.Logger) *log.Logger {
	return log.New(&lineWriter{lg: lg}, "", 0)
}

type lineWriter struct{ lg *slog.Logger }

func (w *lineWriter) Write(p []byte) (int, error) {
	line := bytes.TrimSpace(p)
	level := slog.LevelDebug
	for prefix, l := range map[string]slog.Level{"[ERR]": slog.LevelError, "[ERROR]": slog.LevelError, "[WARN]": slog.LevelWarn} {
		if bytes.HasPrefix(line, []byte(prefix)) {
			level = l
			break
		}
	}
	if w.lg.Enabled(context.Background(), level) {
		w.lg.Log(context.Background(), level, string(line))
	}
	return len(p), nil
}
