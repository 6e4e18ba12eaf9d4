package server

import (
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
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

// TestBadSettingsLeaveDataDirEmpty checks that a setting of any layer
// that is refused (here the gateway's --max-value-bytes 0 and the
// router's page cap) is reported before the node writes to its data dir.
func TestBadSettingsLeaveDataDirEmpty(t *testing.T) {
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	grpcLn, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	reg, err := NewRegistry()
	require.NoError(t, err)
	dir := t.TempDir()

	cfg := DefaultConfig()
	cfg.HTTPListener, cfg.GRPCListener, cfg.Registry = httpLn, grpcLn, reg
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.Node.Name, cfg.Node.DataDir, cfg.Node.Bootstrap = "n1", filepath.Join(dir, "data"), true
	cfg.Node.RaftAddr, cfg.Node.GossipAddr = "127.0.0.1:1", "127.0.0.1:2"
	cfg.Node.HTTPAddr, cfg.Node.GRPCAddr = httpLn.Addr().String(), grpcLn.Addr().String()
	cfg.Gateway.MaxValueBytes = 0
	_, err = New(cfg)
	assert.ErrorContains(t, err, "--max-value-bytes must be in")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries, "a refused config wrote to the data dir")

	// Every layer's problems at once.
	cfg.Router.MaxListLimit, cfg.Node.Shards = 0, 0
	_, err = New(cfg)
	for _, want := range []string{"--max-value-bytes must be in", "MaxListLimit must be >= 1", "--shards must be in"} {
		assert.ErrorContains(t, err, want)
	}
}
