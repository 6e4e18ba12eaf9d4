package shard

import (
	"io"
	"sync/atomic"
	"time"

	sm "github.com/lni/dragonboat/v4/statemachine"
)

// throttledWriter passes writes to w at no more than rate bytes per
// second on average since its first write, sleeping between writes when
// ahead. A close of done ends a sleep early with sm.ErrSnapshotStopped.
type throttledWriter struct {
	w       io.Writer
	rate    uint64
	done    <-chan struct{}
	start   time.Time
	written uint64
}

// throttle returns w limited to rate bytes per second, or w itself when
// rate is 0 (no limit).
func throttle(w io.Writer, rate uint64, done <-chan struct{}) io.Writer {
	if rate == 0 {
		return w
	}
	return &throttledWriter{w: w, rate: rate, done: done}
}

func (t *throttledWriter) Write(p []byte) (int, error) {
	if t.start.IsZero() {
		t.start = time.Now()
	}
	// Sleep until the bytes written so far, these included, fit the rate.
	due := time.Duration(float64(t.written+uint64(len(p))) / float64(t.rate) * float64(time.Second))
	if wait := due - time.Since(t.start); wait > 0 {
		timer := time.NewTimer(wait)
		select {
		case <-t.done:
			timer.Stop()
			return 0, sm.ErrSnapshotStopped
		case <-timer.C:
		}
	}
	n, err := t.w.Write(p)
	t.written += uint64(n)
	return n, err
}

// countingWriter adds the bytes written through it to n.
type countingWriter struct {
	w io.Writer
	n *atomic.Uint64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	k, err := c.w.Write(p)
	c.n.Add(uint64(k))
	return k, err
}

// countingReader adds the bytes read through it to n.
type countingReader struct {
	r io.Reader
	n *atomic.Uint64
}

func (c *countingReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	c.n.Add(uint64(k))
	return k, err
}
