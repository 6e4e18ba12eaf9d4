// Package acl decides who may do what on which keys: role-based access
// control with key-prefix grants, evaluated by casbin.
//
// A Policy is plain data (grants of an action, as package action names
// them, on a key prefix to a role or user, and bindings of users to
// roles). An Enforcer evaluates the current policy; SetPolicy replaces it
// as a whole, which is how package auth applies the policy stored in the
// meta shard. The package does no I/O.
package acl

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/casbin/casbin/v2"
	"github.com/casbin/casbin/v2/model"

	"github.com/cavedb/cave/acl/action"
)

// AdminObject is the object of administration calls (cluster operations,
// user and policy management); only an Admin grant on the empty prefix
// covers it.
const AdminObject = "*admin*"

// Grant allows Subject (a role or a user) to perform Action on every key
// that starts with Prefix. The empty prefix covers every key and, with
// Admin, the administration calls.
type Grant struct {
	Subject string
	Prefix  string
	Action  action.Action
}

// Binding makes User a member of Role.
type Binding struct {
	User string
	Role string
}

// Policy is the complete access policy.
type Policy struct {
	Grants   []Grant
	Bindings []Binding
}

// ErrInvalidPolicy is returned by SetPolicy and Validate for a policy that
// cannot be evaluated as written.
var ErrInvalidPolicy = errors.New("acl: invalid policy")

// Validate reports every problem in p at once.
func (p Policy) Validate() error {
	var errs []error
	for _, g := range p.Grants {
		switch {
		case g.Subject == "":
			errs = append(errs, fmt.Errorf("%w: grant of %s on %q has no subject", ErrInvalidPolicy, g.Action, g.Prefix))
		case !g.Action.Valid():
			errs = append(errs, fmt.Errorf("%w: %w, got %q", ErrInvalidPolicy, action.ErrInvalid, g.Action))
		case strings.Contains(g.Prefix, "*"):
			errs = append(errs, fmt.Errorf("%w: prefix %q must not contain '*'", ErrInvalidPolicy, g.Prefix))
		}
	}
	for _, b := range p.Bindings {
		if b.User == "" || b.Role == "" {
			errs = append(errs, fmt.Errorf("%w: binding %q -> %q needs a user and a role", ErrInvalidPolicy, b.User, b.Role))
		}
	}
	return errors.Join(errs...)
}

// The casbin model: a request (subject, object, action) is allowed when a
// grant to the subject or one of its roles matches the object by prefix and
// has the same action or admin.
const modelText = `
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = g(r.sub, p.sub) && keyMatch(r.obj, p.obj) && (r.act == p.act || p.act == "admin")
`

// Enforcer answers access questions against the current policy. It is safe
// for concurrent use; checks never block on SetPolicy.
type Enforcer struct {
	cur atomic.Pointer[casbin.Enforcer]
}

// New returns an Enforcer with an empty policy, which denies everything.
func New() (*Enforcer, error) {
	e := &Enforcer{}
	if err := e.SetPolicy(Policy{}); err != nil {
		return nil, err
	}
	return e, nil
}

// SetPolicy replaces the policy. On error the previous policy stays in
// force.
func (e *Enforcer) SetPolicy(p Policy) error {
	if err := p.Validate(); err != nil {
		return err
	}
	m, err := model.NewModelFromString(modelText)
	if err != nil {
		return fmt.Errorf("acl: model: %w", err)
	}
	ce, err := casbin.NewEnforcer(m)
	if err != nil {
		return fmt.Errorf("acl: enforcer: %w", err)
	}
	for _, g := range p.Grants {
		if _, err := ce.AddPolicy(g.Subject, object(g.Prefix), string(g.Action)); err != nil {
			return fmt.Errorf("acl: add grant: %w", err)
		}
	}
	for _, b := range p.Bindings {
		if _, err := ce.AddGroupingPolicy(b.User, b.Role); err != nil {
			return fmt.Errorf("acl: add binding: %w", err)
		}
	}
	e.cur.Store(ce)
	return nil
}

// object turns a grant's prefix into a casbin keyMatch pattern.
func object(prefix string) string { return prefix + "*" }

// Allowed reports whether subject may perform act on key (or on
// AdminObject for administration calls). An unknown subject, an empty
// subject and an invalid action are denied.
func (e *Enforcer) Allowed(subject, key string, act action.Action) bool {
	if subject == "" || !act.Valid() {
		return false
	}
	ok, err := e.cur.Load().Enforce(subject, key, string(act))
	return err == nil && ok
}
