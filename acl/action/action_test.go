package action

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	t.Parallel()
	for _, a := range []Action{Read, Write, Admin} {
		got, err := Parse(string(a))
		require.NoError(t, err)
		assert.Equal(t, a, got)
		assert.True(t, a.Valid())
	}
	for _, s := range []string{"", "fly", "READ", " read", "admin "} {
		_, err := Parse(s)
		assert.ErrorIs(t, err, ErrInvalid, "%q", s)
		if s != "" {
			assert.Contains(t, err.Error(), s, "the error quotes the input")
		}
		assert.False(t, Action(s).Valid(), "%q", s)
	}
}
