package secrets

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// MetaNamespace is the namespace of the meta shard that secrets keeps its
// state under.
const MetaNamespace = "secrets/"

// keyringKey is the Store key of the cluster's wrapped keyring.
const keyringKey = MetaNamespace + "keyring"

// Store reads and compare-and-swaps single keys (the gateway backs it with
// the meta shard); the Manager keeps its one key under MetaNamespace.
// Implementations must be safe for concurrent use.
type Store interface {
	// Get returns the value stored under key and its mod revision, or
	// found=false and no error when the key is absent. A stale read may
	// miss the latest Swap; a linearizable one sees every Swap that
	// returned before it started.
	Get(ctx context.Context, key string, stale bool) (value []byte, rev int64, found bool, err error)
	// Swap stores value under key only if the key's mod revision is still
	// prev (0: only if the key is absent). It returns the new revision and
	// true when it stored value, false when the revision had moved on (and
	// nothing was stored). An error means the outcome is unknown.
	Swap(ctx context.Context, key string, value []byte, prev int64) (rev int64, ok bool, err error)
}

// ManagerConfig configures a Manager.
type ManagerConfig struct {
	// Store holds the cluster's wrapped keyring. Required.
	Store Store
	// KEK returns the key-encryption key (--kek-file, or DeriveDevKEK in
	// dev mode). It is called whenever the stored keyring is opened, so it
	// may depend on state that appears after start, like the cluster id.
	// Required.
	KEK func(ctx context.Context) ([]byte, error)
	// Refresh is how old the cached keyring may be before Encrypt rereads
	// the store, so that a rotation made on another node reaches this
	// node's writes within about Refresh. Default 1s; must be > 0.
	Refresh time.Duration
	// Logger receives keyring creation, rotation and reload failures.
	// Required.
	Logger *slog.Logger
}

// DefaultManagerConfig returns a ManagerConfig with the optional fields
// set.
func DefaultManagerConfig() ManagerConfig { return ManagerConfig{Refresh: time.Second} }

// Validate reports every problem with c.
func (c ManagerConfig) Validate() error {
	var errs []error
	if c.Store == nil || c.KEK == nil || c.Logger == nil {
		errs = append(errs, errors.New("secrets: Store, KEK and Logger must be set"))
	}
	if c.Refresh <= 0 {
		errs = append(errs, fmt.Errorf("secrets: Refresh must be > 0, got %s", c.Refresh))
	}
	return errors.Join(errs...)
}

// rotateAttempts bounds Rotate's compare-and-swap retries.
const rotateAttempts = 10

// Manager is a node's view of the cluster keyring: it creates the keyring
// on first use (once per cluster, whichever node comes first), caches the
// opened keyring, rereads it when it is older than Refresh or when an
// envelope names a data key it does not hold, and rotates it.
//
// A Manager is safe for concurrent use and starts no goroutines.
type Manager struct {
	cfg ManagerConfig
	mu  sync.Mutex             // serialises loads, creation and rotation; held across store I/O
	cur atomic.Pointer[cached] // the last keyring opened; replaced, never changed

	wrongKEKLogged atomic.Bool // the KEK is fixed for the process: say so once
}

// cached is an opened keyring, the store revision it came from and when it
// was last checked against the store.
type cached struct {
	kr      *Keyring
	rev     int64
	checked time.Time
}

// NewManager returns a Manager for cfg. It does no I/O.
func NewManager(cfg ManagerConfig) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Manager{cfg: cfg}, nil
}

// Encrypt seals plaintext under the cluster's current data key with aad
// (the gateway passes the value's key), creating the cluster keyring if
// none exists yet. Errors are those of OpenKeyring (ErrWrongKEK: this
// node's KEK is not the cluster's) and of the store; none contains
// plaintext.
func (m *Manager) Encrypt(ctx context.Context, plaintext, aad []byte) ([]byte, error) {
	c, err := m.keyring(ctx, false)
	if err != nil {
		return nil, err
	}
	return c.kr.Encrypt(plaintext, aad)
}

// Decrypt opens an envelope sealed by any node's Encrypt with the same
// aad. When the envelope's data key is unknown it rereads the store once
// (a rotation elsewhere) before giving up with ErrUnknownKey. ErrCorrupt
// means envelope is not an intact envelope for aad.
func (m *Manager) Decrypt(ctx context.Context, envelope, aad []byte) ([]byte, error) {
	c, err := m.keyring(ctx, false)
	if err != nil {
		return nil, err
	}
	pt, err := c.kr.Decrypt(envelope, aad)
	if !errors.Is(err, ErrUnknownKey) {
		return pt, err
	}
	if c, err = m.keyring(ctx, true); err != nil {
		return nil, err
	}
	return c.kr.Decrypt(envelope, aad)
}

// Rotate adds a data key to the stored keyring and makes it current for
// new writes on every node; envelopes under older keys stay readable. It
// returns the new key id and the number of data keys. It retries when
// another rotation wins the compare-and-swap, and fails with ErrConflict
// after rotateAttempts tries. A store error means the outcome is unknown.
func (m *Manager) Rotate(ctx context.Context) (KeyID, int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for range rotateAttempts {
		c, err := m.loadLocked(ctx, false)
		if err != nil {
			return 0, 0, err
		}
		// Rotate a private copy: the cached keyring must not change before
		// the store does.
		kr, err := m.open(ctx, c.kr.Wrapped())
		if err != nil {
			return 0, 0, err
		}
		id, err := kr.Rotate(rand.Reader)
		if err != nil {
			return 0, 0, err
		}
		w := kr.Wrapped()
		rev, ok, err := m.cfg.Store.Swap(ctx, keyringKey, w.Marshal(), c.rev)
		if err != nil {
			return 0, 0, fmt.Errorf("secrets: store rotated keyring: %w", err)
		}
		if ok {
			m.cfg.Logger.Info("secrets keyring rotated", "key_id", id, "keys", len(w.DataKeys))
			m.cur.Store(&cached{kr: kr, rev: rev, checked: time.Now()})
			return id, len(w.DataKeys), nil
		}
	}
	return 0, 0, ErrConflict
}

// Status returns the cluster's current data key id and how many data keys
// the keyring holds, read linearizably from the store (creating the
// keyring if none exists).
func (m *Manager) Status(ctx context.Context) (KeyID, int, error) {
	c, err := m.keyring(ctx, true)
	if err != nil {
		return 0, 0, err
	}
	w := c.kr.Wrapped()
	return w.Current, len(w.DataKeys), nil
}

// keyring returns the cached keyring when it was checked less than
// Refresh ago, else rereads the store: linearizably when fresh is set,
// otherwise from the local (possibly stale) replica.
func (m *Manager) keyring(ctx context.Context, fresh bool) (*cached, error) {
	if c := m.cur.Load(); !fresh && c != nil && time.Since(c.checked) < m.cfg.Refresh {
		return c, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.cur.Load(); !fresh && c != nil && time.Since(c.checked) < m.cfg.Refresh {
		return c, nil // another caller reloaded while this one waited
	}
	c, err := m.loadLocked(ctx, !fresh)
	if err != nil {
		if old := m.cur.Load(); old != nil && !fresh {
			// Keep serving with the keys already known, and try again
			// after Refresh rather than on every request.
			m.cfg.Logger.Warn("secrets keyring reload failed; using the cached keyring", "err", err)
			m.cur.Store(&cached{kr: old.kr, rev: old.rev, checked: time.Now()})
			return old, nil
		}
		return nil, err
	}
	return c, nil
}

// loadLocked reads the stored keyring, opens it when its revision differs
// from the cached one, or creates it when none is stored, and caches the
// result. A stale read that finds nothing is repeated linearizably before
// a keyring is created. The caller holds m.mu.
func (m *Manager) loadLocked(ctx context.Context, stale bool) (*cached, error) {
	for {
		data, rev, found, err := m.cfg.Store.Get(ctx, keyringKey, stale)
		if err != nil {
			return nil, fmt.Errorf("secrets: load keyring: %w", err)
		}
		if !found && stale {
			stale = false
			continue
		}
		if !found {
			if err := m.create(ctx); err != nil {
				return nil, err
			}
			continue // created here or by another node: read what won
		}
		now := time.Now()
		if old := m.cur.Load(); old != nil && old.rev == rev {
			c := &cached{kr: old.kr, rev: rev, checked: now}
			m.cur.Store(c)
			return c, nil
		}
		w, err := UnmarshalWrapped(data)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadKeyring, err)
		}
		kr, err := m.open(ctx, w)
		if errors.Is(err, ErrCorrupt) {
			return nil, fmt.Errorf("%w: %w", ErrBadKeyring, err)
		}
		if err != nil {
			return nil, err
		}
		c := &cached{kr: kr, rev: rev, checked: now}
		m.cur.Store(c)
		return c, nil
	}
}

// create stores a new keyring unless one is already stored; losing that
// race to another node is not an error.
func (m *Manager) create(ctx context.Context) error {
	kek, err := m.cfg.KEK(ctx)
	if err != nil {
		return fmt.Errorf("secrets: key-encryption key: %w", err)
	}
	kr, err := NewKeyring(kek, rand.Reader)
	if err != nil {
		return err
	}
	_, ok, err := m.cfg.Store.Swap(ctx, keyringKey, kr.Wrapped().Marshal(), 0)
	if err != nil {
		return fmt.Errorf("secrets: store new keyring: %w", err)
	}
	if ok {
		m.cfg.Logger.Info("secrets keyring created", "key_id", kr.Current())
	}
	return nil
}

// open unwraps w with the KEK. A wrong KEK is logged as an error, once,
// since only the operator can fix it (by restarting with the right one).
func (m *Manager) open(ctx context.Context, w WrappedKeyring) (*Keyring, error) {
	kek, err := m.cfg.KEK(ctx)
	if err != nil {
		return nil, fmt.Errorf("secrets: key-encryption key: %w", err)
	}
	kr, err := OpenKeyring(kek, w)
	if errors.Is(err, ErrWrongKEK) && m.wrongKEKLogged.CompareAndSwap(false, true) {
		m.cfg.Logger.Error("the key-encryption key does not open the cluster keyring; start the node with the --kek-file the cluster was bootstrapped with", "err", err)
	}
	return kr, err
}
