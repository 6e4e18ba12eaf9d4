package metatest

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStore(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := New()
	_, _, found, err := s.Get(ctx, "a", false)
	require.NoError(t, err)
	assert.False(t, found)

	_, ok, err := s.Swap(ctx, "a", []byte("1"), 5)
	require.NoError(t, err)
	assert.False(t, ok, "an absent key has revision 0, not 5")
	rev, ok, err := s.Swap(ctx, "a", []byte("1"), 0)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, int64(1), rev)
	_, ok, err = s.Swap(ctx, "a", []byte("2"), 0)
	require.NoError(t, err)
	assert.False(t, ok, "the key exists now")

	assert.Equal(t, int64(2), s.Put("b", []byte("x")), "revisions count writes of every key")
	v, rev, found, err := s.Get(ctx, "a", true)
	require.NoError(t, err)
	assert.True(t, found)
	assert.Equal(t, "1", string(v))
	assert.Equal(t, int64(1), rev)
	v[0] = 'z'
	v, _, _, _ = s.Get(ctx, "a", false)
	assert.Equal(t, "1", string(v), "Get returns a copy")

	assert.Equal(t, int64(3), s.Touch("a"))
	_, ok, err = s.Swap(ctx, "a", []byte("2"), 1)
	require.NoError(t, err)
	assert.False(t, ok, "the touch moved the revision on")

	s.BeforeSwap(func() { s.Touch("a") })
	_, ok, err = s.Swap(ctx, "a", []byte("2"), 3)
	require.NoError(t, err)
	assert.False(t, ok, "the hook runs before the comparison")
	s.BeforeSwap(nil)

	boom := errors.New("down")
	s.Fail(boom)
	_, _, _, err = s.Get(ctx, "a", false)
	assert.ErrorIs(t, err, boom)
	_, _, err = s.Swap(ctx, "a", nil, 4)
	assert.ErrorIs(t, err, boom)
	s.Fail(nil)
	assert.Equal(t, 4, s.Gets(), "failed gets count too")
	assert.Equal(t, int64(4), s.Rev())
}
