package tlsconfig

import (
	"context"
	"time"
)

// DefaultWatchInterval is the polling interval Watch uses when given zero.
const DefaultWatchInterval = 10 * time.Second

// Watch checks the three files every interval and calls Reload when their
// contents differ from the material in use. It blocks until ctx is done;
// run it on its own goroutine and cancel ctx to stop it. interval <= 0
// means DefaultWatchInterval.
//
// Watch compares content hashes, not modification times, so it sees a
// change however the files were replaced (rewritten in place, renamed over,
// or swapped behind a symlink as Kubernetes does) and ignores a touch. An
// update caught half way (a new certificate next to the old key) fails to
// load, keeps the old material, and is tried again at the next tick until
// the files agree. Failures are logged at Warn, once for each distinct
// error; success is logged by Reload.
func (s *Source) Watch(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultWatchInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	w := watcher{s: s}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.check()
	}
}

// watcher is what Watch keeps between two checks.
type watcher struct {
	s       *Source
	lastErr string // the last failure logged, to log each only once
}

// check is one tick of Watch: it reloads when the files changed, and logs
// a failure at Warn unless it is the one logged last. A success forgets
// the last failure, so that it is logged again if it comes back.
func (w *watcher) check() {
	err := w.s.reloadIfChanged()
	switch {
	case err == nil:
		w.lastErr = ""
	case err.Error() != w.lastErr:
		w.lastErr = err.Error()
		w.s.lg.Warn("tls reload failed; keeping the previous certificate", "err", err)
	}
}

// reloadIfChanged reloads when the files' contents differ from the
// current material's.
func (s *Source) reloadIfChanged() error {
	_, _, _, sum, err := s.readFiles()
	if err != nil {
		return err
	}
	if sum == s.cur.Load().sum {
		return nil
	}
	return s.Reload()
}
