package auth

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/cavedb/cave/acl"
	"github.com/cavedb/cave/acl/action"
)

// MetaNamespace is the namespace of the meta shard that the access policy
// lives under.
const MetaNamespace = "auth/"

// policyKey is the Store key of the access policy: one JSON document
// (policyDoc) with every user, role and token record. Its mod revision is
// the policy's version: every change is a write conditional on the
// revision it was based on, so concurrent changes never lose one another,
// and every node reloads the document when the revision moves.
const policyKey = MetaNamespace + "policy"

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

// Token lifetimes accepted by TokenTTL.
const (
	// DefaultTokenTTL is the lifetime of a token issued without one.
	DefaultTokenTTL = 24 * time.Hour
	// MaxTokenTTL is the longest lifetime a token may be issued with.
	MaxTokenTTL = 365 * 24 * time.Hour
)

// TokenTTL returns the lifetime of a token requested for seconds seconds:
// DefaultTokenTTL for 0, else seconds, which must be 1..MaxTokenTTL. Any
// other value is an error matching ErrInvalidTTL.
func TokenTTL(seconds int64) (time.Duration, error) {
	maxSeconds := int64(MaxTokenTTL / time.Second)
	switch {
	case seconds == 0:
		return DefaultTokenTTL, nil
	case seconds < 0 || seconds > maxSeconds:
		return 0, fmt.Errorf("%w: must be 1..%d seconds (or 0 for %s), got %d", ErrInvalidTTL, maxSeconds, DefaultTokenTTL, seconds)
	}
	return time.Duration(seconds) * time.Second, nil
}

// Grant is one grant of a role: Action on every key that starts with
// Prefix. The empty prefix covers every key and, with admin, the
// administration calls.
type Grant struct {
	Prefix string        `json:"prefix"`
	Action action.Action `json:"action"`
}

// validate checks g's action and that its prefix, a key prefix, holds no
// '*'. The prefix's syntax as a key is the caller's to check. Errors match
// ErrInvalidGrant.
func (g Grant) validate() error {
	if !g.Action.Valid() {
		return fmt.Errorf("%w: %w, got %q", ErrInvalidGrant, action.ErrInvalid, g.Action)
	}
	if strings.Contains(g.Prefix, "*") {
		return fmt.Errorf("%w: prefix %q must not contain '*'", ErrInvalidGrant, g.Prefix)
	}
	return nil
}

// Role is a role and its grants, in the order they were granted.
type Role struct {
	Name   string
	Grants []Grant
}

// adminGrant is the grant of AdminRole that can never be revoked.
var adminGrant = Grant{Prefix: "", Action: action.Admin}

// policyDoc is the stored access policy. Maps are keyed by name (token
// id); encoding/json writes them sorted, so the document is canonical.
type policyDoc struct {
	Users  map[string]User        `json:"users"`
	Roles  map[string][]Grant     `json:"roles"`
	Tokens map[string]TokenRecord `json:"tokens"`
}

// bootstrapPolicy is the policy of a new cluster: the admin role, and root
// bound to it.
func bootstrapPolicy() *policyDoc {
	return &policyDoc{
		Users:  map[string]User{RootUser: {Name: RootUser, Roles: []string{AdminRole}}},
		Roles:  map[string][]Grant{AdminRole: {adminGrant}},
		Tokens: map[string]TokenRecord{},
	}
}

// clone returns a deep copy of d that the caller may change.
func (d *policyDoc) clone() *policyDoc {
	c := &policyDoc{Users: map[string]User{}, Roles: map[string][]Grant{}, Tokens: maps.Clone(d.Tokens)}
	for n, u := range d.Users {
		u.Roles = slices.Clone(u.Roles)
		c.Users[n] = u
	}
	for n, g := range d.Roles {
		c.Roles[n] = slices.Clone(g)
	}
	if c.Tokens == nil {
		c.Tokens = map[string]TokenRecord{}
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
		if err := ValidateName(n); err != nil {
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
