package auth

import (
	"container/list"
	"errors"
	"fmt"
	"sync"
	"time"
)

// LimiterConfig configures a Limiter. Fields map to the proposed flags
// named in each comment.
type LimiterConfig struct {
	// Burst is how many failures a source may make back to back before it
	// is refused (--auth-failure-burst). Default 5; must be >= 1.
	Burst int
	// Refill is how long it takes a source to earn back one failure
	// (--auth-failure-refill); Burst failures per Burst*Refill is the
	// sustained rate. Default 12s, i.e. 5 per minute; must be > 0.
	Refill time.Duration
	// MaxSources is how many sources the limiter remembers at most
	// (--auth-failure-max-sources); beyond it the source that failed
	// least recently is forgotten. Default 10000; must be >= 1.
	MaxSources int
}

// DefaultLimiterConfig returns 5 failures per minute per source, bursting
// to 5, over at most 10000 sources.
func DefaultLimiterConfig() LimiterConfig {
	return LimiterConfig{Burst: 5, Refill: 12 * time.Second, MaxSources: 10000}
}

// Validate reports every problem at once, each matching ErrInvalidConfig.
// It never changes c.
func (c LimiterConfig) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if c.Burst < 1 {
		bad("--auth-failure-burst must be >= 1, got %d", c.Burst)
	}
	if c.Refill <= 0 {
		bad("--auth-failure-refill must be > 0, got %s", c.Refill)
	}
	if c.MaxSources < 1 {
		bad("--auth-failure-max-sources must be >= 1, got %d", c.MaxSources)
	}
	return errors.Join(errs...)
}

// Limiter rate-limits authentication failures per source (normally the
// client's IP address; the source is an opaque string to the Limiter).
// Each source has a token bucket of Burst failures that refills one
// failure per Refill. The caller asks Allow before checking credentials
// and refuses the request (HTTP 429, gRPC ResourceExhausted) without
// checking them when it says no; it calls Fail after each failed check.
// Successes change nothing, so interleaving logins to one's own account
// does not buy guesses at another.
//
// Time is a parameter: the Limiter never reads the clock. If now moves
// backwards, a source's state is read as of the latest time it saw.
//
// Memory is bounded by MaxSources. A source whose bucket has refilled
// completely is forgotten, since it is indistinguishable from a new one;
// when the table is full, the source that failed least recently is
// forgotten, which resets its bucket.
//
// A Limiter is safe for concurrent use.
type Limiter struct {
	cfg    LimiterConfig
	window time.Duration // Burst * Refill: a full bucket's worth of failures

	mu      sync.Mutex               // guards the fields below
	sources map[string]*list.Element // values are *bucket
	lru     list.List                // most recent failure at the front
}

// bucket is one source's state, kept as the time at which its bucket will
// be full again (the generic cell rate algorithm): each failure pushes
// full by Refill, never further than now + window.
type bucket struct {
	source string
	full   time.Time // when the bucket will hold Burst failures again
	last   time.Time // latest time seen for this source; orders the lru
}

// NewLimiter returns a Limiter that remembers no source yet, or the error
// of cfg.Validate.
func NewLimiter(cfg LimiterConfig) (*Limiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Limiter{
		cfg:     cfg,
		window:  time.Duration(cfg.Burst) * cfg.Refill,
		sources: make(map[string]*list.Element),
	}, nil
}

// Allow reports whether source may make an authentication attempt at now,
// that is, whether it has a failure left to spend. When it may not,
// retryAfter is how long until it may (for a Retry-After header); when it
// may, retryAfter is 0. Allow does not record anything.
func (l *Limiter) Allow(source string, now time.Time) (ok bool, retryAfter time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expire(now)
	e, found := l.sources[source]
	if !found {
		return true, 0
	}
	b := e.Value.(*bucket)
	now = latest(now, b.last)
	// debt is how much refill time the source owes; one more failure must
	// still fit in the window.
	debt := b.full.Sub(now)
	if wait := debt + l.cfg.Refill - l.window; wait > 0 {
		return false, wait
	}
	return true, 0
}

// Fail records a failed authentication attempt by source at now.
func (l *Limiter) Fail(source string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expire(now)
	if e, found := l.sources[source]; found {
		b := e.Value.(*bucket)
		now = latest(now, b.last)
		b.full = latest(b.full, now).Add(l.cfg.Refill)
		if limit := now.Add(l.window); b.full.After(limit) {
			b.full = limit
		}
		b.last = now
		l.lru.MoveToFront(e)
		return
	}
	for len(l.sources) >= l.cfg.MaxSources {
		l.remove(l.lru.Back())
	}
	b := &bucket{source: source, full: now.Add(l.cfg.Refill), last: now}
	l.sources[source] = l.lru.PushFront(b)
}

// Len returns how many sources the limiter remembers.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.sources)
}

// expire forgets sources whose bucket is full at now. A bucket is full at
// the latest one window after its last failure, so walking from the least
// recent failure and stopping at the first source failed within a window
// costs only the entries removed. l.mu is held.
func (l *Limiter) expire(now time.Time) {
	for e := l.lru.Back(); e != nil; e = l.lru.Back() {
		if b := e.Value.(*bucket); now.Sub(b.last) < l.window {
			return
		}
		l.remove(e)
	}
}

// remove forgets the source in e. l.mu is held.
func (l *Limiter) remove(e *list.Element) {
	delete(l.sources, e.Value.(*bucket).source)
	l.lru.Remove(e)
}

// latest returns the later of a and b.
func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
