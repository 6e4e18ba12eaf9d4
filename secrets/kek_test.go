package secrets

import (
	"bytes"
	crand "crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeFile writes data to a new file in a test directory with mode perm.
func writeFile(t *testing.T, data []byte, perm os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kek")
	require.NoError(t, os.WriteFile(path, data, perm))
	require.NoError(t, os.Chmod(path, perm)) // beat the umask
	return path
}

func TestLoadKEKFile(t *testing.T) {
	t.Parallel()
	key := make([]byte, KeyBytes)
	for i := range key {
		key[i] = byte(i*7 + 1)
	}
	text := func(s string) []byte { return []byte(s) }
	cases := []struct {
		name string
		data []byte
		perm os.FileMode
		want []byte // nil: ErrBadKEK
	}{
		{"raw", key, 0o600, key},
		{"raw read-only", key, 0o400, key},
		{"hex", text(hex.EncodeToString(key)), 0o600, key},
		{"hex newline", text(hex.EncodeToString(key) + "\n"), 0o600, key},
		{"hex upper crlf", text(string(bytes.ToUpper([]byte(hex.EncodeToString(key)))) + "\r\n"), 0o600, key},
		{"base64 std newline", text(base64.StdEncoding.EncodeToString(key) + "\n"), 0o600, key},
		{"base64 url", text(base64.URLEncoding.EncodeToString(key)), 0o600, key},
		{"base64 raw std", text(base64.RawStdEncoding.EncodeToString(key)), 0o600, key},
		{"base64 raw url padded by spaces", text("  " + base64.RawURLEncoding.EncodeToString(key) + " \n"), 0o600, key},
		{"raw all zero", make([]byte, KeyBytes), 0o600, nil},
		{"hex all zero", text(hex.EncodeToString(make([]byte, KeyBytes))), 0o600, nil},
		{"empty", nil, 0o600, nil},
		{"31 raw bytes", key[:31], 0o600, nil},
		{"33 raw bytes", append(bytes.Clone(key), 9), 0o600, nil},
		{"hex of 16 bytes", text(hex.EncodeToString(key[:16])), 0o600, nil},
		{"hex with a bad digit", text("zz" + hex.EncodeToString(key)[2:]), 0o600, nil},
		{"base64 of 31 bytes", text(base64.StdEncoding.EncodeToString(key[:31])), 0o600, nil},
		{"passphrase", text("correct horse battery staple!!\n"), 0o600, nil},
		{"32-char passphrase", text("correct horse battery staple!!!!"), 0o600, nil},
		{"raw with printable prefix", append(text("abc"), key[3:]...), 0o600, append(text("abc"), key[3:]...)},
		{"too big", bytes.Repeat([]byte("a"), maxKEKFileBytes+1), 0o600, nil},
		{"group readable", key, 0o640, nil},
		{"world readable", text(hex.EncodeToString(key)), 0o644, nil},
		{"group writable", key, 0o620, nil},
		{"other executable", key, 0o601, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, tc.data, tc.perm)
			got, err := LoadKEKFile(path)
			if tc.want == nil {
				require.ErrorIs(t, err, ErrBadKEK)
				assert.Nil(t, got)
				assert.Contains(t, err.Error(), path, "the error names the file")
				if len(tc.data) >= 8 {
					assert.NotContains(t, err.Error(), string(tc.data[:8]), "the error must not show key material")
				}
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestLoadKEKFileNotAFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, err := LoadKEKFile(filepath.Join(dir, "missing"))
	assert.ErrorIs(t, err, fs.ErrNotExist)
	assert.NotErrorIs(t, err, ErrBadKEK)

	sub := filepath.Join(dir, "sub")
	require.NoError(t, os.Mkdir(sub, 0o700))
	_, err = LoadKEKFile(sub)
	assert.ErrorIs(t, err, ErrBadKEK)
}

func TestParseKEKDoesNotAlias(t *testing.T) {
	t.Parallel()
	raw := bytes.Repeat([]byte{5}, KeyBytes)
	got, err := ParseKEK(raw)
	require.NoError(t, err)
	raw[0] = 6
	assert.Equal(t, byte(5), got[0])
}

func TestGenerateKEKFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "kek")
	kek, err := GenerateKEKFile(path, crand.Reader)
	require.NoError(t, err)
	require.Len(t, kek, KeyBytes)

	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	loaded, err := LoadKEKFile(path)
	require.NoError(t, err)
	assert.Equal(t, kek, loaded)

	_, err = GenerateKEKFile(path, crand.Reader)
	assert.ErrorIs(t, err, fs.ErrExist, "never overwrites")
	again, err := LoadKEKFile(path)
	require.NoError(t, err)
	assert.Equal(t, kek, again)

	_, err = GenerateKEKFile(filepath.Join(t.TempDir(), "k2"), &failAfter{r: crand.Reader, n: 3})
	assert.ErrorIs(t, err, errNoEntropy)
	_, err = GenerateKEKFile(filepath.Join(t.TempDir(), "k3"), nil)
	assert.Error(t, err)

	// A generated KEK works end to end.
	k, err := NewKeyring(kek, crand.Reader)
	require.NoError(t, err)
	_, err = OpenKeyring(loaded, k.Wrapped())
	assert.NoError(t, err)
}

func TestDeriveDevKEK(t *testing.T) {
	t.Parallel()
	a := DeriveDevKEK("dev")
	assert.Len(t, a, KeyBytes)
	assert.Equal(t, a, DeriveDevKEK("dev"), "the same name gives the same key")
	assert.NotEqual(t, a, DeriveDevKEK("dev2"))
	assert.NotEqual(t, a, DeriveDevKEK(""))
	assert.NoError(t, checkKEK(DeriveDevKEK("")))

	k, err := NewKeyring(a, crand.Reader)
	require.NoError(t, err)
	_, err = OpenKeyring(DeriveDevKEK("dev"), k.Wrapped())
	assert.NoError(t, err, "a dev cluster reopens its keyring after a restart")
}
