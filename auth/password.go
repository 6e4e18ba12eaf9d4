package auth

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Password length bounds, in bytes, for HashPassword.
const (
	MinPasswordBytes = 8
	MaxPasswordBytes = 1024
)

// Bounds for PasswordParams, enforced when hashing and when checking a
// stored hash (the upper bound on iterations keeps a corrupt hash from
// pinning a CPU).
const (
	minIterations = 1000
	maxIterations = 10_000_000
	minSaltBytes  = 16
	maxSaltBytes  = 64
	minKeyBytes   = 16
	maxKeyBytes   = 64
)

// hashScheme names the KDF in an encoded hash.
const hashScheme = "pbkdf2-sha256"

// PasswordParams are the PBKDF2-HMAC-SHA256 parameters of a password hash.
// They are encoded into every hash, so raising them later leaves old
// hashes checkable; NeedsRehash tells when to re-hash at the next login.
type PasswordParams struct {
	// Iterations is the PBKDF2 iteration count. Default 600000 (OWASP's
	// 2023 figure for PBKDF2-HMAC-SHA256); 1000..10000000.
	Iterations int
	// SaltBytes is the length of the random salt. Default 16; 16..64.
	SaltBytes int
	// KeyBytes is the length of the derived key. Default 32; 16..64.
	KeyBytes int
}

// DefaultPasswordParams returns the parameters HashPassword uses.
func DefaultPasswordParams() PasswordParams {
	return PasswordParams{Iterations: 600_000, SaltBytes: 16, KeyBytes: 32}
}

// Validate reports every parameter out of range at once, each matching
// ErrInvalidConfig. It never changes p.
func (p PasswordParams) Validate() error {
	var errs []error
	if p.Iterations < minIterations || p.Iterations > maxIterations {
		errs = append(errs, fmt.Errorf("%w: password iterations must be %d..%d, got %d", ErrInvalidConfig, minIterations, maxIterations, p.Iterations))
	}
	if p.SaltBytes < minSaltBytes || p.SaltBytes > maxSaltBytes {
		errs = append(errs, fmt.Errorf("%w: password salt must be %d..%d bytes, got %d", ErrInvalidConfig, minSaltBytes, maxSaltBytes, p.SaltBytes))
	}
	if p.KeyBytes < minKeyBytes || p.KeyBytes > maxKeyBytes {
		errs = append(errs, fmt.Errorf("%w: password key must be %d..%d bytes, got %d", ErrInvalidConfig, minKeyBytes, maxKeyBytes, p.KeyBytes))
	}
	return errors.Join(errs...)
}

// HashPassword returns a salted hash of pw for storage, with
// DefaultPasswordParams and a salt from crypto/rand. It costs as much
// CPU as one login check (around 100 ms of one core with the defaults),
// which is the point; rate-limit callers with a Limiter.
//
// It returns ErrInvalidPassword for a password outside
// MinPasswordBytes..MaxPasswordBytes.
func HashPassword(pw string) (string, error) {
	return HashPasswordWith(pw, DefaultPasswordParams(), rand.Reader)
}

// HashPasswordWith is HashPassword with explicit parameters and salt
// source (crypto/rand.Reader outside tests). The result has the form
//
//	$pbkdf2-sha256$i=ITERATIONS$SALT$KEY
//
// with SALT and KEY in unpadded standard base64. Errors:
// ErrInvalidPassword; ErrInvalidConfig when p.Validate fails; the
// error of rand or of the KDF (which rejects some inputs when Go runs in
// FIPS 140-only mode).
func HashPasswordWith(pw string, p PasswordParams, rand io.Reader) (string, error) {
	if len(pw) < MinPasswordBytes || len(pw) > MaxPasswordBytes {
		return "", fmt.Errorf("%w: must be %d to %d bytes, got %d", ErrInvalidPassword, MinPasswordBytes, MaxPasswordBytes, len(pw))
	}
	if err := p.Validate(); err != nil {
		return "", err
	}
	if rand == nil {
		return "", errors.New("auth: HashPasswordWith needs a random source, got nil")
	}
	salt := make([]byte, p.SaltBytes)
	if _, err := io.ReadFull(rand, salt); err != nil {
		return "", fmt.Errorf("auth: read salt: %w", err)
	}
	key, err := pbkdf2.Key(sha256.New, pw, salt, p.Iterations, p.KeyBytes)
	if err != nil {
		return "", fmt.Errorf("auth: derive password key: %w", err)
	}
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$%s$i=%d$%s$%s", hashScheme, p.Iterations, enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

// parsedHash is a decoded password hash.
type parsedHash struct {
	iterations int
	salt, key  []byte
}

// parseHash decodes a hash made by HashPasswordWith, checking that its
// parameters are in range.
func parseHash(h string) (parsedHash, error) {
	bad := func(why string) (parsedHash, error) { return parsedHash{}, fmt.Errorf("%w: %s", ErrBadHash, why) }
	f := strings.Split(h, "$")
	if len(f) != 5 || f[0] != "" {
		return bad("want $scheme$params$salt$key")
	}
	if f[1] != hashScheme {
		return bad("unknown scheme")
	}
	it, ok := strings.CutPrefix(f[2], "i=")
	if !ok {
		return bad("missing iterations")
	}
	n, err := strconv.Atoi(it)
	if err != nil || n < minIterations || n > maxIterations || strconv.Itoa(n) != it {
		return bad("iterations out of range")
	}
	enc := base64.RawStdEncoding.Strict()
	salt, err := enc.DecodeString(f[3])
	if err != nil || len(salt) < minSaltBytes || len(salt) > maxSaltBytes {
		return bad("bad salt")
	}
	key, err := enc.DecodeString(f[4])
	if err != nil || len(key) < minKeyBytes || len(key) > maxKeyBytes {
		return bad("bad key")
	}
	return parsedHash{iterations: n, salt: salt, key: key}, nil
}

// dummyHash stands in for the hash of a user that does not exist, so that
// checking an unknown user costs as much as checking a known one.
func dummyHash() parsedHash {
	p := DefaultPasswordParams()
	return parsedHash{iterations: p.Iterations, salt: make([]byte, p.SaltBytes), key: make([]byte, p.KeyBytes)}
}

// CheckPassword reports whether pw matches hash, a value from
// HashPassword: nil on a match, ErrWrongPassword on a mismatch, ErrBadHash
// when hash cannot be parsed.
//
// For an unknown user pass the empty hash: CheckPassword then spends the
// same time as a real check and returns ErrWrongPassword, so a caller that
// answers both cases alike does not reveal which users exist. The
// comparison of derived keys is constant-time. Any other error comes from
// the KDF itself.
func CheckPassword(hash, pw string) error {
	ph := dummyHash()
	if hash != "" {
		var err error
		if ph, err = parseHash(hash); err != nil {
			return err
		}
	}
	if len(pw) > MaxPasswordBytes {
		// Never hashed; the length is the caller's own input.
		return ErrWrongPassword
	}
	got, err := pbkdf2.Key(sha256.New, pw, ph.salt, ph.iterations, len(ph.key))
	if err != nil {
		return fmt.Errorf("auth: derive password key: %w", err)
	}
	if subtle.ConstantTimeCompare(got, ph.key) != 1 || hash == "" {
		return ErrWrongPassword
	}
	return nil
}

// NeedsRehash reports whether hash was made with weaker parameters than p
// (fewer iterations, a shorter salt or key) or cannot be parsed. A caller
// that has just verified the password re-hashes it with HashPassword and
// stores the result.
func NeedsRehash(hash string, p PasswordParams) bool {
	ph, err := parseHash(hash)
	if err != nil {
		return true
	}
	return ph.iterations < p.Iterations || len(ph.salt) < p.SaltBytes || len(ph.key) < p.KeyBytes
}
