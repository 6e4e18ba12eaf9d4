package auth

import (
	crand "crypto/rand"
	"errors"
	"io"
	mrand "math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fastParams keeps password tests quick; production uses the defaults.
var fastParams = PasswordParams{Iterations: minIterations, SaltBytes: 16, KeyBytes: 32}

// seeded returns a deterministic random source.
func seeded(seed byte) io.Reader {
	var s [32]byte
	s[0] = seed
	return mrand.NewChaCha8(s)
}

var errNoEntropy = errors.New("no entropy")

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errNoEntropy }

func mustHash(t *testing.T, pw string) string {
	t.Helper()
	h, err := HashPasswordWith(pw, fastParams, crand.Reader)
	require.NoError(t, err)
	return h
}

func TestHashPasswordDefault(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("600000 PBKDF2 iterations")
	}
	h, err := HashPassword("correct horse")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(h, "$pbkdf2-sha256$i=600000$"), "hash %q", h)
	assert.NoError(t, CheckPassword(h, "correct horse"))
	assert.ErrorIs(t, CheckPassword(h, "correct horsE"), ErrWrongPassword)
	assert.False(t, NeedsRehash(h, DefaultPasswordParams()))
	assert.NotContains(t, h, "correct horse")
}

func TestCheckPassword(t *testing.T) {
	t.Parallel()
	h := mustHash(t, "hunter22")
	long := strings.Repeat("p", MaxPasswordBytes)
	hLong := mustHash(t, long)
	cases := []struct {
		name string
		hash string
		pw   string
		want error
	}{
		{"match", h, "hunter22", nil},
		{"wrong", h, "hunter23", ErrWrongPassword},
		{"prefix", h, "hunter2", ErrWrongPassword},
		{"extended", h, "hunter222", ErrWrongPassword},
		{"case", h, "HUNTER22", ErrWrongPassword},
		{"empty password", h, "", ErrWrongPassword},
		{"longest", hLong, long, nil},
		{"too long", hLong, long + "p", ErrWrongPassword},
		{"unicode", mustHash(t, "pässwörd✓"), "pässwörd✓", nil},
		{"unknown user", "", "hunter22", ErrWrongPassword},
		{"unknown user empty password", "", "", ErrWrongPassword},
		{"garbage hash", "not a hash", "hunter22", ErrBadHash},
		{"plaintext stored as hash", "hunter22", "hunter22", ErrBadHash},
		{"bcrypt", "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy", "x", ErrBadHash},
		{"other scheme", strings.Replace(h, "pbkdf2-sha256", "pbkdf2-sha1", 1), "hunter22", ErrBadHash},
		{"iterations too low", strings.Replace(h, "i=1000$", "i=999$", 1), "hunter22", ErrBadHash},
		{"iterations too high", strings.Replace(h, "i=1000$", "i=10000001$", 1), "hunter22", ErrBadHash},
		{"iterations not canonical", strings.Replace(h, "i=1000$", "i=01000$", 1), "hunter22", ErrBadHash},
		{"iterations missing", strings.Replace(h, "i=1000$", "1000$", 1), "hunter22", ErrBadHash},
		{"iterations raised", strings.Replace(h, "i=1000$", "i=1001$", 1), "hunter22", ErrWrongPassword},
		{"extra field", h + "$x", "hunter22", ErrBadHash},
		{"short salt", "$pbkdf2-sha256$i=1000$AAAA$" + strings.Split(h, "$")[4], "hunter22", ErrBadHash},
		{"bad base64 key", h[:len(h)-1] + "!", "hunter22", ErrBadHash},
		{"truncated key", h[:len(h)-30], "hunter22", ErrBadHash},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := CheckPassword(tc.hash, tc.pw)
			if tc.want == nil {
				assert.NoError(t, err)
				return
			}
			assert.ErrorIs(t, err, tc.want)
			if tc.pw != "" {
				assert.NotContains(t, err.Error(), tc.pw, "errors never show the password")
			}
		})
	}
}

func TestHashPasswordWith(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		pw   string
		p    PasswordParams
		rand io.Reader
		want error // nil: success
	}{
		{"ok", "12345678", fastParams, crand.Reader, nil},
		{"bigger params", "12345678", PasswordParams{Iterations: 2000, SaltBytes: 32, KeyBytes: 64}, crand.Reader, nil},
		{"too short", "1234567", fastParams, crand.Reader, ErrInvalidPassword},
		{"empty", "", fastParams, crand.Reader, ErrInvalidPassword},
		{"too long", strings.Repeat("x", MaxPasswordBytes+1), fastParams, crand.Reader, ErrInvalidPassword},
		{"rand fails", "12345678", fastParams, failingReader{}, errNoEntropy},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, err := HashPasswordWith(tc.pw, tc.p, tc.rand)
			if tc.want != nil {
				assert.ErrorIs(t, err, tc.want)
				assert.Empty(t, h)
				return
			}
			require.NoError(t, err)
			assert.NoError(t, CheckPassword(h, tc.pw))
			assert.False(t, NeedsRehash(h, tc.p))
		})
	}

	_, err := HashPasswordWith("12345678", fastParams, nil)
	assert.Error(t, err)

	// Bad parameters are all reported at once.
	_, err = HashPasswordWith("12345678", PasswordParams{Iterations: 1, SaltBytes: 8, KeyBytes: 100}, crand.Reader)
	require.Error(t, err)
	for _, want := range []string{"iterations", "salt", "key"} {
		assert.Contains(t, err.Error(), want)
	}
}

func TestHashPasswordSalted(t *testing.T) {
	t.Parallel()
	a := mustHash(t, "same password")
	b := mustHash(t, "same password")
	assert.NotEqual(t, a, b, "each hash has its own salt")

	// With a fixed source the hash is reproducible.
	c, err := HashPasswordWith("same password", fastParams, seeded(1))
	require.NoError(t, err)
	d, err := HashPasswordWith("same password", fastParams, seeded(1))
	require.NoError(t, err)
	assert.Equal(t, c, d)
}

func TestPasswordParamsValidate(t *testing.T) {
	t.Parallel()
	assert.NoError(t, DefaultPasswordParams().Validate())
	assert.NoError(t, fastParams.Validate())
	for _, p := range []PasswordParams{
		{Iterations: 999, SaltBytes: 16, KeyBytes: 32},
		{Iterations: maxIterations + 1, SaltBytes: 16, KeyBytes: 32},
		{Iterations: 1000, SaltBytes: 15, KeyBytes: 32},
		{Iterations: 1000, SaltBytes: 65, KeyBytes: 32},
		{Iterations: 1000, SaltBytes: 16, KeyBytes: 15},
		{Iterations: 1000, SaltBytes: 16, KeyBytes: 65},
		{},
	} {
		assert.ErrorIs(t, p.Validate(), ErrInvalidConfig, "%+v", p)
	}
}

func TestNeedsRehash(t *testing.T) {
	t.Parallel()
	h := mustHash(t, "hunter22")
	cases := []struct {
		name string
		hash string
		p    PasswordParams
		want bool
	}{
		{"same params", h, fastParams, false},
		{"weaker target", h, PasswordParams{Iterations: minIterations, SaltBytes: 16, KeyBytes: 16}, false},
		{"more iterations", h, DefaultPasswordParams(), true},
		{"longer salt", h, PasswordParams{Iterations: minIterations, SaltBytes: 32, KeyBytes: 32}, true},
		{"longer key", h, PasswordParams{Iterations: minIterations, SaltBytes: 16, KeyBytes: 64}, true},
		{"unparsable", "garbage", fastParams, true},
		{"empty", "", fastParams, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, NeedsRehash(tc.hash, tc.p))
		})
	}
}

// TestUnknownUserRunsKDF checks, without measuring time, that the empty
// hash of an unknown user goes through the same derivation as a real
// hash: the dummy has the default cost, so the two paths cost the same.
func TestUnknownUserRunsKDF(t *testing.T) {
	t.Parallel()
	d := dummyHash()
	p := DefaultPasswordParams()
	assert.Equal(t, p.Iterations, d.iterations)
	assert.Len(t, d.salt, p.SaltBytes)
	assert.Len(t, d.key, p.KeyBytes)
	if testing.Short() {
		t.Skip("600000 PBKDF2 iterations")
	}
	assert.ErrorIs(t, CheckPassword("", "anything at all"), ErrWrongPassword)
}
