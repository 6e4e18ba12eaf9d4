package server

import (
	"errors"
	"log/slog"
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestNewRefusesBadConfig checks that a config New cannot use is refused
// with every problem named, and that the listeners it was handed are
// closed, so a caller's error path leaks no port.
func TestNewRefusesBadConfig(t *testing.T) {
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	grpcLn, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	reg, err := NewRegistry()
	require.NoError(t, err)

	cfg := DefaultConfig()
	cfg.HTTPListener, cfg.GRPCListener, cfg.Registry = httpLn, grpcLn, reg
	cfg.Logger = slog.New(slog.DiscardHandler)
	// No node name, data dir or addresses: node.Config.Validate refuses.
	_, err = New(cfg)
	require.Error(t, err)
	for _, want := range []string{"--node-name", "--data-dir", "--raft-addr"} {
		assert.ErrorContains(t, err, want)
	}
	for _, ln := range []net.Listener{httpLn, grpcLn} {
		_, err := ln.Accept()
		assert.True(t, errors.Is(err, net.ErrClosed), "listener %s left open: %v", ln.Addr(), err)
	}

	_, err = New(Config{})
	assert.ErrorContains(t, err, "HTTPListener and GRPCListener must be set")
	assert.ErrorContains(t, err, "Logger must be set")
	assert.ErrorContains(t, err, "Registry must be set")
}
