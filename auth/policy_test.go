package auth

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cavedb/cave/acl"
	"github.com/cavedb/cave/acl/action"
)

func TestPolicyDocValidate(t *testing.T) {
	t.Parallel()
	_, rec, err := NewToken(rand.Reader, "root", time.Time{})
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
