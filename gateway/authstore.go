package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cavedb/cave/acl"
	"github.com/cavedb/cave/auth"
	"github.com/cavedb/cave/node"
	"github.com/cavedb/cave/shard"
)

// MetaStore reads and compare-and-swaps single keys of the meta shard's
// exported namespaces (the access policy, the secrets keyring);
// *node.Node implements it.
type MetaStore interface {
	MetaGet(ctx context.Context, key string, stale bool) (*shard.KeyValue, error)
	MetaSwap(ctx context.Context, key string, value []byte, prev int64) (int64, bool, error)
}

var _ MetaStore = (*node.Node)(nil)

// policyKey is the meta-shard key of the access policy: one JSON document
// (policyDoc) with every user, role and token record. Its mod_revision is
// the policy's version: every change is a write conditional on the
// revision it was based on, so concurrent changes never lose one another,
// and every node reloads the document when the revision moves.
const policyKey = metaAuth + "policy"

// Built-in names created at bootstrap.
const (
	// AdminRole is the role with admin on every key, created at bootstrap
	// and never removable.
	AdminRole = "admin"
	// RootUser is the user bound to AdminRole at bootstrap: a client
	// certificate with this common name, signed by the cluster CA, is the
	// first administrator.
	RootUser = "root"
)

// grantDoc is one grant of a role, as stored.
type grantDoc struct {
	Prefix string     `json:"prefix"`
	Action acl.Action `json:"action"`
}

// policyDoc is the stored access policy. Maps are keyed by name (token
// id); encoding/json writes them sorted, so the document is canonical.
type policyDoc struct {
	Users  map[string]auth.User        `json:"users"`
	Roles  map[string][]grantDoc       `json:"roles"`
	Tokens map[string]auth.TokenRecord `json:"tokens"`
}

// bootstrapPolicy is the policy of a new cluster: the admin role, and root
// bound to it.
func bootstrapPolicy() *policyDoc {
	return &policyDoc{
		Users:  map[string]auth.User{RootUser: {Name: RootUser, Roles: []string{AdminRole}}},
		Roles:  map[string][]grantDoc{AdminRole: {{Prefix: "", Action: acl.Admin}}},
		Tokens: map[string]auth.TokenRecord{},
	}
}

// clone returns a deep copy of d that the caller may change.
func (d *policyDoc) clone() *policyDoc {
	c := &policyDoc{Users: map[string]auth.User{}, Roles: map[string][]grantDoc{}, Tokens: maps.Clone(d.Tokens)}
	for n, u := range d.Users {
		u.Roles = slices.Clone(u.Roles)
		c.Users[n] = u
	}
	for n, g := range d.Roles {
		c.Roles[n] = slices.Clone(g)
	}
	if c.Tokens == nil {
		c.Tokens = map[string]auth.TokenRecord{}
	}
	return c
}

// validate reports every problem with d that would make it unusable.
func (d *policyDoc) validate() error {
	var errs []error
	for n, u := range d.Users {
		if n != u.Name {
			errs = append(errs, fmt.Errorf("user stored as %q is named %q", n, u.Name))
		}
		if err := u.Validate(); err != nil {
			errs = append(errs, err)
		}
		for _, r := range u.Roles {
			if _, ok := d.Roles[r]; !ok {
				errs = append(errs, fmt.Errorf("user %q is bound to unknown role %q", n, r))
			}
		}
	}
	for n := range d.Roles {
		if err := auth.ValidateName(n); err != nil {
			errs = append(errs, fmt.Errorf("role: %w", err))
		}
	}
	for id, t := range d.Tokens {
		if id != t.ID {
			errs = append(errs, fmt.Errorf("token stored as %q has id %q", id, t.ID))
		}
		if err := t.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := d.aclPolicy().Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Users and roles share the Enforcer's one namespace of subjects, in which
// a subject also stands for itself; the prefixes keep a certificate whose
// common name is a role's name from holding that role's grants.
func userSubject(name string) string { return "user:" + name }
func roleSubject(name string) string { return "role:" + name }

// aclPolicy returns d's grants and bindings for the Enforcer.
func (d *policyDoc) aclPolicy() acl.Policy {
	var p acl.Policy
	for _, role := range slices.Sorted(maps.Keys(d.Roles)) {
		for _, g := range d.Roles[role] {
			p.Grants = append(p.Grants, acl.Grant{Subject: roleSubject(role), Prefix: g.Prefix, Action: g.Action})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(d.Users)) {
		for _, r := range d.Users[name].Roles {
			p.Bindings = append(p.Bindings, acl.Binding{User: userSubject(name), Role: roleSubject(r)})
		}
	}
	return p
}

// pruneTokens drops the records of tokens that expired before now: they
// can never authenticate again.
func (d *policyDoc) pruneTokens(now time.Time) {
	for id, t := range d.Tokens {
		if !t.ExpiresAt.IsZero() && t.ExpiresAt.Before(now) {
			delete(d.Tokens, id)
		}
	}
}

// policySnap is one loaded version of the policy. It is never changed
// once published.
type policySnap struct {
	rev int64 // mod_revision of policyKey; 0 before it exists
	doc *policyDoc
}

// Errors of policy changes, mapped to statuses by the Auth service.
var (
	// errPolicyConflict is returned by policyStore.update when concurrent
	// changes kept winning the race for the document.
	errPolicyConflict = errors.New("gateway: the access policy kept changing concurrently")
	// errPolicyMissing is returned by policyStore.update before the policy
	// document has been created at bootstrap.
	errPolicyMissing = errors.New("gateway: the access policy is not created yet")
)

// policyStore keeps this node's copy of the access policy in step with
// the meta shard and changes it there. Checks read the current snapshot
// and the Enforcer without locks; run reloads both when the document's
// revision changes.
//
// It is safe for concurrent use. mu serializes loads that publish a
// snapshot, so that an older one never replaces a newer one.
type policyStore struct {
	meta MetaStore
	enf  *acl.Enforcer
	lg   *slog.Logger

	mu  sync.Mutex
	cur atomic.Pointer[policySnap]
}

func newPolicyStore(meta MetaStore, lg *slog.Logger) (*policyStore, error) {
	enf, err := acl.New()
	if err != nil {
		return nil, err
	}
	p := &policyStore{meta: meta, enf: enf, lg: lg}
	p.cur.Store(&policySnap{doc: &policyDoc{}})
	return p, nil
}

// allowed reports whether subject may perform act on key under the
// current policy.
func (p *policyStore) allowed(subject, key string, act acl.Action) bool {
	return p.enf.Allowed(userSubject(subject), key, act)
}

// tokenLookupTimeout bounds the read of tokenLookup's second chance.
const tokenLookupTimeout = time.Second

// tokenLookup returns the lookup of stored token records for auth.Verify.
// A token unknown to this node's copy of the policy may have been issued
// on another node moments ago, so the lookup then reads the policy once
// through the meta shard's leader and publishes it. Unknown tokens are
// authentication failures, which the caller rate-limits, so the extra
// read cannot be used to flood the meta shard.
func (p *policyStore) tokenLookup(ctx context.Context) func(id string) (auth.TokenRecord, bool) {
	return func(id string) (auth.TokenRecord, bool) {
		if t, ok := p.cur.Load().doc.Tokens[id]; ok {
			return t, true
		}
		ctx, cancel := context.WithTimeout(ctx, tokenLookupTimeout)
		defer cancel()
		s, err := p.read(ctx, false, p.cur.Load())
		if err != nil {
			return auth.TokenRecord{}, false
		}
		if err := p.publish(s); err != nil {
			p.lg.Warn("access policy load failed", "err", err)
		}
		t, ok := s.doc.Tokens[id]
		return t, ok
	}
}

// snapshot returns the current policy.
func (p *policyStore) snapshot() *policySnap { return p.cur.Load() }

// read returns the stored policy: from the local replica when stale,
// linearizably otherwise. An absent document is an empty snapshot; a
// document at the revision of have is have itself.
func (p *policyStore) read(ctx context.Context, stale bool, have *policySnap) (*policySnap, error) {
	kv, err := p.meta.MetaGet(ctx, policyKey, stale)
	if err != nil {
		return nil, err
	}
	if kv == nil {
		return &policySnap{doc: &policyDoc{}}, nil
	}
	if have != nil && kv.ModRevision == have.rev {
		return have, nil
	}
	var d policyDoc
	if err := json.Unmarshal(kv.Value, &d); err != nil {
		return nil, fmt.Errorf("gateway: access policy at revision %d: %w", kv.ModRevision, err)
	}
	if err := d.validate(); err != nil {
		return nil, fmt.Errorf("gateway: access policy at revision %d: %w", kv.ModRevision, err)
	}
	return &policySnap{rev: kv.ModRevision, doc: d.clone()}, nil
}

// publish makes s current unless a newer snapshot already is.
func (p *policyStore) publish(s *policySnap) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.rev <= p.cur.Load().rev {
		return nil
	}
	if err := p.enf.SetPolicy(s.doc.aclPolicy()); err != nil {
		return err
	}
	p.cur.Store(s)
	p.lg.Debug("access policy loaded", "revision", s.rev)
	return nil
}

// refresh loads the stored policy from the local replica and publishes it
// if it is newer. It returns the snapshot it read.
func (p *policyStore) refresh(ctx context.Context) (*policySnap, error) {
	s, err := p.read(ctx, true, p.cur.Load())
	if err != nil {
		return nil, err
	}
	return s, p.publish(s)
}

// maxUpdateAttempts bounds the retries of update on a conflict.
const maxUpdateAttempts = 8

// update changes the stored policy with change, which edits a private copy
// of the current document and returns an error to abandon the change. It
// retries on a concurrent change, reading the document again each time,
// and publishes the result locally before it returns, so the caller's next
// request on this node sees it. Errors: change's own; errPolicyMissing;
// errPolicyConflict; the meta shard's (node.ErrUnknownOutcome means the
// change may or may not have been applied).
func (p *policyStore) update(ctx context.Context, change func(d *policyDoc) error) (*policyDoc, error) {
	for range maxUpdateAttempts {
		cur, err := p.read(ctx, false, p.cur.Load())
		if err != nil {
			return nil, err
		}
		if cur.rev == 0 {
			return nil, errPolicyMissing
		}
		d := cur.doc.clone()
		d.pruneTokens(time.Now())
		if err := change(d); err != nil {
			return nil, err
		}
		if err := d.validate(); err != nil {
			return nil, fmt.Errorf("gateway: refusing an invalid access policy: %w", err)
		}
		rev, ok, err := p.write(ctx, d, cur.rev)
		if err != nil {
			return nil, err
		}
		if ok {
			return d, p.publish(&policySnap{rev: rev, doc: d.clone()})
		}
	}
	return nil, errPolicyConflict
}

// write stores d if the document is still at revision prev (0: absent),
// and returns its new revision, or false when the condition failed.
func (p *policyStore) write(ctx context.Context, d *policyDoc, prev int64) (int64, bool, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return 0, false, fmt.Errorf("gateway: encode access policy: %w", err)
	}
	return p.meta.MetaSwap(ctx, policyKey, b, prev)
}

// bootstrap creates the bootstrap policy unless a policy exists. It
// reports whether this call created it.
func (p *policyStore) bootstrap(ctx context.Context) (bool, error) {
	d := bootstrapPolicy()
	rev, ok, err := p.write(ctx, d, 0)
	if err != nil || !ok {
		return false, err
	}
	return true, p.publish(&policySnap{rev: rev, doc: d})
}

// reloadInterval is how often run polls the local meta replica for a new
// policy revision, so that a change reaches every node within a second.
const reloadInterval = 250 * time.Millisecond

// run keeps the policy current until ctx ends: it polls the local meta
// replica every reloadInterval, and creates the bootstrap policy when the
// cluster has none. created is called once if this node created it.
func (p *policyStore) run(ctx context.Context, created func()) {
	t := time.NewTicker(reloadInterval)
	defer t.Stop()
	failing := false
	for {
		s, err := p.refresh(ctx)
		if err == nil && s.rev == 0 {
			var made bool
			if made, err = p.bootstrap(ctx); made {
				created()
			}
		}
		// Until a policy has loaded the node is starting or joining, and a
		// meta shard without a leader yet is expected, not worth a warning.
		starting := p.cur.Load().rev == 0 && errors.Is(err, node.ErrNotReady)
		switch {
		case err != nil && !failing && !starting && ctx.Err() == nil && !errors.Is(err, node.ErrNotInitialized) && !errors.Is(err, node.ErrNoReplica):
			p.lg.Warn("access policy reload failed; keeping the current policy", "err", err)
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
