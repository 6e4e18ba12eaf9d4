package secrets

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"testing/synctest"
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
// other: at once on decrypt, within Refresh on encrypt. It runs on a fake
// clock, so "within Refresh" is exact.
func TestManagerSharedKeyring(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		st := metatest.New()
		kek := DeriveDevKEK("test-cluster")
		const refresh = time.Minute
		a := newTestManager(t, st, kek, refresh)
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
		time.Sleep(refresh - time.Nanosecond)
		env2, err := a.Encrypt(ctx, []byte("v2"), []byte("k"))
		require.NoError(t, err)
		assert.Equal(t, KeyID(1), envelopeKeyID(t, env2), "a seals under its cached keyring until Refresh has passed")
		time.Sleep(time.Nanosecond)
		env2, err = a.Encrypt(ctx, []byte("v2"), []byte("k"))
		require.NoError(t, err)
		assert.Equal(t, KeyID(2), envelopeKeyID(t, env2), "a seals under the rotated key once Refresh has passed")

		// A second rotation, seen by a first through an envelope under it.
		_, _, err = b.Rotate(ctx)
		require.NoError(t, err)
		env3, err := b.Encrypt(ctx, []byte("v3"), []byte("k"))
		require.NoError(t, err)
		assert.Equal(t, KeyID(3), envelopeKeyID(t, env3))
		pt, err = a.Decrypt(ctx, env3, []byte("k"))
		require.NoError(t, err, "an unknown key id makes the manager reread the store")
		assert.Equal(t, "v3", string(pt))
		env4, err := a.Encrypt(ctx, []byte("v4"), []byte("k"))
		require.NoError(t, err)
		assert.Equal(t, KeyID(3), envelopeKeyID(t, env4), "the reread keyring is the one a now seals under")

		pt, err = a.Decrypt(ctx, env, []byte("k"))
		require.NoError(t, err)
		assert.Equal(t, "v1", string(pt), "a value under the first key after the rotations")
		_, err = a.Decrypt(ctx, env, []byte("other"))
		assert.ErrorIs(t, err, ErrCorrupt, "an envelope under another key")
	})
}

// TestManagerStoreFailure: once a keyring is cached, a failing store does
// not stop encryption or decryption with the known keys, and is retried
// once per Refresh; before that, and for operations that need the store,
// the error is returned. It runs on a fake clock.
func TestManagerStoreFailure(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		down := errors.New("meta shard unavailable")
		st := metatest.New()
		st.Fail(down)
		const refresh = time.Second
		m := newTestManager(t, st, DeriveDevKEK("c"), refresh)
		_, err := m.Encrypt(ctx, []byte("v"), []byte("k"))
		require.ErrorIs(t, err, down, "no keyring yet")

		st.Fail(nil)
		env, err := m.Encrypt(ctx, []byte("v"), []byte("k"))
		require.NoError(t, err)
		st.Fail(down)
		loads := st.Gets()
		for range 3 {
			_, err = m.Encrypt(ctx, []byte("v"), []byte("k"))
			require.NoError(t, err)
		}
		assert.Equal(t, loads, st.Gets(), "a keyring younger than Refresh is not reread")

		time.Sleep(refresh)
		for range 3 {
			_, err = m.Encrypt(ctx, []byte("v"), []byte("k"))
			require.NoError(t, err, "the cached keyring serves while the store fails")
		}
		assert.Equal(t, loads+1, st.Gets(), "a failing store is retried once per Refresh, not per call")
		time.Sleep(refresh)
		_, err = m.Encrypt(ctx, []byte("v"), []byte("k"))
		require.NoError(t, err)
		assert.Equal(t, loads+2, st.Gets(), "and again after the next Refresh")

		pt, err := m.Decrypt(ctx, env, []byte("k"))
		require.NoError(t, err)
		assert.Equal(t, "v", string(pt))
		_, _, err = m.Rotate(ctx)
		assert.Error(t, err)
		_, _, err = m.Status(ctx)
		assert.Error(t, err)
	})
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
