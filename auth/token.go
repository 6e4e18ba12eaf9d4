package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Token format: TokenPrefix followed by the unpadded base64url encoding of
// tokenRandomBytes random bytes (43 characters). The first TokenIDChars of
// those characters (72 bits) are the token's id, under which its record is
// stored and which may be shown and logged; the whole plaintext is the
// secret, of which only a salted SHA-256 hash is stored.
const (
	// TokenPrefix starts every bearer token, so leaked tokens are easy to
	// recognise and scan for.
	TokenPrefix = "cave_"
	// TokenIDChars is the length of a token id.
	TokenIDChars = 12

	tokenRandomBytes = 32
	// tokenSaltBytes is the length of each record's random salt.
	tokenSaltBytes = 16
)

// tokenBodyChars is the length of the encoded random part.
var tokenBodyChars = base64.RawURLEncoding.EncodedLen(tokenRandomBytes)

// TokenRecord is what the server stores about an issued bearer token. The
// plaintext is never stored.
type TokenRecord struct {
	// ID is the token's public id (TokenIDChars characters).
	ID string `json:"id"`
	// User is the user the token authenticates as.
	User string `json:"user"`
	// Salt is random, per token; Hash is the SHA-256 of Salt followed by
	// the plaintext token. NewToken fills both.
	Salt []byte `json:"salt"`
	Hash []byte `json:"hash"`
	// ExpiresAt is when the token stops working; the zero time means never.
	ExpiresAt time.Time `json:"expires_at"`
	// Revoked makes the token stop working at once.
	Revoked bool `json:"revoked"`
}

// Validate reports every problem with r at once, each matching
// ErrInvalidToken (or ErrInvalidName for the user), so that a malformed
// record is refused before it is stored.
func (r TokenRecord) Validate() error {
	var errs []error
	if !validTokenID(r.ID) {
		errs = append(errs, fmt.Errorf("%w: id must be %d base64url characters", ErrInvalidToken, TokenIDChars))
	}
	if err := ValidateName(r.User); err != nil {
		errs = append(errs, fmt.Errorf("token user: %w", err))
	}
	if len(r.Salt) != tokenSaltBytes {
		errs = append(errs, fmt.Errorf("%w: salt must be %d bytes, got %d", ErrInvalidToken, tokenSaltBytes, len(r.Salt)))
	}
	if len(r.Hash) != sha256.Size {
		errs = append(errs, fmt.Errorf("%w: hash must be %d bytes, got %d", ErrInvalidToken, sha256.Size, len(r.Hash)))
	}
	return errors.Join(errs...)
}

// NewToken issues a bearer token for user, valid until expires (the zero
// time: forever), drawing the token and its salt from rand
// (crypto/rand.Reader outside tests). It returns the plaintext, to be
// shown to the user once and never stored, and the record to store under
// rec.ID, which holds only a salted hash of it. It fails only when rand
// does.
func NewToken(rand io.Reader, user string, expires time.Time) (plaintext string, rec TokenRecord, err error) {
	if rand == nil {
		return "", TokenRecord{}, errors.New("auth: NewToken needs a random source, got nil")
	}
	b := make([]byte, tokenRandomBytes+tokenSaltBytes)
	if _, err := io.ReadFull(rand, b); err != nil {
		return "", TokenRecord{}, fmt.Errorf("auth: read token: %w", err)
	}
	body := base64.RawURLEncoding.EncodeToString(b[:tokenRandomBytes])
	plaintext = TokenPrefix + body
	salt := b[tokenRandomBytes:]
	return plaintext, TokenRecord{ID: body[:TokenIDChars], User: user, Salt: salt, Hash: hashToken(salt, plaintext), ExpiresAt: expires}, nil
}

// TokenID returns the id of a well-formed token without verifying it, for
// logs and for revoking a token its holder presents. ok is false for
// anything that is not shaped like a token.
func TokenID(plaintext string) (id string, ok bool) {
	body, ok := strings.CutPrefix(plaintext, TokenPrefix)
	if !ok || len(body) != tokenBodyChars {
		return "", false
	}
	if _, err := base64.RawURLEncoding.Strict().DecodeString(body); err != nil {
		return "", false
	}
	return body[:TokenIDChars], true
}

// Verify checks a presented bearer token and returns the user it
// authenticates. lookup returns the stored record for an id, or false; it
// must not block for long (it is called once, on the request path). A
// token expires when now reaches ExpiresAt.
//
// Errors: ErrInvalidToken for a malformed token, an unknown id, a hash
// mismatch, or a record that is not for this id or has no user;
// ErrRevokedToken; ErrExpiredToken. Revocation and expiry are checked only
// after the hash matches, so they are told only to the token's holder. The
// hash comparison is constant-time.
func Verify(plaintext string, lookup func(id string) (TokenRecord, bool), now time.Time) (string, error) {
	id, ok := TokenID(plaintext)
	if !ok {
		return "", fmt.Errorf("%w: malformed", ErrInvalidToken)
	}
	rec, found := lookup(id)
	if !found {
		return "", fmt.Errorf("%w: unknown id %s", ErrInvalidToken, id)
	}
	if subtle.ConstantTimeCompare(hashToken(rec.Salt, plaintext), rec.Hash) != 1 || rec.ID != id || rec.User == "" {
		return "", fmt.Errorf("%w: id %s does not match", ErrInvalidToken, id)
	}
	if rec.Revoked {
		return "", fmt.Errorf("%w: id %s", ErrRevokedToken, id)
	}
	if !rec.ExpiresAt.IsZero() && !now.Before(rec.ExpiresAt) {
		return "", fmt.Errorf("%w: id %s at %s", ErrExpiredToken, id, rec.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return rec.User, nil
}

// hashToken is the stored form of a token under salt.
func hashToken(salt []byte, plaintext string) []byte {
	h := sha256.New()
	h.Write(salt)
	h.Write([]byte(plaintext))
	return h.Sum(nil)
}

// validTokenID reports whether id has the shape of a token id.
func validTokenID(id string) bool {
	if len(id) != TokenIDChars {
		return false
	}
	for _, c := range id {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
