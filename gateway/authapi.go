package gateway

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cavedb/cave/acl"
	"github.com/cavedb/cave/auth"
	authv1 "github.com/cavedb/cave/proto/cave/auth/v1"
)

// Token lifetimes accepted by IssueToken.
const (
	defaultTokenTTL = 24 * time.Hour
	maxTokenTTL     = 365 * 24 * time.Hour
)

// authService implements cave.auth.v1.Auth over the policy in the meta
// shard. Its callers were authorized by the interceptor (admin, or an
// identity for WhoAmI); it validates every argument itself.
type authService struct {
	authv1.UnimplementedAuthServer
	z  *authz
	lg *slog.Logger
}

// policyError is the status of a failed policy change: the change's own
// status, or the mapping of the storage error.
func policyError(lg *slog.Logger, err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, errPolicyConflict):
		return status.Error(codes.Aborted, "the access policy changed concurrently too often; retry")
	case errors.Is(err, errPolicyMissing):
		return status.Error(codes.Unavailable, "the access policy is not created yet (the cluster is starting); retry shortly")
	}
	return toStatus(lg, err)
}

// change applies edit to the stored policy and maps its errors.
func (s *authService) change(ctx context.Context, edit func(d *policyDoc) error) (*policyDoc, error) {
	d, err := s.z.policy.update(ctx, edit)
	if err != nil {
		return nil, policyError(s.lg, err)
	}
	return d, nil
}

func checkName(what, name string) error {
	if err := auth.ValidateName(name); err != nil {
		return status.Errorf(codes.InvalidArgument, "%s: %v", what, err)
	}
	return nil
}

func checkAction(a string) (acl.Action, error) {
	act := acl.Action(a)
	if !act.Valid() {
		return "", status.Errorf(codes.InvalidArgument, "action must be read, write or admin, got %q", a)
	}
	return act, nil
}

// checkGrantPrefix validates a grant's prefix: empty (every key) or a key
// prefix as List accepts it, without '*'.
func checkGrantPrefix(p string) error {
	if p == "" {
		return nil
	}
	if strings.Contains(p, "*") {
		return status.Errorf(codes.InvalidArgument, "prefix %q must not contain '*'", p)
	}
	if err := validatePrefix(p); err != nil {
		return status.Errorf(codes.InvalidArgument, "prefix: %v", err)
	}
	return nil
}

func userNotFound(name string) error {
	return status.Errorf(codes.NotFound, "no user %q", name)
}

func roleNotFound(name string) error {
	return status.Errorf(codes.NotFound, "no role %q", name)
}

func userMsg(u auth.User) *authv1.User {
	return &authv1.User{Name: u.Name, Roles: slices.Clone(u.Roles)}
}

func roleMsg(name string, grants []grantDoc) *authv1.Role {
	r := &authv1.Role{Name: name}
	for _, g := range grants {
		r.Grants = append(r.Grants, &authv1.RoleGrant{Prefix: g.Prefix, Action: string(g.Action)})
	}
	return r
}

// WhoAmI implements authv1.AuthServer.
func (s *authService) WhoAmI(ctx context.Context, _ *authv1.WhoAmIRequest) (*authv1.WhoAmIResponse, error) {
	id, _ := identityFrom(ctx)
	out := &authv1.WhoAmIResponse{Subject: id.subject, Method: id.via, AclEnabled: s.z.enabled}
	if u, ok := s.z.policy.snapshot().doc.Users[id.subject]; ok {
		out.Roles = slices.Clone(u.Roles)
	}
	return out, nil
}

// AddUser implements authv1.AuthServer.
func (s *authService) AddUser(ctx context.Context, req *authv1.AddUserRequest) (*authv1.AddUserResponse, error) {
	if err := checkName("user name", req.Name); err != nil {
		return nil, err
	}
	for _, r := range req.Roles {
		if err := checkName("role name", r); err != nil {
			return nil, err
		}
	}
	u := auth.User{Name: req.Name}
	for _, r := range req.Roles {
		if !slices.Contains(u.Roles, r) {
			u.Roles = append(u.Roles, r)
		}
	}
	_, err := s.change(ctx, func(d *policyDoc) error {
		if _, ok := d.Users[req.Name]; ok {
			return status.Errorf(codes.AlreadyExists, "user %q exists", req.Name)
		}
		for _, r := range u.Roles {
			if _, ok := d.Roles[r]; !ok {
				return roleNotFound(r)
			}
		}
		d.Users[req.Name] = u
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &authv1.AddUserResponse{User: userMsg(u)}, nil
}

// RemoveUser implements authv1.AuthServer.
func (s *authService) RemoveUser(ctx context.Context, req *authv1.RemoveUserRequest) (*authv1.RemoveUserResponse, error) {
	if err := checkName("user name", req.Name); err != nil {
		return nil, err
	}
	_, err := s.change(ctx, func(d *policyDoc) error {
		if _, ok := d.Users[req.Name]; !ok {
			return userNotFound(req.Name)
		}
		delete(d.Users, req.Name)
		for id, t := range d.Tokens {
			if t.User == req.Name {
				delete(d.Tokens, id)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &authv1.RemoveUserResponse{}, nil
}

// current returns the stored policy, read linearizably, so that a list
// shows every change acknowledged before it on any node.
func (s *authService) current(ctx context.Context) (*policyDoc, error) {
	snap, err := s.z.policy.read(ctx, false, s.z.policy.snapshot())
	if err != nil {
		return nil, policyError(s.lg, err)
	}
	return snap.doc, nil
}

// ListUsers implements authv1.AuthServer.
func (s *authService) ListUsers(ctx context.Context, _ *authv1.ListUsersRequest) (*authv1.ListUsersResponse, error) {
	d, err := s.current(ctx)
	if err != nil {
		return nil, err
	}
	out := &authv1.ListUsersResponse{}
	for _, name := range slices.Sorted(maps.Keys(d.Users)) {
		out.Users = append(out.Users, userMsg(d.Users[name]))
	}
	return out, nil
}

// AddRole implements authv1.AuthServer.
func (s *authService) AddRole(ctx context.Context, req *authv1.AddRoleRequest) (*authv1.AddRoleResponse, error) {
	if err := checkName("role name", req.Name); err != nil {
		return nil, err
	}
	_, err := s.change(ctx, func(d *policyDoc) error {
		if _, ok := d.Roles[req.Name]; ok {
			return status.Errorf(codes.AlreadyExists, "role %q exists", req.Name)
		}
		d.Roles[req.Name] = nil
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &authv1.AddRoleResponse{Role: roleMsg(req.Name, nil)}, nil
}

// RemoveRole implements authv1.AuthServer.
func (s *authService) RemoveRole(ctx context.Context, req *authv1.RemoveRoleRequest) (*authv1.RemoveRoleResponse, error) {
	if err := checkName("role name", req.Name); err != nil {
		return nil, err
	}
	if req.Name == AdminRole {
		return nil, status.Errorf(codes.FailedPrecondition, "the built-in role %q cannot be removed", AdminRole)
	}
	_, err := s.change(ctx, func(d *policyDoc) error {
		if _, ok := d.Roles[req.Name]; !ok {
			return roleNotFound(req.Name)
		}
		delete(d.Roles, req.Name)
		for name, u := range d.Users {
			u.Roles = slices.DeleteFunc(u.Roles, func(r string) bool { return r == req.Name })
			d.Users[name] = u
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &authv1.RemoveRoleResponse{}, nil
}

// ListRoles implements authv1.AuthServer.
func (s *authService) ListRoles(ctx context.Context, _ *authv1.ListRolesRequest) (*authv1.ListRolesResponse, error) {
	d, err := s.current(ctx)
	if err != nil {
		return nil, err
	}
	out := &authv1.ListRolesResponse{}
	for _, name := range slices.Sorted(maps.Keys(d.Roles)) {
		out.Roles = append(out.Roles, roleMsg(name, d.Roles[name]))
	}
	return out, nil
}

// grantArgs validates the role, prefix and action of Grant and Revoke.
func grantArgs(role, prefix, action string) (grantDoc, error) {
	if err := checkName("role name", role); err != nil {
		return grantDoc{}, err
	}
	if err := checkGrantPrefix(prefix); err != nil {
		return grantDoc{}, err
	}
	act, err := checkAction(action)
	if err != nil {
		return grantDoc{}, err
	}
	return grantDoc{Prefix: prefix, Action: act}, nil
}

// Grant implements authv1.AuthServer.
func (s *authService) Grant(ctx context.Context, req *authv1.GrantRequest) (*authv1.GrantResponse, error) {
	g, err := grantArgs(req.Role, req.Prefix, req.Action)
	if err != nil {
		return nil, err
	}
	d, err := s.change(ctx, func(d *policyDoc) error {
		grants, ok := d.Roles[req.Role]
		if !ok {
			return roleNotFound(req.Role)
		}
		if !slices.Contains(grants, g) {
			d.Roles[req.Role] = append(grants, g)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &authv1.GrantResponse{Role: roleMsg(req.Role, d.Roles[req.Role])}, nil
}

// Revoke implements authv1.AuthServer.
func (s *authService) Revoke(ctx context.Context, req *authv1.RevokeRequest) (*authv1.RevokeResponse, error) {
	g, err := grantArgs(req.Role, req.Prefix, req.Action)
	if err != nil {
		return nil, err
	}
	if req.Role == AdminRole && g == (grantDoc{Prefix: "", Action: acl.Admin}) {
		return nil, status.Errorf(codes.FailedPrecondition, "the built-in role %q keeps admin on every key", AdminRole)
	}
	d, err := s.change(ctx, func(d *policyDoc) error {
		grants, ok := d.Roles[req.Role]
		if !ok {
			return roleNotFound(req.Role)
		}
		i := slices.Index(grants, g)
		if i < 0 {
			return status.Errorf(codes.NotFound, "role %q has no grant of %s on %q", req.Role, g.Action, g.Prefix)
		}
		d.Roles[req.Role] = slices.Delete(grants, i, i+1)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &authv1.RevokeResponse{Role: roleMsg(req.Role, d.Roles[req.Role])}, nil
}

// bindArgs validates the user and role of BindRole and UnbindRole.
func bindArgs(user, role string) error {
	if err := checkName("user name", user); err != nil {
		return err
	}
	return checkName("role name", role)
}

// BindRole implements authv1.AuthServer.
func (s *authService) BindRole(ctx context.Context, req *authv1.BindRoleRequest) (*authv1.BindRoleResponse, error) {
	if err := bindArgs(req.User, req.Role); err != nil {
		return nil, err
	}
	d, err := s.change(ctx, func(d *policyDoc) error {
		u, ok := d.Users[req.User]
		if !ok {
			return userNotFound(req.User)
		}
		if _, ok := d.Roles[req.Role]; !ok {
			return roleNotFound(req.Role)
		}
		if !slices.Contains(u.Roles, req.Role) {
			u.Roles = append(u.Roles, req.Role)
			d.Users[req.User] = u
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &authv1.BindRoleResponse{User: userMsg(d.Users[req.User])}, nil
}

// UnbindRole implements authv1.AuthServer.
func (s *authService) UnbindRole(ctx context.Context, req *authv1.UnbindRoleRequest) (*authv1.UnbindRoleResponse, error) {
	if err := bindArgs(req.User, req.Role); err != nil {
		return nil, err
	}
	d, err := s.change(ctx, func(d *policyDoc) error {
		u, ok := d.Users[req.User]
		if !ok {
			return userNotFound(req.User)
		}
		i := slices.Index(u.Roles, req.Role)
		if i < 0 {
			return status.Errorf(codes.NotFound, "user %q is not bound to role %q", req.User, req.Role)
		}
		u.Roles = slices.Delete(u.Roles, i, i+1)
		d.Users[req.User] = u
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &authv1.UnbindRoleResponse{User: userMsg(d.Users[req.User])}, nil
}

// IssueToken implements authv1.AuthServer.
func (s *authService) IssueToken(ctx context.Context, req *authv1.IssueTokenRequest) (*authv1.IssueTokenResponse, error) {
	if err := checkName("user name", req.User); err != nil {
		return nil, err
	}
	ttl := defaultTokenTTL
	if req.TtlSeconds != 0 {
		if req.TtlSeconds < 0 || req.TtlSeconds > int64(maxTokenTTL/time.Second) {
			return nil, status.Errorf(codes.InvalidArgument, "ttl_seconds must be 1..%d (or 0 for %s), got %d", int64(maxTokenTTL/time.Second), defaultTokenTTL, req.TtlSeconds)
		}
		ttl = time.Duration(req.TtlSeconds) * time.Second
	}
	plain, rec, err := s.z.policy.issueToken(ctx, req.User, ttl)
	if err != nil {
		return nil, policyError(s.lg, err)
	}
	return &authv1.IssueTokenResponse{Token: plain, Id: rec.ID, ExpiresAt: rec.ExpiresAt.UTC().Format(time.RFC3339)}, nil
}

// issueToken creates a token for user, which must exist, valid for ttl,
// and stores its record. It returns the plaintext, which is never stored,
// and the record. An unknown user is a NotFound status.
func (p *policyStore) issueToken(ctx context.Context, user string, ttl time.Duration) (string, auth.TokenRecord, error) {
	plain, rec, err := auth.NewToken(rand.Reader, user, time.Now().Add(ttl))
	if err != nil {
		return "", auth.TokenRecord{}, err
	}
	id := rec.ID
	_, err = p.update(ctx, func(d *policyDoc) error {
		if _, ok := d.Users[user]; !ok {
			return userNotFound(user)
		}
		if _, ok := d.Tokens[id]; ok {
			return fmt.Errorf("gateway: token id %s issued twice", id)
		}
		d.Tokens[id] = rec
		return nil
	})
	if err != nil {
		return "", auth.TokenRecord{}, err
	}
	return plain, rec, nil
}

// RevokeToken implements authv1.AuthServer.
func (s *authService) RevokeToken(ctx context.Context, req *authv1.RevokeTokenRequest) (*authv1.RevokeTokenResponse, error) {
	if len(req.Id) != auth.TokenIDChars {
		return nil, status.Errorf(codes.InvalidArgument, "token id must be %d characters, got %d", auth.TokenIDChars, len(req.Id))
	}
	_, err := s.change(ctx, func(d *policyDoc) error {
		t, ok := d.Tokens[req.Id]
		if !ok {
			return status.Errorf(codes.NotFound, "no token %q", req.Id)
		}
		t.Revoked = true
		d.Tokens[req.Id] = t
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &authv1.RevokeTokenResponse{}, nil
}

// ListTokens implements authv1.AuthServer.
func (s *authService) ListTokens(ctx context.Context, _ *authv1.ListTokensRequest) (*authv1.ListTokensResponse, error) {
	d, err := s.current(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	out := &authv1.ListTokensResponse{}
	for _, t := range d.Tokens {
		if t.ExpiresAt.IsZero() || t.ExpiresAt.After(now) {
			out.Tokens = append(out.Tokens, &authv1.Token{Id: t.ID, User: t.User, ExpiresAt: t.ExpiresAt.UTC().Format(time.RFC3339), Revoked: t.Revoked})
		}
	}
	slices.SortFunc(out.Tokens, func(a, b *authv1.Token) int {
		return strings.Compare(a.User+"\x00"+a.Id, b.User+"\x00"+b.Id)
	})
	return out, nil
}

// IssueToken issues a bearer token for user, which must exist, valid for
// ttl, without an access check. It is for the process that runs the node
// (tests; an operator's tooling), which holds the node's keys anyway.
// Errors are gRPC statuses as Auth.IssueToken returns them: NotFound for
// an unknown user, Unavailable before the policy is created at bootstrap.
func (s *Server) IssueToken(ctx context.Context, user string, ttl time.Duration) (string, error) {
	plain, _, err := s.authz.policy.issueToken(ctx, user, ttl)
	if err != nil {
		return "", policyError(s.cfg.Logger, err)
	}
	return plain, nil
}
