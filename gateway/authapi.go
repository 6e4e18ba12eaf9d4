package gateway

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cavedb/cave/acl/action"
	"github.com/cavedb/cave/auth"
	authv1 "github.com/cavedb/cave/proto/cave/auth/v1"
)

// authService implements cave.auth.v1.Auth over the access policy that
// auth.Manager keeps. Its callers were authorized by the interceptor
// (admin, or an identity for WhoAmI). It converts requests to auth calls,
// which validate every argument, and their errors to statuses (toStatus).
type authService struct {
	authv1.UnimplementedAuthServer
	z  *authz
	lg *slog.Logger
}

func userMsg(u auth.User) *authv1.User {
	return &authv1.User{Name: u.Name, Roles: slices.Clone(u.Roles)}
}

func roleMsg(r auth.Role) *authv1.Role {
	m := &authv1.Role{Name: r.Name}
	for _, g := range r.Grants {
		m.Grants = append(m.Grants, &authv1.RoleGrant{Prefix: g.Prefix, Action: string(g.Action)})
	}
	return m
}

// WhoAmI implements authv1.AuthServer.
func (s *authService) WhoAmI(ctx context.Context, _ *authv1.WhoAmIRequest) (*authv1.WhoAmIResponse, error) {
	id, _ := identityFrom(ctx)
	return &authv1.WhoAmIResponse{Subject: id.subject, Method: id.via, AclEnabled: s.z.enabled, Roles: s.z.policy.Roles(id.subject)}, nil
}

// AddUser implements authv1.AuthServer.
func (s *authService) AddUser(ctx context.Context, req *authv1.AddUserRequest) (*authv1.AddUserResponse, error) {
	u, err := s.z.policy.AddUser(ctx, req.Name, req.Roles)
	if err != nil {
		return nil, toStatus(s.lg, err)
	}
	return &authv1.AddUserResponse{User: userMsg(u)}, nil
}

// RemoveUser implements authv1.AuthServer.
func (s *authService) RemoveUser(ctx context.Context, req *authv1.RemoveUserRequest) (*authv1.RemoveUserResponse, error) {
	if err := s.z.policy.RemoveUser(ctx, req.Name); err != nil {
		return nil, toStatus(s.lg, err)
	}
	return &authv1.RemoveUserResponse{}, nil
}

// ListUsers implements authv1.AuthServer.
func (s *authService) ListUsers(ctx context.Context, _ *authv1.ListUsersRequest) (*authv1.ListUsersResponse, error) {
	users, err := s.z.policy.ListUsers(ctx)
	if err != nil {
		return nil, toStatus(s.lg, err)
	}
	out := &authv1.ListUsersResponse{}
	for _, u := range users {
		out.Users = append(out.Users, userMsg(u))
	}
	return out, nil
}

// AddRole implements authv1.AuthServer.
func (s *authService) AddRole(ctx context.Context, req *authv1.AddRoleRequest) (*authv1.AddRoleResponse, error) {
	r, err := s.z.policy.AddRole(ctx, req.Name)
	if err != nil {
		return nil, toStatus(s.lg, err)
	}
	return &authv1.AddRoleResponse{Role: roleMsg(r)}, nil
}

// RemoveRole implements authv1.AuthServer.
func (s *authService) RemoveRole(ctx context.Context, req *authv1.RemoveRoleRequest) (*authv1.RemoveRoleResponse, error) {
	if err := s.z.policy.RemoveRole(ctx, req.Name); err != nil {
		return nil, toStatus(s.lg, err)
	}
	return &authv1.RemoveRoleResponse{}, nil
}

// ListRoles implements authv1.AuthServer.
func (s *authService) ListRoles(ctx context.Context, _ *authv1.ListRolesRequest) (*authv1.ListRolesResponse, error) {
	roles, err := s.z.policy.ListRoles(ctx)
	if err != nil {
		return nil, toStatus(s.lg, err)
	}
	out := &authv1.ListRolesResponse{}
	for _, r := range roles {
		out.Roles = append(out.Roles, roleMsg(r))
	}
	return out, nil
}

// grantOf returns the grant that Grant and Revoke name, after checking
// its prefix as a key prefix (auth checks the rest).
func grantOf(prefix, act string) (auth.Grant, error) {
	if err := validatePrefix(prefix); err != nil {
		return auth.Grant{}, status.Errorf(codes.InvalidArgument, "prefix: %v", err)
	}
	return auth.Grant{Prefix: prefix, Action: action.Action(act)}, nil
}

// Grant implements authv1.AuthServer.
func (s *authService) Grant(ctx context.Context, req *authv1.GrantRequest) (*authv1.GrantResponse, error) {
	g, err := grantOf(req.Prefix, req.Action)
	if err != nil {
		return nil, err
	}
	r, err := s.z.policy.Grant(ctx, req.Role, g)
	if err != nil {
		return nil, toStatus(s.lg, err)
	}
	return &authv1.GrantResponse{Role: roleMsg(r)}, nil
}

// Revoke implements authv1.AuthServer.
func (s *authService) Revoke(ctx context.Context, req *authv1.RevokeRequest) (*authv1.RevokeResponse, error) {
	g, err := grantOf(req.Prefix, req.Action)
	if err != nil {
		return nil, err
	}
	r, err := s.z.policy.Revoke(ctx, req.Role, g)
	if err != nil {
		return nil, toStatus(s.lg, err)
	}
	return &authv1.RevokeResponse{Role: roleMsg(r)}, nil
}

// BindRole implements authv1.AuthServer.
func (s *authService) BindRole(ctx context.Context, req *authv1.BindRoleRequest) (*authv1.BindRoleResponse, error) {
	u, err := s.z.policy.BindRole(ctx, req.User, req.Role)
	if err != nil {
		return nil, toStatus(s.lg, err)
	}
	return &authv1.BindRoleResponse{User: userMsg(u)}, nil
}

// UnbindRole implements authv1.AuthServer.
func (s *authService) UnbindRole(ctx context.Context, req *authv1.UnbindRoleRequest) (*authv1.UnbindRoleResponse, error) {
	u, err := s.z.policy.UnbindRole(ctx, req.User, req.Role)
	if err != nil {
		return nil, toStatus(s.lg, err)
	}
	return &authv1.UnbindRoleResponse{User: userMsg(u)}, nil
}

// IssueToken implements authv1.AuthServer.
func (s *authService) IssueToken(ctx context.Context, req *authv1.IssueTokenRequest) (*authv1.IssueTokenResponse, error) {
	ttl, err := auth.TokenTTL(req.TtlSeconds)
	if err != nil {
		return nil, toStatus(s.lg, err)
	}
	plain, rec, err := s.z.policy.IssueToken(ctx, req.User, ttl)
	if err != nil {
		return nil, toStatus(s.lg, err)
	}
	return &authv1.IssueTokenResponse{Token: plain, Id: rec.ID, ExpiresAt: rec.ExpiresAt.UTC().Format(time.RFC3339)}, nil
}

// RevokeToken implements authv1.AuthServer.
func (s *authService) RevokeToken(ctx context.Context, req *authv1.RevokeTokenRequest) (*authv1.RevokeTokenResponse, error) {
	if err := s.z.policy.RevokeToken(ctx, req.Id); err != nil {
		return nil, toStatus(s.lg, err)
	}
	return &authv1.RevokeTokenResponse{}, nil
}

// ListTokens implements authv1.AuthServer.
func (s *authService) ListTokens(ctx context.Context, _ *authv1.ListTokensRequest) (*authv1.ListTokensResponse, error) {
	toks, err := s.z.policy.ListTokens(ctx)
	if err != nil {
		return nil, toStatus(s.lg, err)
	}
	out := &authv1.ListTokensResponse{}
	for _, t := range toks {
		out.Tokens = append(out.Tokens, &authv1.Token{Id: t.ID, User: t.User, ExpiresAt: t.ExpiresAt.UTC().Format(time.RFC3339), Revoked: t.Revoked})
	}
	return out, nil
}

// IssueToken issues a bearer token for user, which must exist, valid for
// ttl, without an access check. It is for the process that runs the node
// (tests; an operator's tooling), which holds the node's keys anyway.
// Errors are gRPC statuses as Auth.IssueToken returns them: NotFound for
// an unknown user, Unavailable before the policy is created at bootstrap.
func (s *Server) IssueToken(ctx context.Context, user string, ttl time.Duration) (string, error) {
	plain, _, err := s.authz.policy.IssueToken(ctx, user, ttl)
	if err != nil {
		return "", toStatus(s.cfg.Logger, err)
	}
	return plain, nil
}
