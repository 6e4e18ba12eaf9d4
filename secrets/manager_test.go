package secrets

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cavedb/cave/internal/metatest"
)

func newTestManager(t *testing.T, st Store, kek []byte, refresh time.Duration) *Manager {
	t.Helper()
	cfg := DefaultManagerConfig()
	cfg.Store, cfg.Logger, cfg.Refresh = st, slog.New(slog.DiscardHandler), refresh
	cfg.KEK = func(context.Context) ([]byte, error) { return kek, nil }
	m, err := NewManager(cfg)
	require.NoError(t, err)
	return m
}

func TestManagerConfigValidate(t *testing.T) {
	t.Parallel()
	_, err := NewManager(ManagerConfig{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Store, KEK and Logger must be set")
	assert.Contains(t, err.Error(), "Refresh must be > 0")
}

// TestManagerSharedKeyring: two managers over one store (two nodes) create
// one keyring, read each other's envelopes, and see a rotation made by the
// other: at once on decrypt, within Refresh on encrypt.
func TestManagerSharedKeyring(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := metatest.New()
	kek := DeriveDevKEK("test-cluster")
	a := newTestManager(t, st, kek, 50*time.Millisecond)
	b := newTestManager(t, st, kek, time.Hour)

	env, err := a.Encrypt(ctx, []byte("v1"), []byte("k"))
	require.NoError(t, err)
	pt, err := b.Decrypt(ctx, env, []byte("k"))
	require.NoError(t, err)
	assert.Equal(t, "v1", string(pt))
	assert.Equal(t, int64(1), st.Rev(), "one keyring stored")

	id, n, err := b.Rotate(ctx)
	require.NoError(t, err)
	assert.Equal(t, KeyID(2), id)
	assert.Equal(t, 2, n)
	env2, err := b.Encrypt(ctx, []byte("v2"), []byte("k"))
	require.NoError(t, err)
	pt, err = a.Decrypt(ctx, env2, []byte("k"))
	require.NoError(t, err, "an unknown key id makes the manager reread the store")
	assert.Equal(t, "v2", string(pt))

	time.Sleep(60 * time.Millisecond) // past a's Refresh
	env3, err := a.Encrypt(ctx, []byte("v3"), []byte("k"))
	require.NoError(t, err)
	assert.Equal(t, byte(2), env3[8], "a seals under the rotated key after Refresh")
	pt, err = a.Decrypt(ctx, env, []byte("k"))
	require.NoError(t, err)
	assert.Equal(t, "v1", string(pt), "a value under the first key after the rotation")
	_, err = a.Decrypt(ctx, env, []byte("other"))
	assert.ErrorIs(t, err, ErrCorrupt, "an envelope under another key")
}

// TestManagerStoreFailure: once a keyring is cached, a failing store does
// not stop encryption or decryption with the known keys; before that, and
// for operations that need the store, the error is returned.
func TestManagerStoreFailure(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := metatest.New()
	down := errors.New("meta shard unavailable")
	st.Fail(down)
	m := newTestManager(t, st, DeriveDevKEK("c"), time.Millisecond)
	_, err := m.Encrypt(ctx, []byte("v"), []byte("k"))
	require.ErrorIs(t, err, down, "no keyring yet")

	st.Fail(nil)
	env, err := m.Encrypt(ctx, []byte("v"), []byte("k"))
	require.NoError(t, err)
	st.Fail(down)
	time.Sleep(2 * time.Millisecond)
	loads := st.Gets()
	_, err = m.Encrypt(ctx, []byte("v"), []byte("k"))
	require.NoError(t, err, "the cached keyring serves while the store fails")
	_, err = m.Encrypt(ctx, []byte("v"), []byte("k"))
	require.NoError(t, err)
	assert.LessOrEqual(t, st.Gets()-loads, 2, "a failing store is retried once per Refresh, not per call")
	pt, err := m.Decrypt(ctx, env, []byte("k"))
	require.NoError(t, err)
	assert.Equal(t, "v", string(pt))
	_, _, err = m.Rotate(ctx)
	assert.Error(t, err)
	_, _, err = m.Status(ctx)
	assert.Error(t, err)
}

// TestManagerWrongKEKAndCorruptKeyring: a KEK other than the cluster's is
// ErrWrongKEK; a stored keyring that does not parse is ErrBadKeyring.
func TestManagerWrongKEKAndCorruptKeyring(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := metatest.New()
	_, err := newTestManager(t, st, DeriveDevKEK("a"), time.Second).Encrypt(ctx, []byte("v"), []byte("k"))
	require.NoError(t, err)
	_, err = newTestManager(t, st, DeriveDevKEK("b"), time.Second).Encrypt(ctx, []byte("v"), []byte("k"))
	assert.ErrorIs(t, err, ErrWrongKEK)
	_, _, err = newTestManager(t, st, DeriveDevKEK("b"), time.Second).Rotate(ctx)
	assert.ErrorIs(t, err, ErrWrongKEK)
	assert.Equal(t, int64(1), st.Rev(), "a refused rotation stored nothing")

	assert.Equal(t, int64(2), st.Put(keyringKey, []byte("not json")))
	_, err = newTestManager(t, st, DeriveDevKEK("a"), time.Second).Encrypt(ctx, []byte("v"), []byte("k"))
	assert.ErrorIs(t, err, ErrBadKeyring)
	assert.ErrorIs(t, err, ErrCorrupt)
}

// TestManagerRotateConflict: a rotation that loses the compare-and-swap
// retries, and gives up with ErrConflict when it loses every time.
func TestManagerRotateConflict(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := metatest.New()
	kek := DeriveDevKEK("c")
	m := newTestManager(t, st, kek, time.Second)
	other := newTestManager(t, st, kek, time.Second)
	_, _, err := m.Status(ctx)
	require.NoError(t, err)

	// Another node rotates once between m's load and swap: m retries.
	fired := false
	st.BeforeSwap(func() {
		if !fired {
			fired = true
			_, _, err := other.Rotate(ctx)
			assert.NoError(t, err)
		}
	})
	id, n, err := m.Rotate(ctx)
	require.NoError(t, err)
	assert.Equal(t, KeyID(3), id, "m's rotation comes after the other's")
	assert.Equal(t, 3, n)

	// Every swap loses: ErrConflict after rotateAttempts tries.
	st.BeforeSwap(func() { st.Touch(keyringKey) })
	_, _, err = m.Rotate(ctx)
	assert.ErrorIs(t, err, ErrConflict)
}
