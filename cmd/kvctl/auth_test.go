package main

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cavedb/cave/auth"
	"github.com/cavedb/cave/internal/nodetest"
)

// TestKVCtlAuth runs every kvctl auth command against a node with access
// control: as root it makes a reader of app/ and a token for it, checks
// what that token may do, lists what it made in both output formats,
// takes it apart again, and revokes the token. Bad arguments are refused
// before any call.
func TestKVCtlAuth(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node and runs the kvctl binary")
	}
	c := nodetest.NewCluster(t, 1, nodetest.WithShards(1), nodetest.WithACL())
	ep := "--endpoints=" + c.GRPCAddr(0)
	root := session{t: t, pre: []string{ep, "--token", c.Token(0, auth.RootUser, time.Hour)}}

	assert.Regexp(t, `^SUBJECT\s+METHOD\s+ROLES\s+ACL\nroot\s+token\s+admin\s+on\n$`, root.ok("", "auth", "whoami"))
	assert.Contains(t, root.ok("", "-o", "json", "auth", "whoami"), `"acl_enabled": true`)

	// A role that reads app/, a second role that writes everything, and a
	// user bound to both.
	assert.Equal(t, "role reader added\n", root.ok("", "auth", "role", "add", "reader"))
	assert.Equal(t, "role reader may read under app/\n", root.ok("", "auth", "grant", "reader", "app/", "read"))
	root.ok("", "auth", "role", "add", "writer")
	assert.Equal(t, "role writer may write under \"\"\n", root.ok("", "auth", "grant", "writer", "", "write"))
	assert.Equal(t, "user alice added\n", root.ok("", "auth", "user", "add", "--role", "reader", "alice"))
	assert.Equal(t, "user alice bound to role writer\n", root.ok("", "auth", "bind", "alice", "writer"))

	users := root.ok("", "auth", "user", "list")
	assert.Regexp(t, `^NAME\s+ROLES\n`, users)
	assert.Regexp(t, `(?m)^alice\s+reader,writer$`, users)
	assert.Regexp(t, `(?m)^root\s+admin$`, users)
	var usersJSON struct {
		Users []struct {
			Name  string   `json:"name"`
			Roles []string `json:"roles"`
		} `json:"users"`
	}
	require.NoError(t, json.Unmarshal([]byte(root.ok("", "-o", "json", "auth", "user", "list")), &usersJSON))
	require.Len(t, usersJSON.Users, 2)
	assert.Equal(t, "alice", usersJSON.Users[0].Name)
	assert.ElementsMatch(t, []string{"reader", "writer"}, usersJSON.Users[0].Roles)

	roles := root.ok("", "auth", "role", "list")
	assert.Regexp(t, `^ROLE\s+PREFIX\s+ACTION\n`, roles)
	assert.Regexp(t, `(?m)^admin\s+""\s+admin$`, roles)
	assert.Regexp(t, `(?m)^reader\s+app/\s+read$`, roles)
	assert.Regexp(t, `(?m)^writer\s+""\s+write$`, roles)
	var rolesJSON struct {
		Roles []struct {
			Name   string `json:"name"`
			Grants []struct {
				Prefix string `json:"prefix"`
				Action string `json:"action"`
			} `json:"grants"`
		} `json:"roles"`
	}
	require.NoError(t, json.Unmarshal([]byte(root.ok("", "-o", "json", "auth", "role", "list")), &rolesJSON))
	require.Len(t, rolesJSON.Roles, 3)
	assert.Equal(t, "reader", rolesJSON.Roles[1].Name)
	require.Len(t, rolesJSON.Roles[1].Grants, 1)
	assert.Equal(t, "app/", rolesJSON.Roles[1].Grants[0].Prefix)
	assert.Equal(t, "read", rolesJSON.Roles[1].Grants[0].Action)

	// Take the writer apart again: alice keeps only read on app/.
	assert.Equal(t, "role writer may no longer write under \"\"\n", root.ok("", "auth", "revoke", "writer", "", "write"))
	assert.Regexp(t, `(?m)^writer\s+-\s+-$`, root.ok("", "auth", "role", "list"), "a role without grants")
	assert.Equal(t, "user alice unbound from role writer\n", root.ok("", "auth", "unbind", "alice", "writer"))
	assert.Equal(t, "role writer removed\n", root.ok("", "auth", "role", "remove", "writer"))
	assert.NotContains(t, root.ok("", "auth", "role", "list"), "writer")
	assert.Regexp(t, `(?m)^alice\s+reader$`, root.ok("", "auth", "user", "list"))

	// The server's refusals, with its code and message.
	root.fails("AlreadyExists", "auth", "role", "add", "reader")
	root.fails("FailedPrecondition", "auth", "role", "remove", auth.AdminRole)
	root.fails("NotFound", "auth", "unbind", "alice", "writer")
	root.fails("NotFound", "auth", "user", "remove", "nobody")
	root.fails("InvalidArgument", "auth", "user", "add", "bad/name")
	root.fails("InvalidArgument", "auth", "token", "issue", "--ttl", "9000h", "alice")

	// A token for alice: stdout is the token alone, stderr its id.
	r := kvctl(t, "", nil, append(root.pre, "auth", "token", "issue", "--ttl", "1h", "alice")...)
	require.Zero(t, r.code, r.stderr)
	require.Regexp(t, `^cave_\S+\n$`, r.stdout)
	tok := r.stdout[:len(r.stdout)-1]
	m := regexp.MustCompile(`^token (\S+) for user alice expires at \S+; it is not shown again\n$`).FindStringSubmatch(r.stderr)
	require.NotNil(t, m, "stderr of token issue: %q", r.stderr)
	id := m[1]
	var issued struct {
		Token     string `json:"token"`
		ID        string `json:"id"`
		ExpiresAt string `json:"expires_at"`
	}
	require.NoError(t, json.Unmarshal([]byte(root.ok("", "-o", "json", "auth", "token", "issue", "alice")), &issued))
	assert.Regexp(t, `^cave_`, issued.Token)
	assert.NotEqual(t, id, issued.ID)
	expires, err := time.Parse(time.RFC3339, issued.ExpiresAt)
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now().Add(24*time.Hour), expires, time.Minute, "the server's default TTL")

	tokens := root.ok("", "auth", "token", "list")
	assert.Regexp(t, `^ID\s+USER\s+EXPIRES_AT\s+REVOKED\n`, tokens)
	assert.Regexp(t, `(?m)^`+regexp.QuoteMeta(id)+`\s+alice\s+\S+\s+false$`, tokens)
	assert.Regexp(t, `(?m)^`+regexp.QuoteMeta(issued.ID)+`\s+alice\s+\S+\s+false$`, tokens)
	assert.NotContains(t, tokens, tok)

	// What alice may do with the token.
	alice := session{t: t, pre: []string{ep, "--token", tok}}
	root.ok("", "put", "app/x", "hello")
	assert.Equal(t, "hello", alice.ok("", "get", "app/x"))
	alice.fails("PermissionDenied", "put", "app/x", "v2")
	alice.fails("PermissionDenied", "auth", "user", "list")
	assert.Regexp(t, `(?m)^alice\s+token\s+reader\s+on$`, alice.ok("", "auth", "whoami"))

	// Revoked, the token stops working within a second (plus one run of
	// kvctl).
	assert.Equal(t, "token "+id+" revoked\n", root.ok("", "auth", "token", "revoke", id))
	nodetest.Eventually(t, 1500*time.Millisecond, "get with a revoked token", func(ctx context.Context) string {
		if r := kvctl(t, "", nil, append(alice.pre, "get", "app/x")...); r.code == 0 || !strings.Contains(r.stderr, "Unauthenticated") {
			return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
		return ""
	})
	var tokensJSON struct {
		Tokens []struct {
			ID      string `json:"id"`
			User    string `json:"user"`
			Revoked bool   `json:"revoked"`
		} `json:"tokens"`
	}
	require.NoError(t, json.Unmarshal([]byte(root.ok("", "-o", "json", "auth", "token", "list")), &tokensJSON))
	revoked := map[string]bool{}
	for _, tk := range tokensJSON.Tokens {
		if tk.User == "alice" {
			revoked[tk.ID] = tk.Revoked
		}
	}
	assert.Equal(t, map[string]bool{id: true, issued.ID: false}, revoked, "alice's tokens")

	// Removing alice removes her tokens.
	assert.Equal(t, "user alice removed\n", root.ok("", "auth", "user", "remove", "alice"))
	assert.NotContains(t, root.ok("", "auth", "user", "list"), "alice")
	assert.NotContains(t, root.ok("", "auth", "token", "list"), "alice")

	// Bad arguments are refused with status 2 before any call: nothing
	// listens on this endpoint, so a call would fail Unavailable (status 1)
	// instead.
	none := session{t: t, pre: []string{"--endpoints=127.0.0.1:1", "--timeout=2s"}}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"auth", "whoami", "extra"}, "usage: kvctl auth whoami"},
		{[]string{"auth", "user", "add"}, "usage: kvctl auth user add [options] NAME"},
		{[]string{"auth", "user", "add", "alice", "--role", "reader"}, "usage: kvctl auth user add [options] NAME"},
		{[]string{"auth", "user", "remove"}, "usage: kvctl auth user remove NAME"},
		{[]string{"auth", "role", "add", "a", "b"}, "usage: kvctl auth role add NAME"},
		{[]string{"auth", "role", "list", "x"}, "usage: kvctl auth role list"},
		{[]string{"auth", "grant", "reader", "app/"}, "usage: kvctl auth grant ROLE PREFIX ACTION"},
		{[]string{"auth", "grant", "reader", "app/", "delete"}, `ACTION must be read, write or admin, got "delete"`},
		{[]string{"auth", "revoke", "reader", "app/", "READ"}, `ACTION must be read, write or admin, got "READ"`},
		{[]string{"auth", "bind", "alice"}, "usage: kvctl auth bind USER ROLE"},
		{[]string{"auth", "unbind", "alice", "reader", "x"}, "usage: kvctl auth unbind USER ROLE"},
		{[]string{"auth", "token", "issue"}, "usage: kvctl auth token issue [options] USER"},
		{[]string{"auth", "token", "issue", "--ttl", "0s", "alice"}, "--ttl must be a whole number of seconds, at least 1s, got 0s"},
		{[]string{"auth", "token", "issue", "--ttl", "-1h", "alice"}, "--ttl must be a whole number of seconds, at least 1s, got -1h0m0s"},
		{[]string{"auth", "token", "issue", "--ttl", "1500ms", "alice"}, "--ttl must be a whole number of seconds, at least 1s, got 1.5s"},
		{[]string{"auth", "token", "issue", "--ttl", "soon", "alice"}, `invalid value "soon" for flag -ttl`},
		{[]string{"auth", "token", "revoke"}, "usage: kvctl auth token revoke ID"},
	} {
		none.misused(tc.want, tc.args...)
	}
}
