// Package metatest is an in-memory store of single keys with
// compare-and-swap on mod revisions: the semantics of the meta shard's
// MetaGet and MetaSwap, in one process, for the unit tests of the
// packages that keep state there (auth, secrets). It satisfies their
// Store interfaces.
package metatest

import (
	"bytes"
	"context"
	"sync"
)

// Store holds keys in memory. Every write takes the next revision of the
// whole store, as in a shard, and that revision becomes the key's mod
// revision. It is safe for concurrent use.
type Store struct {
	mu         sync.Mutex
	rev        int64
	kv         map[string]entry
	gets       int
	fail       error
	beforeSwap func()
}

type entry struct {
	value []byte
	rev   int64
}

// New returns an empty store at revision 0.
func New() *Store { return &Store{kv: map[string]entry{}} }

// Get returns a copy of key's value and its mod revision, or found=false
// when key is absent. stale is ignored: the store has one copy. It fails
// with the error set by Fail.
func (s *Store) Get(_ context.Context, key string, _ bool) (value []byte, rev int64, found bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gets++
	if s.fail != nil {
		return nil, 0, false, s.fail
	}
	e, ok := s.kv[key]
	if !ok {
		return nil, 0, false, nil
	}
	return bytes.Clone(e.value), e.rev, true, nil
}

// Swap stores a copy of value under key if key's mod revision is still
// prev (0: key is absent) and returns the new revision; ok is false, and
// nothing is written, when it has moved on. The hook set by BeforeSwap
// runs first, outside the store's lock; then the error set by Fail, if
// any, is returned.
func (s *Store) Swap(_ context.Context, key string, value []byte, prev int64) (rev int64, ok bool, err error) {
	s.mu.Lock()
	hook := s.beforeSwap
	s.mu.Unlock()
	if hook != nil {
		hook()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return 0, false, s.fail
	}
	if s.kv[key].rev != prev {
		return 0, false, nil
	}
	return s.putLocked(key, value), true, nil
}

// Put stores value under key unconditionally, as another node's write
// would, and returns its revision.
func (s *Store) Put(key string, value []byte) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.putLocked(key, value)
}

func (s *Store) putLocked(key string, value []byte) int64 {
	s.rev++
	s.kv[key] = entry{value: bytes.Clone(value), rev: s.rev}
	return s.rev
}

// Touch writes key's current value again, so that its mod revision moves
// on without a change, as a concurrent writer's would. It returns the new
// revision.
func (s *Store) Touch(key string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.putLocked(key, s.kv[key].value)
}

// Rev returns the revision of the store's latest write; 0 before any.
func (s *Store) Rev() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rev
}

// Gets returns how many Get calls the store has served, failed ones
// included.
func (s *Store) Gets() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gets
}

// Fail makes every later Get and Swap return err; nil heals the store.
func (s *Store) Fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = err
}

// BeforeSwap sets a hook that every later Swap runs before it compares
// revisions, to let a test interleave another writer; nil removes it.
func (s *Store) BeforeSwap(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.beforeSwap = f
}
