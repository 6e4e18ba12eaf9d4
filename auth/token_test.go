package auth

import (
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewToken(t *testing.T) {
	t.Parallel()
	pt, rec, err := NewToken(crand.Reader, "alice", time.Time{})
	require.NoError(t, err)
	id := rec.ID
	require.True(t, strings.HasPrefix(pt, TokenPrefix))
	body := strings.TrimPrefix(pt, TokenPrefix)
	assert.Len(t, body, 43)
	raw, err := base64.RawURLEncoding.DecodeString(body)
	require.NoError(t, err)
	assert.Len(t, raw, 32)
	assert.Len(t, id, TokenIDChars)
	assert.Equal(t, body[:TokenIDChars], id)
	assert.Equal(t, "alice", rec.User)
	assert.Len(t, rec.Salt, tokenSaltBytes)
	sum := sha256.Sum256(append(append([]byte(nil), rec.Salt...), pt...))
	assert.Equal(t, sum[:], rec.Hash, "the hash is SHA-256 of salt and token")
	_, again, err := NewToken(seeded(4), "alice", time.Time{})
	require.NoError(t, err)
	_, again2, err := NewToken(seeded(9), "alice", time.Time{})
	require.NoError(t, err)
	assert.NotEqual(t, again.Salt, again2.Salt, "every token has its own salt")
	gotID, ok := TokenID(pt)
	assert.True(t, ok)
	assert.Equal(t, id, gotID)
	assert.NoError(t, rec.Validate())
	noSalt := rec
	noSalt.Salt = nil
	assert.ErrorIs(t, noSalt.Validate(), ErrInvalidToken)

	// Deterministic with a fixed source, distinct across draws.
	a, _, err := NewToken(seeded(4), "alice", time.Time{})
	require.NoError(t, err)
	b, _, err := NewToken(seeded(4), "alice", time.Time{})
	require.NoError(t, err)
	assert.Equal(t, a, b)
	seen := map[string]bool{}
	for range 1000 {
		pt, rec, err := NewToken(crand.Reader, "alice", time.Time{})
		require.NoError(t, err)
		require.False(t, seen[pt] || seen[rec.ID])
		seen[pt], seen[rec.ID] = true, true
	}

	_, _, err = NewToken(failingReader{}, "alice", time.Time{})
	assert.ErrorIs(t, err, errNoEntropy)
	_, _, err = NewToken(nil, "alice", time.Time{})
	assert.Error(t, err)
}

func TestTokenID(t *testing.T) {
	t.Parallel()
	pt, rec, err := NewToken(seeded(5), "alice", time.Time{})
	require.NoError(t, err)
	id := rec.ID
	cases := []struct {
		name string
		in   string
		ok   bool
	}{
		{"token", pt, true},
		{"empty", "", false},
		{"prefix only", TokenPrefix, false},
		{"no prefix", strings.TrimPrefix(pt, TokenPrefix), false},
		{"other prefix", "cavf_" + strings.TrimPrefix(pt, TokenPrefix), false},
		{"upper prefix", "CAVE_" + strings.TrimPrefix(pt, TokenPrefix), false},
		{"short", pt[:len(pt)-1], false},
		{"long", pt + "A", false},
		{"bad char", pt[:10] + "+" + pt[11:], false},
		{"padding", pt[:len(pt)-1] + "=", false},
		{"bearer prefix", "Bearer " + pt, false},
		{"space", pt[:len(pt)-1] + " ", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, ok := TokenID(tc.in)
			assert.Equal(t, tc.ok, ok)
			if tc.ok {
				assert.Equal(t, id, got)
			} else {
				assert.Empty(t, got)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	pt, rec, err := NewToken(crand.Reader, "alice", time.Time{})
	require.NoError(t, err)
	id, salt, hash := rec.ID, rec.Salt, rec.Hash
	other, otherRec, err := NewToken(crand.Reader, "alice", time.Time{})
	require.NoError(t, err)
	otherHash := otherRec.Hash
	// A forgery that keeps the id but changes the secret part.
	i := len(TokenPrefix) + TokenIDChars + 5
	forged := pt[:i] + "A" + pt[i+1:]
	if forged == pt {
		forged = pt[:i] + "B" + pt[i+1:]
	}
	fid, ok := TokenID(forged)
	require.True(t, ok)
	require.Equal(t, id, fid)

	cases := []struct {
		name  string
		token string
		rec   *TokenRecord // nil: lookup finds nothing
		want  error        // nil: authenticates as alice
	}{
		{"valid, no expiry", pt, &rec, nil},
		{"valid until later", pt, &TokenRecord{ID: id, User: "alice", Salt: salt, Hash: hash, ExpiresAt: now.Add(time.Nanosecond)}, nil},
		{"expires now", pt, &TokenRecord{ID: id, User: "alice", Salt: salt, Hash: hash, ExpiresAt: now}, ErrExpiredToken},
		{"expired", pt, &TokenRecord{ID: id, User: "alice", Salt: salt, Hash: hash, ExpiresAt: now.Add(-time.Hour)}, ErrExpiredToken},
		{"revoked", pt, &TokenRecord{ID: id, User: "alice", Salt: salt, Hash: hash, Revoked: true}, ErrRevokedToken},
		{"revoked and expired", pt, &TokenRecord{ID: id, User: "alice", Salt: salt, Hash: hash, Revoked: true, ExpiresAt: now.Add(-time.Hour)}, ErrRevokedToken},
		{"unknown id", pt, nil, ErrInvalidToken},
		{"forged secret", forged, &rec, ErrInvalidToken},
		{"forged secret, revoked record", forged, &TokenRecord{ID: id, User: "alice", Salt: salt, Hash: hash, Revoked: true}, ErrInvalidToken},
		{"forged secret, expired record", forged, &TokenRecord{ID: id, User: "alice", Salt: salt, Hash: hash, ExpiresAt: now.Add(-time.Hour)}, ErrInvalidToken},
		{"another token's record", pt, &TokenRecord{ID: id, User: "alice", Salt: salt, Hash: otherHash}, ErrInvalidToken},
		{"record for another id", pt, &TokenRecord{ID: "AAAAAAAAAAAA", User: "alice", Salt: salt, Hash: hash}, ErrInvalidToken},
		{"record without user", pt, &TokenRecord{ID: id, Salt: salt, Hash: hash}, ErrInvalidToken},
		{"record without hash", pt, &TokenRecord{ID: id, User: "alice", Salt: salt}, ErrInvalidToken},
		{"record with short hash", pt, &TokenRecord{ID: id, User: "alice", Salt: salt, Hash: hash[:16]}, ErrInvalidToken},
		{"malformed", "cave_xyz", &rec, ErrInvalidToken},
		{"empty", "", &rec, ErrInvalidToken},
		{"the hash itself", base64.RawURLEncoding.EncodeToString(hash), &rec, ErrInvalidToken},
		{"other token", other, &rec, ErrInvalidToken},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var asked []string
			lookup := func(id string) (TokenRecord, bool) {
				asked = append(asked, id)
				if tc.rec == nil {
					return TokenRecord{}, false
				}
				return *tc.rec, true
			}
			user, err := Verify(tc.token, lookup, now)
			if tc.want == nil {
				require.NoError(t, err)
				assert.Equal(t, "alice", user)
			} else {
				assert.ErrorIs(t, err, tc.want)
				assert.Empty(t, user)
				if len(tc.token) > TokenIDChars+len(TokenPrefix) {
					assert.NotContains(t, err.Error(), tc.token[len(TokenPrefix)+TokenIDChars:], "errors never show the secret part")
				}
			}
			assert.LessOrEqual(t, len(asked), 1, "one lookup per check")
			for _, a := range asked {
				assert.Len(t, a, TokenIDChars)
			}
		})
	}
}

func TestTokenRecordValidate(t *testing.T) {
	t.Parallel()
	_, rec, err := NewToken(crand.Reader, "alice", time.Time{})
	require.NoError(t, err)
	id, salt, hash := rec.ID, rec.Salt, rec.Hash
	cases := []struct {
		name  string
		rec   TokenRecord
		valid bool
	}{
		{"ok", TokenRecord{ID: id, User: "alice", Salt: salt, Hash: hash}, true},
		{"ok with expiry and revoked", TokenRecord{ID: id, User: "alice", Salt: salt, Hash: hash, ExpiresAt: time.Unix(1, 0), Revoked: true}, true},
		{"short id", TokenRecord{ID: id[:11], User: "alice", Salt: salt, Hash: hash}, false},
		{"bad id char", TokenRecord{ID: "AAAAAAAAAAA/", User: "alice", Salt: salt, Hash: hash}, false},
		{"bad user", TokenRecord{ID: id, User: "a b", Salt: salt, Hash: hash}, false},
		{"no salt", TokenRecord{ID: id, User: "alice", Hash: hash}, false},
		{"short salt", TokenRecord{ID: id, User: "alice", Salt: salt[:8], Hash: hash}, false},
		{"no user", TokenRecord{ID: id, Salt: salt, Hash: hash}, false},
		{"no hash", TokenRecord{ID: id, User: "alice", Salt: salt}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.rec.Validate()
			if tc.valid {
				assert.NoError(t, err)
			} else {
				assert.Error(t, err)
			}
		})
	}
	err = TokenRecord{}.Validate()
	assert.ErrorIs(t, err, ErrInvalidToken)
	assert.ErrorIs(t, err, ErrInvalidName)
}
