package auth

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestValidateName(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		in    string
		valid bool
	}{
		{"simple", "alice", true},
		{"one char", "a", true},
		{"punctuation", "svc.backup-01_x@corp:ro", true},
		{"unicode letters", "José", true},
		{"64 bytes", strings.Repeat("a", 64), true},
		{"65 bytes", strings.Repeat("a", 65), false},
		{"64 bytes of 2-byte runes", strings.Repeat("é", 32), true},
		{"66 bytes of 2-byte runes", strings.Repeat("é", 33), false},
		{"empty", "", false},
		{"space", "a b", false},
		{"leading space", " admin", false},
		{"tab", "a\tb", false},
		{"newline", "admin\n", false},
		{"nbsp", "a\u00a0b", false},
		{"zero-width space", "ad\u200bmin", false},
		{"bidi override", "a\u202eb", false},
		{"nul", "a\x00b", false},
		{"del", "a\x7fb", false},
		{"slash", "app/admin", false},
		{"comma", "a,b", false},
		{"invalid utf8", "a\xffb", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := ValidateName(tc.in)
			if tc.valid {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, ErrInvalidName)
			}
		})
	}
}

func TestUserValidate(t *testing.T) {
	t.Parallel()
	hash := mustHash(t, "hunter22")
	cases := []struct {
		name    string
		u       User
		wantErr []error // empty: valid
		count   int     // problems reported (lines)
	}{
		{"full", User{Name: "alice", PasswordHash: hash, Roles: []string{"admin", "reader"}}, nil, 0},
		{"no password", User{Name: "svc", Roles: []string{"writer"}}, nil, 0},
		{"no roles", User{Name: "bob", PasswordHash: hash}, nil, 0},
		{"bad name", User{Name: "a b"}, []error{ErrInvalidUser, ErrInvalidName}, 1},
		{"no name", User{}, []error{ErrInvalidUser, ErrInvalidName}, 1},
		{"bad hash", User{Name: "alice", PasswordHash: "hunter22"}, []error{ErrInvalidUser, ErrBadHash}, 1},
		{"bad role", User{Name: "alice", Roles: []string{"ok", "not/ok"}}, []error{ErrInvalidUser, ErrInvalidName}, 1},
		{"empty role", User{Name: "alice", Roles: []string{""}}, []error{ErrInvalidUser, ErrInvalidName}, 1},
		{"duplicate role", User{Name: "alice", Roles: []string{"r", "r"}}, []error{ErrInvalidUser}, 1},
		{"everything wrong", User{Name: "", PasswordHash: "x", Roles: []string{"a,b", "r", "r"}}, []error{ErrInvalidUser, ErrInvalidName, ErrBadHash}, 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.u.Validate()
			if len(tc.wantErr) == 0 {
				assert.NoError(t, err)
				return
			}
			for _, want := range tc.wantErr {
				assert.ErrorIs(t, err, want)
			}
			assert.Len(t, strings.Split(err.Error(), "\n"), tc.count, "one line per problem:\n%v", err)
			if len(tc.u.PasswordHash) >= 4 {
				assert.NotContains(t, err.Error(), tc.u.PasswordHash, "errors never show the hash")
			}
		})
	}
}
