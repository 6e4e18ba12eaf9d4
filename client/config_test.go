package client

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	ok := DefaultConfig()
	ok.Endpoints = []string{"127.0.0.1:8741"}
	require.NoError(t, ok.Validate())

	bad := Config{Endpoints: []string{" "}, MinRefreshInterval: time.Second, MaxBackoff: -1}
	before := bad
	err := bad.Validate()
	require.Error(t, err)
	assert.Equal(t, before, bad, "Validate does not change the config")
	for _, want := range []string{"Endpoints[0] is empty", "RefreshInterval must be > 0", "MinRefreshInterval must be in",
		"RefreshTimeout", "MaxAttempts must be >= 1", "Backoff must be > 0", "MaxBackoff must be >=", "MaxMessageBytes"} {
		assert.Contains(t, err.Error(), want)
	}
	assert.Len(t, strings.Split(err.Error(), "\n"), 8, "one line per problem: %s", err)

	none := DefaultConfig()
	assert.ErrorContains(t, none.Validate(), "Endpoints must name at least one HOST:PORT")
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.Backoff, cfg.MaxBackoff = 10*time.Millisecond, 50*time.Millisecond
	c := &Client{cfg: cfg}
	var got []time.Duration
	for a := 1; a <= 5; a++ {
		got = append(got, c.backoff(a))
	}
	assert.Equal(t, []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond, 50 * time.Millisecond, 50 * time.Millisecond}, got)
}
