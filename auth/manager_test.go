package auth

import (
	"context"
	crand "crypto/rand"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cavedb/cave/acl"
	"github.com/cavedb/cave/acl/action"
	"github.com/cavedb/cave/internal/logbuf"
	"github.com/cavedb/cave/internal/metatest"
)

// epoch is where the test clocks start.
var epoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// newTestManager returns a Manager over st whose clock reads *now
// nanoseconds after epoch; lg nil discards its log.
func newTestManager(t *testing.T, st Store, now *atomic.Int64, lg *slog.Logger) *Manager {
	t.Helper()
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	cfg := DefaultManagerConfig()
	cfg.Store, cfg.Logger = st, lg
	cfg.Now = func() time.Time { return epoch.Add(time.Duration(now.Load())) }
	m, err := NewManager(cfg)
	require.NoError(t, err)
	return m
}

// bootstrapped returns two Managers, two nodes, over a new store that
// holds the bootstrap policy, which m created; their clock reads *now.
func bootstrapped(t *testing.T, now *atomic.Int64) (m, other *Manager, st *metatest.Store) {
	t.Helper()
	st = metatest.New()
	m, other = newTestManager(t, st, now, nil), newTestManager(t, st, now, nil)
	created, err := m.Bootstrap(t.Context())
	require.NoError(t, err)
	require.True(t, created)
	return m, other, st
}

func TestPolicyDocValidate(t *testing.T) {
	t.Parallel()
	_, rec, err := NewToken(crand.Reader, "root", time.Time{})
	require.NoError(t, err)
	id := rec.ID
	cases := []struct {
		name   string
		change func(d *policyDoc)
	}{
		{"user under another name", func(d *policyDoc) { d.Users["x"] = User{Name: "y"} }},
		{"bad user name", func(d *policyDoc) { d.Users["a b"] = User{Name: "a b"} }},
		{"unknown role", func(d *policyDoc) { d.Users["x"] = User{Name: "x", Roles: []string{"nope"}} }},
		{"bad role name", func(d *policyDoc) { d.Roles["a/b"] = nil }},
		{"bad action", func(d *policyDoc) { d.Roles["r"] = []Grant{{Prefix: "a/", Action: "fly"}} }},
		{"star in prefix", func(d *policyDoc) { d.Roles["r"] = []Grant{{Prefix: "a*", Action: action.Read}} }},
		{"token under another id", func(d *policyDoc) {
			d.Tokens["AAAAAAAAAAAA"] = rec
		}},
		{"token without hash", func(d *policyDoc) { d.Tokens[id] = TokenRecord{ID: id, User: "root", Salt: rec.Salt} }},
		{"token without salt", func(d *policyDoc) { d.Tokens[id] = TokenRecord{ID: id, User: "root", Hash: rec.Hash} }},
	}
	assert.NoError(t, bootstrapPolicy().validate())
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := bootstrapPolicy()
			tc.change(d)
			assert.Error(t, d.validate())
		})
	}
}

// TestACLPolicySubjects: users and roles reach the Enforcer under
// distinct subjects, so that a user named like a role holds nothing.
func TestACLPolicySubjects(t *testing.T) {
	t.Parallel()
	d := bootstrapPolicy()
	d.Roles["reader"] = []Grant{{Prefix: "app/", Action: action.Read}}
	d.Users["alice"] = User{Name: "alice", Roles: []string{"reader"}}
	assert.Equal(t, acl.Policy{
		Grants: []acl.Grant{
			{Subject: "role:admin", Prefix: "", Action: action.Admin},
			{Subject: "role:reader", Prefix: "app/", Action: action.Read},
		},
		Bindings: []acl.Binding{{User: "user:alice", Role: "role:reader"}, {User: "user:root", Role: "role:admin"}},
	}, d.aclPolicy())
}

func TestPolicyDocClone(t *testing.T) {
	t.Parallel()
	d := bootstrapPolicy()
	c := d.clone()
	u := c.Users[RootUser]
	u.Roles[0] = "changed"
	c.Roles[AdminRole][0].Prefix = "changed/"
	c.Tokens["x"] = TokenRecord{}
	assert.Equal(t, bootstrapPolicy(), d, "changing a clone leaves the original alone")
	assert.NotNil(t, (&policyDoc{}).clone().Tokens, "a clone always has a token map")
}

func TestTokenTTL(t *testing.T) {
	t.Parallel()
	maxSeconds := int64(MaxTokenTTL / time.Second)
	cases := []struct {
		seconds int64
		want    time.Duration
		ok      bool
	}{
		{0, DefaultTokenTTL, true},
		{1, time.Second, true},
		{600, 10 * time.Minute, true},
		{maxSeconds, MaxTokenTTL, true},
		{maxSeconds + 1, 0, false},
		{-1, 0, false},
		{1 << 62, 0, false},
	}
	for _, tc := range cases {
		got, err := TokenTTL(tc.seconds)
		if !tc.ok {
			assert.ErrorIs(t, err, ErrInvalidTTL, "%d seconds", tc.seconds)
			continue
		}
		require.NoError(t, err, "%d seconds", tc.seconds)
		assert.Equal(t, tc.want, got, "%d seconds", tc.seconds)
	}
}

func TestManagerConfigValidate(t *testing.T) {
	t.Parallel()
	_, err := NewManager(ManagerConfig{})
	assert.ErrorIs(t, err, ErrInvalidConfig)
	cfg := DefaultManagerConfig()
	cfg.Store, cfg.Logger = metatest.New(), slog.New(slog.DiscardHandler)
	require.NoError(t, cfg.Validate())
	cfg.Now = nil
	assert.ErrorIs(t, cfg.Validate(), ErrInvalidConfig)
}

// TestManagerBootstrap: before the policy exists everything is denied and
// changes fail with ErrPolicyMissing; one node creates it, the others
// find it, and root is then an administrator.
func TestManagerBootstrap(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := metatest.New()
	var now atomic.Int64
	a, b := newTestManager(t, st, &now, nil), newTestManager(t, st, &now, nil)

	assert.False(t, a.Loaded())
	assert.False(t, a.AllowedAdmin(RootUser), "nothing is allowed before a policy loads")
	stored, err := a.Refresh(ctx)
	require.NoError(t, err)
	assert.False(t, stored)
	_, err = a.AddRole(ctx, "reader")
	assert.ErrorIs(t, err, ErrPolicyMissing)
	_, _, err = a.IssueToken(ctx, RootUser, time.Hour)
	assert.ErrorIs(t, err, ErrPolicyMissing)
	assert.Zero(t, st.Rev(), "nothing was stored")

	created, err := a.Bootstrap(ctx)
	require.NoError(t, err)
	assert.True(t, created)
	assert.True(t, a.Loaded(), "the creator publishes at once")
	created, err = b.Bootstrap(ctx)
	require.NoError(t, err)
	assert.False(t, created, "the policy exists")
	assert.Equal(t, int64(1), st.Rev())
	assert.False(t, b.Loaded())
	stored, err = b.Refresh(ctx)
	require.NoError(t, err)
	assert.True(t, stored)
	for _, m := range []*Manager{a, b} {
		assert.True(t, m.Loaded())
		assert.True(t, m.AllowedAdmin(RootUser))
		assert.True(t, m.Allowed(RootUser, "any/key", action.Write))
		assert.Equal(t, []string{AdminRole}, m.Roles(RootUser))
		assert.False(t, m.AllowedAdmin(AdminRole), "a subject named like the admin role is nobody")
		assert.Nil(t, m.Roles("nobody"))
	}
}

// errOf returns the error of a call that also returns a value.
func errOf[T any](_ T, err error) error { return err }

// TestManagerChanges runs every change and list against one store, and
// checks that refused changes store nothing.
func TestManagerChanges(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	var now atomic.Int64
	m, other, st := bootstrapped(t, &now)

	r, err := m.AddRole(ctx, "reader")
	require.NoError(t, err)
	assert.Equal(t, Role{Name: "reader"}, r)
	r, err = m.Grant(ctx, "reader", Grant{Prefix: "app/", Action: action.Read})
	require.NoError(t, err)
	assert.Equal(t, Role{Name: "reader", Grants: []Grant{{Prefix: "app/", Action: action.Read}}}, r)
	r, err = m.Grant(ctx, "reader", Grant{Prefix: "app/", Action: action.Read})
	require.NoError(t, err)
	assert.Len(t, r.Grants, 1, "a grant the role holds is not added twice")
	u, err := m.AddUser(ctx, "alice", []string{"reader", "reader"})
	require.NoError(t, err)
	assert.Equal(t, User{Name: "alice", Roles: []string{"reader"}}, u, "a role named twice is bound once")
	assert.True(t, m.Allowed("alice", "app/x", action.Read), "a change is published on the node that made it")
	assert.False(t, m.Allowed("alice", "app/x", action.Write))
	assert.False(t, m.Allowed("alice", "other/x", action.Read))
	assert.False(t, m.Allowed("reader", "app/x", action.Read), "a subject named like a role holds nothing")

	_, err = m.AddRole(ctx, "writer")
	require.NoError(t, err)
	_, err = m.Grant(ctx, "writer", Grant{Prefix: "app/", Action: action.Write})
	require.NoError(t, err)
	u, err = m.BindRole(ctx, "alice", "writer")
	require.NoError(t, err)
	assert.Equal(t, []string{"reader", "writer"}, u.Roles)
	assert.True(t, m.Allowed("alice", "app/x", action.Write))

	// Refused changes: each error, and nothing stored.
	rev := st.Rev()
	refused := []struct {
		name string
		err  error
		want error
	}{
		{"existing user", errOf(m.AddUser(ctx, "alice", nil)), ErrExists},
		{"user with unknown role", errOf(m.AddUser(ctx, "bob", []string{"nope"})), ErrNotFound},
		{"bad user name", errOf(m.AddUser(ctx, "a b", nil)), ErrInvalidName},
		{"empty user name", errOf(m.AddUser(ctx, "", nil)), ErrInvalidName},
		{"bad role name of a user", errOf(m.AddUser(ctx, "bob", []string{"a/b"})), ErrInvalidName},
		{"existing role", errOf(m.AddRole(ctx, "reader")), ErrExists},
		{"bad role name", errOf(m.AddRole(ctx, "a/b")), ErrInvalidName},
		{"remove unknown user", m.RemoveUser(ctx, "nobody"), ErrNotFound},
		{"remove unknown role", m.RemoveRole(ctx, "nope"), ErrNotFound},
		{"remove the admin role", m.RemoveRole(ctx, AdminRole), ErrBuiltIn},
		{"grant a bad action", errOf(m.Grant(ctx, "reader", Grant{Prefix: "x/", Action: "fly"})), ErrInvalidGrant},
		{"grant a prefix with a star", errOf(m.Grant(ctx, "reader", Grant{Prefix: "a*", Action: action.Read})), ErrInvalidGrant},
		{"grant to an unknown role", errOf(m.Grant(ctx, "nope", Grant{Prefix: "x/", Action: action.Read})), ErrNotFound},
		{"grant to a bad role name", errOf(m.Grant(ctx, "a,b", Grant{Prefix: "x/", Action: action.Read})), ErrInvalidName},
		{"revoke a missing grant", errOf(m.Revoke(ctx, "reader", Grant{Prefix: "zzz/", Action: action.Read})), ErrNotFound},
		{"revoke admin on every key", errOf(m.Revoke(ctx, AdminRole, Grant{Prefix: "", Action: action.Admin})), ErrBuiltIn},
		{"bind an unknown user", errOf(m.BindRole(ctx, "nobody", "reader")), ErrNotFound},
		{"bind an unknown role", errOf(m.BindRole(ctx, "alice", "nope")), ErrNotFound},
		{"bind a bad role name", errOf(m.BindRole(ctx, "alice", "")), ErrInvalidName},
		{"unbind a role not bound", errOf(m.UnbindRole(ctx, RootUser, "reader")), ErrNotFound},
		{"unbind from an unknown user", errOf(m.UnbindRole(ctx, "nobody", "reader")), ErrNotFound},
		{"revoke an unknown token", m.RevokeToken(ctx, "AAAAAAAAAAAA"), ErrNotFound},
		{"revoke a malformed token id", m.RevokeToken(ctx, "short"), ErrInvalidToken},
	}
	_, _, err = m.IssueToken(ctx, "nobody", time.Hour)
	assert.ErrorIs(t, err, ErrNotFound, "token for an unknown user")
	for _, tc := range refused {
		assert.ErrorIs(t, tc.err, tc.want, tc.name)
	}
	assert.Equal(t, rev, st.Rev(), "no refused change stored anything")

	// Another node lists what this one changed.
	users, err := other.ListUsers(ctx)
	require.NoError(t, err)
	assert.Equal(t, []User{{Name: "alice", Roles: []string{"reader", "writer"}}, {Name: RootUser, Roles: []string{AdminRole}}}, users)
	roles, err := other.ListRoles(ctx)
	require.NoError(t, err)
	assert.Equal(t, []Role{
		{Name: AdminRole, Grants: []Grant{adminGrant}},
		{Name: "reader", Grants: []Grant{{Prefix: "app/", Action: action.Read}}},
		{Name: "writer", Grants: []Grant{{Prefix: "app/", Action: action.Write}}},
	}, roles)
	roles[0].Grants[0].Prefix = "changed/"
	users[0].Roles[0] = "changed"
	roles, err = other.ListRoles(ctx)
	require.NoError(t, err)
	assert.Equal(t, adminGrant, roles[0].Grants[0], "the caller owns the lists")
	users, err = other.ListUsers(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"reader", "writer"}, users[0].Roles, "the caller owns the lists")
	roles, err = m.ListRoles(ctx) // m's copy, shared with its published snapshot
	require.NoError(t, err)
	roles[0].Grants[0].Prefix = "changed/"
	assert.True(t, m.AllowedAdmin(RootUser))
	assert.Equal(t, []string{"reader", "writer"}, m.Roles("alice"))

	// Removals.
	u, err = m.UnbindRole(ctx, "alice", "writer")
	require.NoError(t, err)
	assert.Equal(t, []string{"reader"}, u.Roles)
	r, err = m.Revoke(ctx, "reader", Grant{Prefix: "app/", Action: action.Read})
	require.NoError(t, err)
	assert.Empty(t, r.Grants)
	assert.False(t, m.Allowed("alice", "app/x", action.Read))
	_, err = m.BindRole(ctx, "alice", "writer")
	require.NoError(t, err)
	require.NoError(t, m.RemoveRole(ctx, "writer"))
	assert.Equal(t, []string{"reader"}, m.Roles("alice"), "removing a role unbinds its users")
	tok, _, err := m.IssueToken(ctx, "alice", time.Hour)
	require.NoError(t, err)
	require.NoError(t, m.RemoveUser(ctx, "alice"))
	_, err = m.Verify(ctx, tok)
	assert.ErrorIs(t, err, ErrInvalidToken, "removing a user removes its tokens")
	users, err = m.ListUsers(ctx)
	require.NoError(t, err)
	assert.Equal(t, []User{{Name: RootUser, Roles: []string{AdminRole}}}, users)
}

// TestManagerTokens: tokens verify on every node, expire at the Manager's
// clock, stop at once when revoked, and expired records are pruned by
// the next change.
func TestManagerTokens(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	var now atomic.Int64
	m, other, _ := bootstrapped(t, &now)
	_, err := other.Refresh(ctx)
	require.NoError(t, err)

	short, rec, err := m.IssueToken(ctx, RootUser, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, epoch.Add(time.Minute), rec.ExpiresAt, "the lifetime runs from the Manager's clock")
	long, longRec, err := m.IssueToken(ctx, RootUser, time.Hour)
	require.NoError(t, err)

	user, err := m.Verify(ctx, short)
	require.NoError(t, err)
	assert.Equal(t, RootUser, user)
	user, err = other.Verify(ctx, short)
	require.NoError(t, err, "a token issued on another node moments ago is read from the store")
	assert.Equal(t, RootUser, user)

	now.Store(int64(time.Minute - time.Nanosecond))
	_, err = m.Verify(ctx, short)
	require.NoError(t, err, "valid until its lifetime is over")
	now.Store(int64(time.Minute))
	_, err = m.Verify(ctx, short)
	assert.ErrorIs(t, err, ErrExpiredToken, "expired when the clock reaches ExpiresAt")
	_, err = other.Verify(ctx, short)
	assert.ErrorIs(t, err, ErrExpiredToken)

	toks, err := m.ListTokens(ctx)
	require.NoError(t, err)
	require.Len(t, toks, 1, "expired tokens are not listed")
	assert.Equal(t, longRec.ID, toks[0].ID)

	require.NoError(t, m.RevokeToken(ctx, longRec.ID))
	_, err = m.Verify(ctx, long)
	assert.ErrorIs(t, err, ErrRevokedToken)
	toks, err = m.ListTokens(ctx)
	require.NoError(t, err)
	require.Len(t, toks, 1)
	assert.True(t, toks[0].Revoked, "revoked tokens are listed until they expire")

	now.Store(int64(time.Minute + time.Nanosecond))
	_, _, err = m.IssueToken(ctx, RootUser, time.Hour)
	require.NoError(t, err)
	_, err = m.Verify(ctx, short)
	assert.ErrorIs(t, err, ErrInvalidToken, "a change prunes the records of expired tokens")
	assert.NotErrorIs(t, err, ErrExpiredToken)
	_, err = m.Verify(ctx, "cave_nope")
	assert.ErrorIs(t, err, ErrInvalidToken)
	_, err = m.Verify(ctx, strings.Replace(long, long[len(long)-1:], "A", 1))
	assert.Error(t, err, "a token altered after its id does not verify")
}

// TestManagerConcurrentChanges: a change that loses the compare-and-swap
// to another node's is retried on the new document, keeping both; one
// that keeps losing gives up with ErrPolicyConflict and stores nothing.
func TestManagerConcurrentChanges(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	var now atomic.Int64
	m, other, st := bootstrapped(t, &now)

	var fired atomic.Bool
	st.BeforeSwap(func() {
		if fired.CompareAndSwap(false, true) { // the other node's own swap runs the hook too
			_, err := other.AddRole(ctx, "theirs")
			assert.NoError(t, err)
		}
	})
	_, err := m.AddRole(ctx, "mine")
	require.NoError(t, err)
	roles, err := m.ListRoles(ctx)
	require.NoError(t, err)
	var names []string
	for _, r := range roles {
		names = append(names, r.Name)
	}
	assert.Equal(t, []string{AdminRole, "mine", "theirs"}, names, "neither change lost the other")

	var swaps atomic.Int32
	st.BeforeSwap(func() {
		swaps.Add(1)
		st.Touch(policyKey)
	})
	rev := st.Rev()
	_, err = m.AddRole(ctx, "never")
	assert.ErrorIs(t, err, ErrPolicyConflict)
	assert.Equal(t, int32(maxUpdateAttempts), swaps.Load())
	assert.Equal(t, rev+maxUpdateAttempts, st.Rev(), "only the interfering writes were stored")
	st.BeforeSwap(nil)
	roles, err = m.ListRoles(ctx)
	require.NoError(t, err)
	assert.Len(t, roles, 3)
}

// TestManagerBadStore: a stored document that does not decode or
// validate, and a failing store, leave the current policy in force.
func TestManagerBadStore(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	var now atomic.Int64
	m, _, st := bootstrapped(t, &now)

	st.Put(policyKey, []byte("not json"))
	_, err := m.Refresh(ctx)
	assert.ErrorIs(t, err, ErrInvalidPolicy)
	st.Put(policyKey, []byte(`{"users":{"x":{"name":"y"}},"roles":{},"tokens":{}}`))
	_, err = m.Refresh(ctx)
	assert.ErrorIs(t, err, ErrInvalidPolicy)
	_, err = m.AddRole(ctx, "reader")
	assert.ErrorIs(t, err, ErrInvalidPolicy, "no change is made on a corrupt document")
	assert.True(t, m.AllowedAdmin(RootUser), "the loaded policy stays in force")

	down := errors.New("meta shard unavailable")
	st.Fail(down)
	_, err = m.Refresh(ctx)
	assert.ErrorIs(t, err, down)
	_, err = m.ListUsers(ctx)
	assert.ErrorIs(t, err, down)
	assert.True(t, m.AllowedAdmin(RootUser))
}

// TestManagerRun: on the fake clock of a synctest bubble, Run creates the
// bootstrap policy once across two nodes, picks up another node's change
// within a reload interval, warns once per run of failures and not at
// all about expected ones, and returns when its context ends.
func TestManagerRun(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		st := metatest.New()
		var now atomic.Int64
		logs := logbuf.NewBuffer(64)
		warnings := func() int { return len(logs.Query(logbuf.Query{MinLevel: slog.LevelWarn})) }
		cfg := DefaultManagerConfig()
		cfg.Store, cfg.Logger = st, slog.New(logbuf.NewHandler(slog.DiscardHandler, logs, slog.LevelWarn))
		cfg.Now = func() time.Time { return epoch.Add(time.Duration(now.Load())) }
		expected := errors.New("starting")
		cfg.Expected = func(err error, loaded bool) bool { return errors.Is(err, expected) && !loaded }
		a, err := NewManager(cfg)
		require.NoError(t, err)
		b := newTestManager(t, st, &now, nil)

		st.Fail(expected)
		ctx, cancel := context.WithCancel(t.Context())
		var created atomic.Int32
		var wg sync.WaitGroup
		for _, m := range []*Manager{a, b} {
			wg.Go(func() { m.Run(ctx, func() { created.Add(1) }) })
		}
		time.Sleep(3 * reloadInterval)
		synctest.Wait()
		assert.False(t, a.Loaded())
		assert.Zero(t, warnings(), "an expected failure is not warned about")

		st.Fail(nil)
		time.Sleep(2 * reloadInterval) // the node that lost the creation loads it next time
		synctest.Wait()
		assert.True(t, a.Loaded())
		assert.True(t, b.Loaded())
		assert.Equal(t, int32(1), created.Load(), "one node created the policy")

		_, err = b.AddRole(ctx, "reader")
		require.NoError(t, err)
		time.Sleep(reloadInterval)
		synctest.Wait()
		roles, _ := a.ListRoles(ctx)
		require.Len(t, roles, 2)
		_, err = b.Grant(ctx, "reader", Grant{Prefix: "app/", Action: action.Read})
		require.NoError(t, err)
		_, err = b.AddUser(ctx, "alice", []string{"reader"})
		require.NoError(t, err)
		time.Sleep(reloadInterval)
		synctest.Wait()
		assert.True(t, a.Allowed("alice", "app/x", action.Read), "a reload picks up another node's change")

		st.Fail(errors.New("meta shard unavailable"))
		time.Sleep(5 * reloadInterval)
		synctest.Wait()
		assert.Equal(t, 1, warnings(), "a run of failures is warned about once")
		assert.True(t, a.Allowed("alice", "app/x", action.Read), "the loaded policy stays in force")
		st.Fail(nil)
		time.Sleep(reloadInterval)
		synctest.Wait()
		st.Fail(expected)
		time.Sleep(2 * reloadInterval)
		synctest.Wait()
		assert.Equal(t, 2, warnings(), "after a success, a new run of failures is warned about; once a policy has loaded, even an expected error")

		cancel()
		wg.Wait()
	})
}
