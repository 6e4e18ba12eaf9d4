package gateway

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestValidateKey(t *testing.T) {
	t.Parallel()
	cases := []struct {
		key  string
		want string // "" means valid; else a substring of the error
	}{
		{"a", ""},
		{"a/b/c", ""},
		{"users/42/name", ""},
		{"ключ/值", ""},
		{strings.Repeat("k", MaxKeyBytes), ""},
		{"", "must not be empty"},
		{strings.Repeat("k", MaxKeyBytes+1), "the limit is 1024"},
		{"/a", "empty path segment"},
		{"a/", "empty path segment"},
		{"a//b", "empty path segment"},
		{"a/../b", `".." segment`},
		{"..", `".." segment`},
		{"a/./b", `"." segment`},
		{"a\x00b", "control characters"},
		{"a\nb", "control characters"},
		{"\xff\xfe", "valid UTF-8"},
	}
	for _, tc := range cases {
		t.Run(tc.key, func(t *testing.T) {
			t.Parallel()
			err := validateKey(tc.key)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("validateKey(%q) = %v, want nil", tc.key, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("validateKey(%q) = %v, want error containing %q", tc.key, err, tc.want)
			}
		})
	}
}

// TestConfigTimeouts checks that negative HTTP timeouts are refused by
// their flag names and that zero (no limit) is accepted.
func TestConfigTimeouts(t *testing.T) {
	t.Parallel()
	c := DefaultConfig()
	c.HTTPReadTimeout, c.HTTPWriteTimeout = -time.Second, -time.Minute
	err := c.Validate()
	assert.ErrorContains(t, err, "gateway: --http-read-timeout must be >= 0 (0: no limit), got -1s")
	assert.ErrorContains(t, err, "gateway: --http-write-timeout must be >= 0 (0: no limit), got -1m0s")
	c.HTTPReadTimeout, c.HTTPWriteTimeout = 0, 0
	assert.NotContains(t, c.Validate().Error(), "timeout")
}
