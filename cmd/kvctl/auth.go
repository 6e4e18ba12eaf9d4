package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	aclaction "github.com/cavedb/cave/acl/action"
	authv1 "github.com/cavedb/cave/proto/cave/auth/v1"
)

// authCommand is `kvctl auth`: one subcommand per method of the
// cave.auth.v1.Auth service. Every method except whoami needs admin on
// the empty prefix.
func authCommand() *cli.Command {
	return &cli.Command{
		Name:  "auth",
		Usage: "manage users, roles, grants and tokens of access control",
		Subcommands: []*cli.Command{
			{Name: "whoami", Usage: "print the identity and roles the cluster sees for these credentials", Action: withClient(whoami)},
			{
				Name:  "user",
				Usage: "add, remove and list users",
				Subcommands: []*cli.Command{
					{
						Name: "add", Usage: "create a user", ArgsUsage: "NAME",
						Flags: []cli.Flag{
							&cli.StringSliceFlag{Name: "role", Usage: "bind the user to this existing role (repeatable)"},
						},
						Action: withClient(userAdd),
					},
					{Name: "remove", Usage: "delete a user and every token issued to it", ArgsUsage: "NAME", Action: withClient(userRemove)},
					{Name: "list", Usage: "list the users and their roles", Action: withClient(userList)},
				},
			},
			{
				Name:  "role",
				Usage: "add, remove and list roles",
				Subcommands: []*cli.Command{
					{Name: "add", Usage: "create a role without grants", ArgsUsage: "NAME", Action: withClient(roleAdd)},
					{Name: "remove", Usage: "delete a role and unbind its users", ArgsUsage: "NAME", Action: withClient(roleRemove)},
					{Name: "list", Usage: "list the roles and their grants", Action: withClient(roleList)},
				},
			},
			{Name: "grant", Usage: "allow a role ACTION (read, write or admin) on every key under PREFIX", ArgsUsage: "ROLE PREFIX ACTION", Action: withClient(grant)},
			{Name: "revoke", Usage: "remove a grant from a role", ArgsUsage: "ROLE PREFIX ACTION", Action: withClient(revoke)},
			{Name: "bind", Usage: "make a user a member of a role", ArgsUsage: "USER ROLE", Action: withClient(bind)},
			{Name: "unbind", Usage: "remove a user from a role", ArgsUsage: "USER ROLE", Action: withClient(unbind)},
			{
				Name:  "token",
				Usage: "issue, revoke and list bearer tokens",
				Subcommands: []*cli.Command{
					{
						Name: "issue", Usage: "issue a bearer token for a user; it is printed once and never stored", ArgsUsage: "USER",
						Flags: []cli.Flag{
							&cli.DurationFlag{Name: "ttl", Usage: "how long the token works: whole seconds, 1s to a year", DefaultText: "24h"},
						},
						Action: withClient(tokenIssue),
					},
					{Name: "revoke", Usage: "make a token stop working on every node within a second", ArgsUsage: "ID", Action: withClient(tokenRevoke)},
					{Name: "list", Usage: "list the tokens that have not expired (never their secrets)", Action: withClient(tokenList)},
				},
			},
		},
	}
}

// authRun calls the Auth service with f and prints the response: as JSON
// with -o json, else with text.
func authRun[T proto.Message](ctx context.Context, c *cli.Context, cl *client, f func(authv1.AuthClient) (T, error), text func(w io.Writer, resp T) error) error {
	var resp T
	if err := cl.call(ctx, func(conn *grpc.ClientConn) (err error) {
		resp, err = f(authv1.NewAuthClient(conn))
		return err
	}); err != nil {
		return err
	}
	if cl.output == "json" {
		return printJSON(c.App.Writer, resp)
	}
	return text(c.App.Writer, resp)
}

// line returns a text printer that writes format with a, ignoring the
// response.
func line[T any](format string, a ...any) func(io.Writer, T) error {
	return func(w io.Writer, _ T) error {
		_, err := fmt.Fprintf(w, format+"\n", a...)
		return err
	}
}

// orDash returns s, or "-" for an empty cell.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// whoami prints the caller's subject, how it was identified, its roles and
// whether the node enforces access control.
func whoami(ctx context.Context, c *cli.Context, cl *client) error {
	if _, err := args(c, 0, 0); err != nil {
		return err
	}
	return authRun(ctx, c, cl, func(ac authv1.AuthClient) (*authv1.WhoAmIResponse, error) {
		return ac.WhoAmI(ctx, &authv1.WhoAmIRequest{})
	}, func(w io.Writer, r *authv1.WhoAmIResponse) error {
		enforced := "off"
		if r.AclEnabled {
			enforced = "on"
		}
		return table(w, []string{"SUBJECT", "METHOD", "ROLES", "ACL"},
			[]string{orDash(r.Subject), orDash(r.Method), orDash(strings.Join(r.Roles, ",")), enforced})
	})
}

// userAdd creates a user bound to the --role roles.
func userAdd(ctx context.Context, c *cli.Context, cl *client) error {
	a, err := args(c, 1, 1)
	if err != nil {
		return err
	}
	return authRun(ctx, c, cl, func(ac authv1.AuthClient) (*authv1.AddUserResponse, error) {
		return ac.AddUser(ctx, &authv1.AddUserRequest{Name: a[0], Roles: c.StringSlice("role")})
	}, line[*authv1.AddUserResponse]("user %s added", a[0]))
}

// userRemove deletes a user.
func userRemove(ctx context.Context, c *cli.Context, cl *client) error {
	a, err := args(c, 1, 1)
	if err != nil {
		return err
	}
	return authRun(ctx, c, cl, func(ac authv1.AuthClient) (*authv1.RemoveUserResponse, error) {
		return ac.RemoveUser(ctx, &authv1.RemoveUserRequest{Name: a[0]})
	}, line[*authv1.RemoveUserResponse]("user %s removed", a[0]))
}

// userList prints every user with its roles, comma-separated (names
// cannot contain commas).
func userList(ctx context.Context, c *cli.Context, cl *client) error {
	if _, err := args(c, 0, 0); err != nil {
		return err
	}
	return authRun(ctx, c, cl, func(ac authv1.AuthClient) (*authv1.ListUsersResponse, error) {
		return ac.ListUsers(ctx, &authv1.ListUsersRequest{})
	}, func(w io.Writer, r *authv1.ListUsersResponse) error {
		rows := [][]string{{"NAME", "ROLES"}}
		for _, u := range r.Users {
			rows = append(rows, []string{u.Name, orDash(strings.Join(u.Roles, ","))})
		}
		return table(w, rows...)
	})
}

// roleAdd creates a role.
func roleAdd(ctx context.Context, c *cli.Context, cl *client) error {
	a, err := args(c, 1, 1)
	if err != nil {
		return err
	}
	return authRun(ctx, c, cl, func(ac authv1.AuthClient) (*authv1.AddRoleResponse, error) {
		return ac.AddRole(ctx, &authv1.AddRoleRequest{Name: a[0]})
	}, line[*authv1.AddRoleResponse]("role %s added", a[0]))
}

// roleRemove deletes a role.
func roleRemove(ctx context.Context, c *cli.Context, cl *client) error {
	a, err := args(c, 1, 1)
	if err != nil {
		return err
	}
	return authRun(ctx, c, cl, func(ac authv1.AuthClient) (*authv1.RemoveRoleResponse, error) {
		return ac.RemoveRole(ctx, &authv1.RemoveRoleRequest{Name: a[0]})
	}, line[*authv1.RemoveRoleResponse]("role %s removed", a[0]))
}

// roleList prints one row per grant of every role, and a role without
// grants as a row of dashes. A prefix is shown quoted when it is empty or
// has a character a shell or the table would hide.
func roleList(ctx context.Context, c *cli.Context, cl *client) error {
	if _, err := args(c, 0, 0); err != nil {
		return err
	}
	return authRun(ctx, c, cl, func(ac authv1.AuthClient) (*authv1.ListRolesResponse, error) {
		return ac.ListRoles(ctx, &authv1.ListRolesRequest{})
	}, func(w io.Writer, r *authv1.ListRolesResponse) error {
		rows := [][]string{{"ROLE", "PREFIX", "ACTION"}}
		for _, role := range r.Roles {
			if len(role.Grants) == 0 {
				rows = append(rows, []string{role.Name, "-", "-"})
			}
			for _, g := range role.Grants {
				rows = append(rows, []string{role.Name, showPrefix(g.Prefix), g.Action})
			}
		}
		return table(w, rows...)
	})
}

// showPrefix returns p as it can be typed back: bare when it is non-empty
// and holds only printable characters other than spaces and quotes, else
// Go-quoted.
func showPrefix(p string) string {
	if p == "" || strings.ContainsFunc(p, func(r rune) bool { return !strconv.IsPrint(r) || r == ' ' || r == '"' }) {
		return strconv.Quote(p)
	}
	return p
}

// grantArgs returns the ROLE PREFIX ACTION arguments of grant and revoke,
// or a usage error when they are missing or ACTION is not an action.
func grantArgs(c *cli.Context) (role, prefix, action string, err error) {
	a, err := args(c, 3, 3)
	if err != nil {
		return "", "", "", err
	}
	if !aclaction.Action(a[2]).Valid() {
		return "", "", "", usageError{fmt.Sprintf("ACTION must be %s, %s or %s, got %q; usage: %s", aclaction.Read, aclaction.Write, aclaction.Admin, a[2], usage(c))}
	}
	return a[0], a[1], a[2], nil
}

// grant adds a grant to a role.
func grant(ctx context.Context, c *cli.Context, cl *client) error {
	role, prefix, action, err := grantArgs(c)
	if err != nil {
		return err
	}
	return authRun(ctx, c, cl, func(ac authv1.AuthClient) (*authv1.GrantResponse, error) {
		return ac.Grant(ctx, &authv1.GrantRequest{Role: role, Prefix: prefix, Action: action})
	}, line[*authv1.GrantResponse]("role %s may %s under %s", role, action, showPrefix(prefix)))
}

// revoke removes a grant from a role.
func revoke(ctx context.Context, c *cli.Context, cl *client) error {
	role, prefix, action, err := grantArgs(c)
	if err != nil {
		return err
	}
	return authRun(ctx, c, cl, func(ac authv1.AuthClient) (*authv1.RevokeResponse, error) {
		return ac.Revoke(ctx, &authv1.RevokeRequest{Role: role, Prefix: prefix, Action: action})
	}, line[*authv1.RevokeResponse]("role %s may no longer %s under %s", role, action, showPrefix(prefix)))
}

// bind makes a user a member of a role.
func bind(ctx context.Context, c *cli.Context, cl *client) error {
	a, err := args(c, 2, 2)
	if err != nil {
		return err
	}
	return authRun(ctx, c, cl, func(ac authv1.AuthClient) (*authv1.BindRoleResponse, error) {
		return ac.BindRole(ctx, &authv1.BindRoleRequest{User: a[0], Role: a[1]})
	}, line[*authv1.BindRoleResponse]("user %s bound to role %s", a[0], a[1]))
}

// unbind removes a user from a role.
func unbind(ctx context.Context, c *cli.Context, cl *client) error {
	a, err := args(c, 2, 2)
	if err != nil {
		return err
	}
	return authRun(ctx, c, cl, func(ac authv1.AuthClient) (*authv1.UnbindRoleResponse, error) {
		return ac.UnbindRole(ctx, &authv1.UnbindRoleRequest{User: a[0], Role: a[1]})
	}, line[*authv1.UnbindRoleResponse]("user %s unbound from role %s", a[0], a[1]))
}

// tokenIssue issues a token for a user. In table output stdout is the
// token alone on one line, so that it can be copied or captured, and its
// id and expiry go to stderr; -o json prints the whole response.
func tokenIssue(ctx context.Context, c *cli.Context, cl *client) error {
	a, err := args(c, 1, 1)
	if err != nil {
		return err
	}
	req := &authv1.IssueTokenRequest{User: a[0]}
	if c.IsSet("ttl") {
		ttl := c.Duration("ttl")
		if ttl < time.Second || ttl%time.Second != 0 {
			return usageError{fmt.Sprintf("--ttl must be a whole number of seconds, at least 1s, got %s; usage: %s", ttl, usage(c))}
		}
		req.TtlSeconds = int64(ttl / time.Second)
	}
	return authRun(ctx, c, cl, func(ac authv1.AuthClient) (*authv1.IssueTokenResponse, error) {
		return ac.IssueToken(ctx, req)
	}, func(w io.Writer, r *authv1.IssueTokenResponse) error {
		if _, err := fmt.Fprintln(w, r.Token); err != nil {
			return err
		}
		_, err := fmt.Fprintf(c.App.ErrWriter, "token %s for user %s expires at %s; it is not shown again\n", r.Id, a[0], r.ExpiresAt)
		return err
	})
}

// tokenRevoke revokes a token by its id.
func tokenRevoke(ctx context.Context, c *cli.Context, cl *client) error {
	a, err := args(c, 1, 1)
	if err != nil {
		return err
	}
	return authRun(ctx, c, cl, func(ac authv1.AuthClient) (*authv1.RevokeTokenResponse, error) {
		return ac.RevokeToken(ctx, &authv1.RevokeTokenRequest{Id: a[0]})
	}, line[*authv1.RevokeTokenResponse]("token %s revoked", a[0]))
}

// tokenList prints the records of the tokens that have not expired.
func tokenList(ctx context.Context, c *cli.Context, cl *client) error {
	if _, err := args(c, 0, 0); err != nil {
		return err
	}
	return authRun(ctx, c, cl, func(ac authv1.AuthClient) (*authv1.ListTokensResponse, error) {
		return ac.ListTokens(ctx, &authv1.ListTokensRequest{})
	}, func(w io.Writer, r *authv1.ListTokensResponse) error {
		rows := [][]string{{"ID", "USER", "EXPIRES_AT", "REVOKED"}}
		for _, t := range r.Tokens {
			rows = append(rows, []string{t.Id, t.User, t.ExpiresAt, strconv.FormatBool(t.Revoked)})
		}
		return table(w, rows...)
	})
}
