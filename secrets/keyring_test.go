package secrets

import (
	"bytes"
	crand "crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	mrand "math/rand/v2"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testKEK is a fixed, non-zero key-encryption key for tests.
var testKEK = bytes.Repeat([]byte{0x42}, KeyBytes)

// seeded returns a deterministic random source; the same seed gives the
// same stream.
func seeded(seed byte) io.Reader {
	var s [32]byte
	s[0] = seed
	return mrand.NewChaCha8(s)
}

// recorder remembers every byte it hands out, so tests know the keys a
// keyring drew.
type recorder struct {
	r   io.Reader
	got []byte
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.got = append(r.got, p[:n]...)
	return n, err
}

// failAfter serves n bytes from r and then fails.
type failAfter struct {
	r io.Reader
	n int
}

var errNoEntropy = errors.New("no entropy")

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errNoEntropy
	}
	if len(p) > f.n {
		p = p[:f.n]
	}
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

func newTestKeyring(t testing.TB) *Keyring {
	t.Helper()
	k, err := NewKeyring(testKEK, crand.Reader)
	require.NoError(t, err)
	return k
}

// envelopeKeyID reads the data key id from an envelope's header.
func envelopeKeyID(t *testing.T, env []byte) KeyID {
	t.Helper()
	require.True(t, IsEnvelope(env))
	return KeyID(binary.BigEndian.Uint32(env[5:9]))
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	k := newTestKeyring(t)
	big := make([]byte, 1<<20)
	_, _ = seeded(1).Read(big)
	cases := []struct {
		name      string
		plaintext []byte
		aad       []byte
	}{
		{"empty", nil, []byte("app/x")},
		{"one byte", []byte{0}, []byte("app/x")},
		{"text", []byte("hunter2"), []byte("users/42/password")},
		{"no aad", []byte("hunter2"), nil},
		{"binary 1MiB", big, []byte("blobs/1")},
		{"looks like an envelope", []byte(magic + "\x01rest"), []byte("k")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env, err := k.Encrypt(tc.plaintext, tc.aad)
			require.NoError(t, err)
			assert.Len(t, env, len(tc.plaintext)+EnvelopeOverhead)
			assert.True(t, IsEnvelope(env))
			assert.Equal(t, KeyID(1), envelopeKeyID(t, env))
			got, err := k.Decrypt(env, tc.aad)
			require.NoError(t, err)
			assert.True(t, bytes.Equal(tc.plaintext, got), "decrypted value differs from the plaintext")
		})
	}
}

func TestEncryptDoesNotAliasInputs(t *testing.T) {
	t.Parallel()
	k := newTestKeyring(t)
	pt := []byte("secret value")
	aad := []byte("app/x")
	env, err := k.Encrypt(pt, aad)
	require.NoError(t, err)
	pt[0], aad[0] = 'X', 'X'
	got, err := k.Decrypt(env, []byte("app/x"))
	require.NoError(t, err)
	assert.Equal(t, "secret value", string(got))
}

func TestDecryptWrongAAD(t *testing.T) {
	t.Parallel()
	k := newTestKeyring(t)
	env, err := k.Encrypt([]byte("s3cret"), []byte("app/x"))
	require.NoError(t, err)
	for _, aad := range []string{"app/y", "app/x ", "app/", "", "APP/X"} {
		t.Run(aad, func(t *testing.T) {
			t.Parallel()
			got, err := k.Decrypt(env, []byte(aad))
			assert.ErrorIs(t, err, ErrCorrupt)
			assert.Nil(t, got)
		})
	}
}

func TestDecryptTampered(t *testing.T) {
	t.Parallel()
	k := newTestKeyring(t)
	aad := []byte("app/x")
	env, err := k.Encrypt([]byte("a secret worth protecting"), aad)
	require.NoError(t, err)

	// Every single-bit flip anywhere in the envelope must fail.
	for i := range env {
		for bit := range 8 {
			bad := bytes.Clone(env)
			bad[i] ^= 1 << bit
			got, err := k.Decrypt(bad, aad)
			require.Error(t, err, "flip byte %d bit %d", i, bit)
			require.Nil(t, got)
			if i >= 5 && i < 9 {
				// The key id: another id is unknown to this keyring.
				require.ErrorIs(t, err, ErrUnknownKey, "flip byte %d bit %d", i, bit)
			} else {
				require.ErrorIs(t, err, ErrCorrupt, "flip byte %d bit %d", i, bit)
			}
		}
	}
	// Every truncation, and any extension, must fail.
	for n := range len(env) {
		_, err := k.Decrypt(env[:n], aad)
		require.ErrorIs(t, err, ErrCorrupt, "truncated to %d bytes", n)
	}
	_, err = k.Decrypt(append(bytes.Clone(env), 0), aad)
	assert.ErrorIs(t, err, ErrCorrupt)

	// The key id is authenticated: relabelling an id-1 envelope as id 2,
	// which the keyring holds after a rotation, still fails.
	_, err = k.Rotate(crand.Reader)
	require.NoError(t, err)
	relabelled := bytes.Clone(env)
	binary.BigEndian.PutUint32(relabelled[5:9], 2)
	_, err = k.Decrypt(relabelled, aad)
	assert.ErrorIs(t, err, ErrCorrupt)
}

func TestDecryptErrorsHideData(t *testing.T) {
	t.Parallel()
	k := newTestKeyring(t)
	env, err := k.Encrypt([]byte("PLAINTEXT"), []byte("app/x"))
	require.NoError(t, err)
	bad := bytes.Clone(env)
	bad[len(bad)-1] ^= 1
	_, err = k.Decrypt(bad, []byte("app/x"))
	require.Error(t, err)
	msg := err.Error()
	assert.NotContains(t, msg, "PLAINTEXT")
	assert.NotContains(t, msg, hex.EncodeToString(env[headerBytes:]))
	assert.NotContains(t, msg, string(env[headerBytes:]))
}

func TestEnvelopeNeverContainsPlaintext(t *testing.T) {
	t.Parallel()
	k := newTestKeyring(t)
	cases := map[string][]byte{
		"short":    []byte("hunter22"),
		"text":     []byte("correct horse battery staple"),
		"repeated": bytes.Repeat([]byte("A"), 4096),
		"zeros":    make([]byte, 256),
	}
	for name, pt := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			aad := []byte("users/" + name + "/secret")
			for range 50 {
				env, err := k.Encrypt(pt, aad)
				require.NoError(t, err)
				// Any run of 8 plaintext bytes
				// showing up in the ciphertext would be a leak.
				probe := pt[:8]
				assert.False(t, bytes.Contains(env[headerBytes:], probe), "envelope contains plaintext bytes")
				assert.False(t, bytes.Contains(env, aad), "envelope contains the aad")
			}
		})
	}
}

func TestNoncesNeverRepeat(t *testing.T) {
	t.Parallel()
	k := newTestKeyring(t)
	const n = 20000
	seen := make(map[[NonceBytes]byte]struct{}, n)
	for i := range n {
		env, err := k.Encrypt([]byte("same value every time"), []byte("same/key"))
		require.NoError(t, err)
		var nonce [NonceBytes]byte
		copy(nonce[:], env[headerBytes:])
		_, dup := seen[nonce]
		require.False(t, dup, "nonce repeated at encrypt %d", i)
		seen[nonce] = struct{}{}
	}
}

func TestEncryptSameInputTwiceDiffers(t *testing.T) {
	t.Parallel()
	// Even a deterministic source yields fresh nonces: it is a stream.
	k, err := NewKeyring(testKEK, seeded(7))
	require.NoError(t, err)
	a, err := k.Encrypt([]byte("v"), []byte("k"))
	require.NoError(t, err)
	b, err := k.Encrypt([]byte("v"), []byte("k"))
	require.NoError(t, err)
	assert.NotEqual(t, a, b)
}

func TestDeterministicWithSeededRand(t *testing.T) {
	t.Parallel()
	build := func() ([]byte, []byte) {
		k, err := NewKeyring(testKEK, seeded(3))
		require.NoError(t, err)
		env, err := k.Encrypt([]byte("v"), []byte("k"))
		require.NoError(t, err)
		return k.Wrapped().Marshal(), env
	}
	w1, e1 := build()
	w2, e2 := build()
	assert.Equal(t, w1, w2)
	assert.Equal(t, e1, e2)
}

func TestRotate(t *testing.T) {
	t.Parallel()
	k := newTestKeyring(t)
	assert.Equal(t, KeyID(1), k.Current())
	old, err := k.Encrypt([]byte("old secret"), []byte("a"))
	require.NoError(t, err)

	for want := KeyID(2); want <= 4; want++ {
		id, err := k.Rotate(crand.Reader)
		require.NoError(t, err)
		assert.Equal(t, want, id)
		assert.Equal(t, want, k.Current())
		env, err := k.Encrypt([]byte("new secret"), []byte("b"))
		require.NoError(t, err)
		assert.Equal(t, want, envelopeKeyID(t, env))
		got, err := k.Decrypt(env, []byte("b"))
		require.NoError(t, err)
		assert.Equal(t, "new secret", string(got))
	}
	got, err := k.Decrypt(old, []byte("a"))
	require.NoError(t, err)
	assert.Equal(t, "old secret", string(got))

	// The rotation survives persistence, and a keyring opened before it
	// reports the new key as unknown rather than corrupt.
	w := k.Wrapped()
	require.Len(t, w.DataKeys, 4)
	assert.Equal(t, KeyID(4), w.Current)
	reopened, err := OpenKeyring(testKEK, w)
	require.NoError(t, err)
	assert.Equal(t, KeyID(4), reopened.Current())
	got, err = reopened.Decrypt(old, []byte("a"))
	require.NoError(t, err)
	assert.Equal(t, "old secret", string(got))

	stale := newTestKeyring(t)
	env, err := reopened.Encrypt([]byte("x"), nil)
	require.NoError(t, err)
	_, err = stale.Decrypt(env, nil)
	assert.ErrorIs(t, err, ErrUnknownKey)

	_, err = k.Rotate(nil)
	assert.Error(t, err)
}

func TestWrappedOpenRoundTrip(t *testing.T) {
	t.Parallel()
	k := newTestKeyring(t)
	_, err := k.Rotate(crand.Reader)
	require.NoError(t, err)
	env1, err := k.Encrypt([]byte("one"), []byte("k1"))
	require.NoError(t, err)

	b := k.Wrapped().Marshal()
	assert.Equal(t, b, k.Wrapped().Marshal(), "Wrapped must be stable between rotations")
	w, err := UnmarshalWrapped(b)
	require.NoError(t, err)
	assert.Equal(t, k.Wrapped(), w)

	o, err := OpenKeyring(testKEK, w)
	require.NoError(t, err)
	assert.Equal(t, b, o.Wrapped().Marshal(), "reopening must not change the persisted form")
	got, err := o.Decrypt(env1, []byte("k1"))
	require.NoError(t, err)
	assert.Equal(t, "one", string(got))
	env2, err := o.Encrypt([]byte("two"), []byte("k2"))
	require.NoError(t, err)
	got, err = k.Decrypt(env2, []byte("k2"))
	require.NoError(t, err)
	assert.Equal(t, "two", string(got))

	// The returned value is a copy.
	w2 := k.Wrapped()
	w2.ClusterKey[0] ^= 1
	w2.DataKeys[0].Key[0] ^= 1
	assert.Equal(t, b, k.Wrapped().Marshal())
}

func TestWrappedNeverContainsKeys(t *testing.T) {
	t.Parallel()
	rec := &recorder{r: crand.Reader}
	k, err := NewKeyring(testKEK, rec)
	require.NoError(t, err)
	_, err = k.Rotate(rec)
	require.NoError(t, err)
	// The draws: cluster key, its nonce, data key 1, its nonce, data key
	// 2, its nonce.
	require.Len(t, rec.got, 3*(KeyBytes+NonceBytes))
	keys := [][]byte{testKEK}
	for i := range 3 {
		off := i * (KeyBytes + NonceBytes)
		keys = append(keys, rec.got[off:off+KeyBytes])
	}
	b := k.Wrapped().Marshal()
	for i, key := range keys {
		for _, enc := range [][]byte{key, []byte(hex.EncodeToString(key)), []byte(base64.StdEncoding.EncodeToString(key))} {
			assert.False(t, bytes.Contains(b, enc), "persisted keyring contains key %d", i)
		}
		assert.False(t, bytes.Contains(b, []byte(base64.StdEncoding.EncodeToString(key)[:20])), "persisted keyring contains key %d", i)
	}
}

func TestOpenWrongKEK(t *testing.T) {
	t.Parallel()
	k := newTestKeyring(t)
	other := bytes.Repeat([]byte{0x43}, KeyBytes)
	_, err := OpenKeyring(other, k.Wrapped())
	assert.ErrorIs(t, err, ErrWrongKEK)
	assert.NotErrorIs(t, err, ErrCorrupt)
	_, err = OpenKeyring(DeriveDevKEK("c1"), k.Wrapped())
	assert.ErrorIs(t, err, ErrWrongKEK)
}

func TestBadKEK(t *testing.T) {
	t.Parallel()
	w := newTestKeyring(t).Wrapped()
	cases := map[string][]byte{
		"nil":      nil,
		"short":    testKEK[:31],
		"long":     append(bytes.Clone(testKEK), 1),
		"all zero": make([]byte, KeyBytes),
		"aes-128":  testKEK[:16],
	}
	for name, kek := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := NewKeyring(kek, crand.Reader)
			assert.ErrorIs(t, err, ErrBadKEK)
			_, err = OpenKeyring(kek, w)
			assert.ErrorIs(t, err, ErrBadKEK)
		})
	}
}

func TestOpenCorrupt(t *testing.T) {
	t.Parallel()
	k := newTestKeyring(t)
	_, err := k.Rotate(crand.Reader)
	require.NoError(t, err)
	good := k.Wrapped()
	cases := []struct {
		name   string
		mutate func(w *WrappedKeyring)
		want   error
	}{
		{"future version", func(w *WrappedKeyring) { w.Version = 2 }, ErrCorrupt},
		{"zero version", func(w *WrappedKeyring) { w.Version = 0 }, ErrCorrupt},
		{"no data keys", func(w *WrappedKeyring) { w.DataKeys = nil }, ErrCorrupt},
		{"duplicate id", func(w *WrappedKeyring) { w.DataKeys[1].ID = 1 }, ErrCorrupt},
		{"zero id", func(w *WrappedKeyring) { w.DataKeys[0].ID = 0 }, ErrCorrupt},
		{"current missing", func(w *WrappedKeyring) { w.Current = 9 }, ErrCorrupt},
		{"data key tampered", func(w *WrappedKeyring) { w.DataKeys[0].Key[20] ^= 1 }, ErrCorrupt},
		{"data key truncated", func(w *WrappedKeyring) { w.DataKeys[0].Key = w.DataKeys[0].Key[:10] }, ErrCorrupt},
		{"data key ids swapped", func(w *WrappedKeyring) {
			w.DataKeys[0].Key, w.DataKeys[1].Key = w.DataKeys[1].Key, w.DataKeys[0].Key
		}, ErrCorrupt},
		{"data key wrapped as cluster key", func(w *WrappedKeyring) { w.ClusterKey = w.DataKeys[0].Key }, ErrWrongKEK},
		{"cluster key tampered", func(w *WrappedKeyring) { w.ClusterKey[NonceBytes] ^= 1 }, ErrWrongKEK},
		{"cluster key missing", func(w *WrappedKeyring) { w.ClusterKey = nil }, ErrWrongKEK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := good.clone()
			tc.mutate(&w)
			_, err := OpenKeyring(testKEK, w)
			assert.ErrorIs(t, err, tc.want)
		})
	}

	for _, b := range []string{"", "{", "[]", `{"version":"x"}`, "\x00"} {
		_, err := UnmarshalWrapped([]byte(b))
		assert.ErrorIs(t, err, ErrCorrupt, "input %q", b)
	}
}

func TestOpenSortsDataKeys(t *testing.T) {
	t.Parallel()
	k := newTestKeyring(t)
	_, err := k.Rotate(crand.Reader)
	require.NoError(t, err)
	want := k.Wrapped()
	w := want.clone()
	w.DataKeys[0], w.DataKeys[1] = w.DataKeys[1], w.DataKeys[0]
	o, err := OpenKeyring(testKEK, w)
	require.NoError(t, err)
	assert.Equal(t, want.Marshal(), o.Wrapped().Marshal())
	id, err := o.Rotate(crand.Reader)
	require.NoError(t, err)
	assert.Equal(t, KeyID(3), id)
}

func TestIsEnvelope(t *testing.T) {
	t.Parallel()
	env, err := newTestKeyring(t).Encrypt([]byte("x"), nil)
	require.NoError(t, err)
	future := bytes.Clone(env)
	future[4] = 2
	cases := []struct {
		name string
		b    []byte
		want bool
	}{
		{"nil", nil, false},
		{"text", []byte("hello world, this is a plain value of some length"), false},
		{"magic only", []byte(magic + "\x01"), false},
		{"one byte short", env[:EnvelopeOverhead-1][:EnvelopeOverhead-1], false},
		{"empty plaintext length", append([]byte(magic+"\x01"), make([]byte, EnvelopeOverhead-5)...), true},
		{"envelope", env, true},
		{"unknown version", future, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, IsEnvelope(tc.b))
		})
	}
	// No valid UTF-8 text is an envelope.
	assert.False(t, utf8.Valid(env[:1]))
}

func TestRandomSourceFailures(t *testing.T) {
	t.Parallel()
	_, err := NewKeyring(testKEK, nil)
	assert.Error(t, err)
	for n := range 2 * (KeyBytes + NonceBytes) {
		_, err := NewKeyring(testKEK, &failAfter{r: crand.Reader, n: n})
		assert.ErrorIs(t, err, errNoEntropy, "failing after %d bytes", n)
	}
	k, err := NewKeyring(testKEK, &failAfter{r: crand.Reader, n: 2 * (KeyBytes + NonceBytes)})
	require.NoError(t, err)
	_, err = k.Encrypt([]byte("x"), nil)
	assert.ErrorIs(t, err, errNoEntropy)

	k = newTestKeyring(t)
	_, err = k.Rotate(&failAfter{r: crand.Reader, n: KeyBytes + 3})
	assert.ErrorIs(t, err, errNoEntropy)
	assert.Equal(t, KeyID(1), k.Current(), "a failed rotation changes nothing")
	assert.Len(t, k.Wrapped().DataKeys, 1)
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	k := newTestKeyring(t)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			aad := []byte{byte(g)}
			for range 200 {
				env, err := k.Encrypt([]byte("v"), aad)
				if !assert.NoError(t, err) {
					return
				}
				got, err := k.Decrypt(env, aad)
				if !assert.NoError(t, err) || !assert.Equal(t, "v", string(got)) {
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			_, err := k.Rotate(crand.Reader)
			assert.NoError(t, err)
			_ = k.Wrapped()
		}
	})
	wg.Wait()
	assert.Equal(t, KeyID(21), k.Current())
}

// FuzzDecrypt checks that no input makes Decrypt panic and that every
// failure is one of the two documented sentinels. Run with -fuzz to
// explore beyond the seeds.
func FuzzDecrypt(f *testing.F) {
	k, err := NewKeyring(testKEK, seeded(9))
	require.NoError(f, err)
	env, err := k.Encrypt([]byte("seed secret"), []byte("app/x"))
	require.NoError(f, err)
	f.Add(env, []byte("app/x"))
	f.Add(env, []byte("app/y"))
	f.Add(env[:len(env)-1], []byte("app/x"))
	f.Add(env[:EnvelopeOverhead], []byte(nil))
	f.Add([]byte(magic+"\x01"), []byte(nil))
	f.Add([]byte(magic+"\x01\xff\xff\xff\xff"+string(make([]byte, 40))), []byte("k"))
	f.Add([]byte{}, []byte{})
	f.Add([]byte("plain text value"), []byte("k"))
	f.Fuzz(func(t *testing.T, b, aad []byte) {
		pt, err := k.Decrypt(b, aad)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnknownKey) {
				t.Fatalf("Decrypt error %v is neither ErrCorrupt nor ErrUnknownKey", err)
			}
			if pt != nil {
				t.Fatal("Decrypt returned plaintext with an error")
			}
			return
		}
		if !bytes.Equal(b, env) || string(aad) != "app/x" || string(pt) != "seed secret" {
			t.Fatal("Decrypt accepted an envelope it did not make")
		}
	})
}

// FuzzOpenKeyring checks that no stored keyring makes UnmarshalWrapped or
// OpenKeyring panic.
func FuzzOpenKeyring(f *testing.F) {
	k, err := NewKeyring(testKEK, seeded(10))
	require.NoError(f, err)
	f.Add(k.Wrapped().Marshal())
	f.Add([]byte(`{"version":1,"cluster_key":"","current":1,"data_keys":[{"id":1,"key":""}]}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := UnmarshalWrapped(b)
		if err != nil {
			return
		}
		_, err = OpenKeyring(testKEK, w)
		if err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrWrongKEK) {
			t.Fatalf("OpenKeyring error %v is neither ErrCorrupt nor ErrWrongKEK", err)
		}
	})
}
