package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cavedb/cave/acl"
	"github.com/cavedb/cave/acl/action"
)

// Store reads and compare-and-swaps single keys of the meta shard (the
// gateway backs it with the node's MetaGet and MetaSwap). The Manager
// keeps its one key under MetaNamespace. Implementations must be safe for
// concurrent use.
type Store interface {
	// Get returns the value and mod revision of key, or found=false and no
	// error when it is absent: from the local replica when stale (it may
	// miss the latest Swap), else linearizably (it sees every Swap that
	// returned before it started).
	Get(ctx context.Context, key string, stale bool) (value []byte, rev int64, found bool, err error)
	// Swap stores value under key if the key's mod revision is still prev
	// (0: the key must be absent) and returns the new revision; ok=false,
	// with nothing stored, when the revision has moved on. An error may
	// mean that the outcome is unknown.
	Swap(ctx context.Context, key string, value []byte, prev int64) (rev int64, ok bool, err error)
}

// ManagerConfig configures a Manager.
type ManagerConfig struct {
	// Store holds the access policy. Required.
	Store Store
	// Logger receives reload failures. Required.
	Logger *slog.Logger
	// Now is the clock of token issue, expiry and pruning. Default
	// time.Now; required.
	Now func() time.Time
	// Expected reports whether a failed reload is to be expected, such as
	// those of a node that is starting or joining its cluster, so that Run
	// does not warn about it; loaded tells whether a policy has loaded
	// since start. Nil: every failure is warned about.
	Expected func(err error, loaded bool) bool
}

// DefaultManagerConfig returns a ManagerConfig with the optional fields
// set.
func DefaultManagerConfig() ManagerConfig { return ManagerConfig{Now: time.Now} }

// Validate reports every problem with c, matching ErrInvalidConfig.
func (c ManagerConfig) Validate() error {
	if c.Store == nil || c.Logger == nil || c.Now == nil {
		return fmt.Errorf("%w: Store, Logger and Now must be set", ErrInvalidConfig)
	}
	return nil
}

// snapshot is one loaded version of the policy. It is never changed once
// published.
type snapshot struct {
	rev int64 // mod revision of policyKey; 0 before it exists
	doc *policyDoc
}

// Manager keeps a node's copy of the access policy in step with the Store
// and changes the policy there. Checks (Allowed, Verify) read the current
// snapshot and the Enforcer without locks; Run reloads both when the
// document's revision moves.
//
// It is safe for concurrent use. mu serializes loads that publish a
// snapshot, so that an older one never replaces a newer one.
type Manager struct {
	cfg ManagerConfig
	enf *acl.Enforcer

	mu  sync.Mutex
	cur atomic.Pointer[snapshot]
}

// NewManager returns a Manager of cfg whose policy is empty, which denies
// everything, until Run (or Refresh) loads the stored one. It does no I/O.
func NewManager(cfg ManagerConfig) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	enf, err := acl.New()
	if err != nil {
		return nil, err
	}
	m := &Manager{cfg: cfg, enf: enf}
	m.cur.Store(&snapshot{doc: &policyDoc{}})
	return m, nil
}

// Loaded reports whether a stored policy has been loaded. Before, every
// check is denied.
func (m *Manager) Loaded() bool { return m.cur.Load().rev != 0 }

// Allowed reports whether the user subject may perform act on key under
// this node's copy of the policy. Roles hold no grants of their own as
// subjects: a subject named like a role is just an unknown user.
func (m *Manager) Allowed(subject, key string, act action.Action) bool {
	return m.enf.Allowed(userSubject(subject), key, act)
}

// AllowedAdmin reports whether the user subject may make administration
// calls: whether it holds admin on the empty prefix.
func (m *Manager) AllowedAdmin(subject string) bool {
	return m.Allowed(subject, acl.AdminObject, action.Admin)
}

// Roles returns the roles the user subject is bound to under this node's
// copy of the policy, nil for an unknown user. The caller owns the slice.
func (m *Manager) Roles(subject string) []string {
	return slices.Clone(m.cur.Load().doc.Users[subject].Roles)
}

// tokenLookupTimeout bounds the read of the token lookup's second chance.
const tokenLookupTimeout = time.Second

// Verify checks a presented bearer token at the time of the Manager's
// clock and returns the user it authenticates, with auth.Verify's errors.
// A token unknown to this node's copy of the policy may have been issued
// on another node moments ago, so Verify then reads the policy once
// linearizably and publishes it. Unknown tokens are authentication
// failures, which the caller rate-limits, so the extra read cannot be used
// to flood the Store.
func (m *Manager) Verify(ctx context.Context, plaintext string) (string, error) {
	lookup := func(id string) (TokenRecord, bool) {
		if t, ok := m.cur.Load().doc.Tokens[id]; ok {
			return t, true
		}
		ctx, cancel := context.WithTimeout(ctx, tokenLookupTimeout)
		defer cancel()
		s, err := m.read(ctx, false)
		if err != nil {
			return TokenRecord{}, false
		}
		if err := m.publish(s); err != nil {
			m.cfg.Logger.Warn("access policy load failed", "err", err)
		}
		t, ok := s.doc.Tokens[id]
		return t, ok
	}
	return Verify(plaintext, lookup, m.cfg.Now())
}

// read returns the stored policy: from the local replica when stale,
// linearizably otherwise. An absent document is an empty snapshot; a
// document at the current snapshot's revision is that snapshot. A stored
// document that does not decode or validate is ErrInvalidPolicy.
func (m *Manager) read(ctx context.Context, stale bool) (*snapshot, error) {
	have := m.cur.Load()
	b, rev, found, err := m.cfg.Store.Get(ctx, policyKey, stale)
	if err != nil {
		return nil, err
	}
	if !found {
		return &snapshot{doc: &policyDoc{}}, nil
	}
	if rev == have.rev {
		return have, nil
	}
	var d policyDoc
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("%w at revision %d: %w", ErrInvalidPolicy, rev, err)
	}
	if err := d.validate(); err != nil {
		return nil, fmt.Errorf("%w at revision %d: %w", ErrInvalidPolicy, rev, err)
	}
	return &snapshot{rev: rev, doc: d.clone()}, nil
}

// publish makes s current unless a newer snapshot already is.
func (m *Manager) publish(s *snapshot) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s.rev <= m.cur.Load().rev {
		return nil
	}
	if err := m.enf.SetPolicy(s.doc.aclPolicy()); err != nil {
		return err
	}
	m.cur.Store(s)
	m.cfg.Logger.Debug("access policy loaded", "revision", s.rev)
	return nil
}

// Refresh loads the stored policy from the local replica and makes it
// current if it is newer than this node's copy. It reports whether a
// policy is stored at all. Errors are the Store's and ErrInvalidPolicy;
// the current copy then stays.
func (m *Manager) Refresh(ctx context.Context) (bool, error) {
	s, err := m.read(ctx, true)
	if err != nil {
		return false, err
	}
	return s.rev != 0, m.publish(s)
}

// maxUpdateAttempts bounds the retries of update on a conflict.
const maxUpdateAttempts = 8

// update changes the stored policy with change, which edits a private copy
// of the current document and returns an error to abandon the change. It
// prunes expired tokens, retries on a concurrent change, reading the
// document again each time, and publishes the result locally before it
// returns, so that the caller's next request on this node sees it. It
// returns a copy of the document it stored. Errors: change's own;
// ErrPolicyMissing; ErrPolicyConflict; ErrInvalidPolicy; the Store's (an
// unknown outcome means the change may or may not have been applied).
func (m *Manager) update(ctx context.Context, change func(d *policyDoc) error) (*policyDoc, error) {
	for range maxUpdateAttempts {
		cur, err := m.read(ctx, false)
		if err != nil {
			return nil, err
		}
		if cur.rev == 0 {
			return nil, ErrPolicyMissing
		}
		d := cur.doc.clone()
		d.pruneTokens(m.cfg.Now())
		if err := change(d); err != nil {
			return nil, err
		}
		if err := d.validate(); err != nil {
			return nil, fmt.Errorf("%w: refusing to store it: %w", ErrInvalidPolicy, err)
		}
		rev, ok, err := m.write(ctx, d, cur.rev)
		if err != nil {
			return nil, err
		}
		if ok {
			return d, m.publish(&snapshot{rev: rev, doc: d.clone()})
		}
	}
	return nil, ErrPolicyConflict
}

// write stores d if the document is still at revision prev (0: absent),
// and returns its new revision, or false when the condition failed.
func (m *Manager) write(ctx context.Context, d *policyDoc, prev int64) (int64, bool, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return 0, false, fmt.Errorf("auth: encode access policy: %w", err)
	}
	return m.cfg.Store.Swap(ctx, policyKey, b, prev)
}

// Bootstrap stores the bootstrap policy (AdminRole with admin on every
// key, RootUser bound to it) unless a policy is stored, and publishes it.
// It reports whether this call created it. Errors are the Store's.
func (m *Manager) Bootstrap(ctx context.Context) (bool, error) {
	d := bootstrapPolicy()
	rev, ok, err := m.write(ctx, d, 0)
	if err != nil || !ok {
		return false, err
	}
	return true, m.publish(&snapshot{rev: rev, doc: d})
}

// reloadInterval is how often Run polls the local replica for a new
// policy revision, so that a change reaches every node within a second.
const reloadInterval = 250 * time.Millisecond

// Run keeps the policy current until ctx ends: it polls the local replica
// every reloadInterval, and creates the bootstrap policy when the cluster
// has none. created is called once if this node created it. A failed
// reload keeps the current policy and is warned about once, unless
// ManagerConfig.Expected says it is to be expected.
func (m *Manager) Run(ctx context.Context, created func()) {
	t := time.NewTicker(reloadInterval)
	defer t.Stop()
	failing := false
	for {
		stored, err := m.Refresh(ctx)
		if err == nil && !stored {
			var made bool
			if made, err = m.Bootstrap(ctx); made {
				created()
			}
		}
		expected := err != nil && m.cfg.Expected != nil && m.cfg.Expected(err, m.Loaded())
		switch {
		case err != nil && !failing && !expected && ctx.Err() == nil:
			m.cfg.Logger.Warn("access policy reload failed; keeping the current policy", "err", err)
			failing = true
		case err == nil:
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
