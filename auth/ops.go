package auth

import (
	"context"
	"crypto/rand"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// The operations below change or list the stored access policy. Each
// validates its arguments before it touches the Store: bad input is an
// error matching ErrInvalidName, ErrInvalidGrant or ErrInvalidToken, and
// changes nothing. A change names what it needs: ErrNotFound when that
// does not exist, ErrExists when what it adds does. Changes also fail with
// update's errors: ErrPolicyMissing before Bootstrap, ErrPolicyConflict,
// and the Store's, where an unknown outcome means the change may or may
// not have been applied. Lists read the policy linearizably, so that they
// show every change acknowledged before them on any node.

// checkName validates a user or role name; what names it in the error.
func checkName(what, name string) error {
	if err := ValidateName(name); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func userNotFound(name string) error { return fmt.Errorf("%w: no user %q", ErrNotFound, name) }
func roleNotFound(name string) error { return fmt.Errorf("%w: no role %q", ErrNotFound, name) }

// AddUser adds the user name bound to roles, which must exist; a role
// named twice is bound once. It returns the user as stored.
func (m *Manager) AddUser(ctx context.Context, name string, roles []string) (User, error) {
	if err := checkName("user name", name); err != nil {
		return User{}, err
	}
	u := User{Name: name}
	for _, r := range roles {
		if err := checkName("role name", r); err != nil {
			return User{}, err
		}
		if !slices.Contains(u.Roles, r) {
			u.Roles = append(u.Roles, r)
		}
	}
	_, err := m.update(ctx, func(d *policyDoc) error {
		if _, ok := d.Users[name]; ok {
			return fmt.Errorf("%w: user %q", ErrExists, name)
		}
		for _, r := range u.Roles {
			if _, ok := d.Roles[r]; !ok {
				return roleNotFound(r)
			}
		}
		d.Users[name] = u
		return nil
	})
	if err != nil {
		return User{}, err
	}
	return u, nil
}

// RemoveUser removes the user name and every token issued to it.
func (m *Manager) RemoveUser(ctx context.Context, name string) error {
	if err := checkName("user name", name); err != nil {
		return err
	}
	_, err := m.update(ctx, func(d *policyDoc) error {
		if _, ok := d.Users[name]; !ok {
			return userNotFound(name)
		}
		delete(d.Users, name)
		for id, t := range d.Tokens {
			if t.User == name {
				delete(d.Tokens, id)
			}
		}
		return nil
	})
	return err
}

// ListUsers returns every user, sorted by name. The caller owns the
// result.
func (m *Manager) ListUsers(ctx context.Context) ([]User, error) {
	s, err := m.read(ctx, false)
	if err != nil {
		return nil, err
	}
	return sortedValues(s.doc.Users, func(_ string, u User) User {
		u.Roles = slices.Clone(u.Roles)
		return u
	}), nil
}

// sortedValues returns conv of each name and value of byName, sorted by
// name.
func sortedValues[V, T any](byName map[string]V, conv func(name string, v V) T) []T {
	out := make([]T, 0, len(byName))
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		out = append(out, conv(name, byName[name]))
	}
	return out
}

// AddRole adds the role name, without grants.
func (m *Manager) AddRole(ctx context.Context, name string) (Role, error) {
	if err := checkName("role name", name); err != nil {
		return Role{}, err
	}
	_, err := m.update(ctx, func(d *policyDoc) error {
		if _, ok := d.Roles[name]; ok {
			return fmt.Errorf("%w: role %q", ErrExists, name)
		}
		d.Roles[name] = nil
		return nil
	})
	if err != nil {
		return Role{}, err
	}
	return Role{Name: name}, nil
}

// RemoveRole removes the role name and unbinds every user from it.
// AdminRole is ErrBuiltIn.
func (m *Manager) RemoveRole(ctx context.Context, name string) error {
	if err := checkName("role name", name); err != nil {
		return err
	}
	if name == AdminRole {
		return fmt.Errorf("%w: the role %q cannot be removed", ErrBuiltIn, AdminRole)
	}
	_, err := m.update(ctx, func(d *policyDoc) error {
		if _, ok := d.Roles[name]; !ok {
			return roleNotFound(name)
		}
		delete(d.Roles, name)
		for n, u := range d.Users {
			u.Roles = slices.DeleteFunc(u.Roles, func(r string) bool { return r == name })
			d.Users[n] = u
		}
		return nil
	})
	return err
}

// ListRoles returns every role with its grants, sorted by name. The
// caller owns the result.
func (m *Manager) ListRoles(ctx context.Context) ([]Role, error) {
	s, err := m.read(ctx, false)
	if err != nil {
		return nil, err
	}
	return sortedValues(s.doc.Roles, func(name string, grants []Grant) Role {
		return Role{Name: name, Grants: slices.Clone(grants)}
	}), nil
}

// changeGrants replaces the grants of role, which must exist, with what
// edit returns for them, after checking role and g, and returns the role
// as stored.
func (m *Manager) changeGrants(ctx context.Context, role string, g Grant, edit func(grants []Grant) ([]Grant, error)) (Role, error) {
	if err := checkName("role name", role); err != nil {
		return Role{}, err
	}
	if err := g.validate(); err != nil {
		return Role{}, err
	}
	d, err := m.update(ctx, func(d *policyDoc) error {
		grants, ok := d.Roles[role]
		if !ok {
			return roleNotFound(role)
		}
		grants, err := edit(grants)
		if err != nil {
			return err
		}
		d.Roles[role] = grants
		return nil
	})
	if err != nil {
		return Role{}, err
	}
	return Role{Name: role, Grants: d.Roles[role]}, nil
}

// Grant adds g to role; a grant the role holds already is not added
// twice. It returns the role as stored.
func (m *Manager) Grant(ctx context.Context, role string, g Grant) (Role, error) {
	return m.changeGrants(ctx, role, g, func(grants []Grant) ([]Grant, error) {
		if !slices.Contains(grants, g) {
			grants = append(grants, g)
		}
		return grants, nil
	})
}

// Revoke removes g from role, which must hold it, and returns the role as
// stored. AdminRole's admin on every key is ErrBuiltIn.
func (m *Manager) Revoke(ctx context.Context, role string, g Grant) (Role, error) {
	if role == AdminRole && g == adminGrant {
		return Role{}, fmt.Errorf("%w: the role %q keeps admin on every key", ErrBuiltIn, AdminRole)
	}
	return m.changeGrants(ctx, role, g, func(grants []Grant) ([]Grant, error) {
		i := slices.Index(grants, g)
		if i < 0 {
			return nil, fmt.Errorf("%w: role %q has no grant of %s on %q", ErrNotFound, role, g.Action, g.Prefix)
		}
		return slices.Delete(grants, i, i+1), nil
	})
}

// changeRoles replaces the roles of user, which must exist, with what
// edit returns for them, after checking user and role, and returns the
// user as stored. edit may consult the document's roles.
func (m *Manager) changeRoles(ctx context.Context, user, role string, edit func(d *policyDoc, roles []string) ([]string, error)) (User, error) {
	if err := checkName("user name", user); err != nil {
		return User{}, err
	}
	if err := checkName("role name", role); err != nil {
		return User{}, err
	}
	d, err := m.update(ctx, func(d *policyDoc) error {
		u, ok := d.Users[user]
		if !ok {
			return userNotFound(user)
		}
		roles, err := edit(d, u.Roles)
		if err != nil {
			return err
		}
		u.Roles = roles
		d.Users[user] = u
		return nil
	})
	if err != nil {
		return User{}, err
	}
	return d.Users[user], nil
}

// BindRole binds user to role; both must exist. It returns the user as
// stored.
func (m *Manager) BindRole(ctx context.Context, user, role string) (User, error) {
	return m.changeRoles(ctx, user, role, func(d *policyDoc, roles []string) ([]string, error) {
		if _, ok := d.Roles[role]; !ok {
			return nil, roleNotFound(role)
		}
		if !slices.Contains(roles, role) {
			roles = append(roles, role)
		}
		return roles, nil
	})
}

// UnbindRole unbinds user from role, which it must be bound to, and
// returns the user as stored.
func (m *Manager) UnbindRole(ctx context.Context, user, role string) (User, error) {
	return m.changeRoles(ctx, user, role, func(_ *policyDoc, roles []string) ([]string, error) {
		i := slices.Index(roles, role)
		if i < 0 {
			return nil, fmt.Errorf("%w: user %q is not bound to role %q", ErrNotFound, user, role)
		}
		return slices.Delete(roles, i, i+1), nil
	})
}

// IssueToken issues a bearer token for user, which must exist, valid for
// ttl from the Manager's clock, and stores its record. It returns the
// plaintext, which is never stored, and the record. The caller chooses
// ttl (TokenTTL checks a requested one).
func (m *Manager) IssueToken(ctx context.Context, user string, ttl time.Duration) (string, TokenRecord, error) {
	if err := checkName("user name", user); err != nil {
		return "", TokenRecord{}, err
	}
	plain, rec, err := NewToken(rand.Reader, user, m.cfg.Now().Add(ttl))
	if err != nil {
		return "", TokenRecord{}, err
	}
	_, err = m.update(ctx, func(d *policyDoc) error {
		if _, ok := d.Users[user]; !ok {
			return userNotFound(user)
		}
		if _, ok := d.Tokens[rec.ID]; ok {
			return fmt.Errorf("auth: token id %s issued twice", rec.ID)
		}
		d.Tokens[rec.ID] = rec
		return nil
	})
	if err != nil {
		return "", TokenRecord{}, err
	}
	return plain, rec, nil
}

// RevokeToken revokes the token with id at once, on every node within a
// reload. An id that is not TokenIDChars long is ErrInvalidToken.
func (m *Manager) RevokeToken(ctx context.Context, id string) error {
	if len(id) != TokenIDChars {
		return fmt.Errorf("%w: id must be %d characters, got %d", ErrInvalidToken, TokenIDChars, len(id))
	}
	_, err := m.update(ctx, func(d *policyDoc) error {
		t, ok := d.Tokens[id]
		if !ok {
			return fmt.Errorf("%w: no token %q", ErrNotFound, id)
		}
		t.Revoked = true
		d.Tokens[id] = t
		return nil
	})
	return err
}

// ListTokens returns the records of the tokens that have not expired at
// the Manager's clock, revoked ones included, sorted by user and id. The
// caller owns the result.
func (m *Manager) ListTokens(ctx context.Context) ([]TokenRecord, error) {
	s, err := m.read(ctx, false)
	if err != nil {
		return nil, err
	}
	now := m.cfg.Now()
	var out []TokenRecord
	for _, t := range s.doc.Tokens {
		if t.ExpiresAt.IsZero() || t.ExpiresAt.After(now) {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b TokenRecord) int {
		return strings.Compare(a.User+"\x00"+a.ID, b.User+"\x00"+b.ID)
	})
	return out, nil
}
