package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestKEKFileRequiredInProd checks that a prod node with TLS needs
// --kek-file, and that --insecure and dev mode do not.
func TestKEKFileRequiredInProd(t *testing.T) {
	tls := []string{"--tls-ca", "ca.pem", "--tls-cert", "node.pem", "--tls-key", "node-key.pem"}
	_, err := parseArgs(t, append([]string{"--mode", "prod", "--bootstrap"}, tls...)...)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "needs --kek-file")

	s, err := parseArgs(t, append([]string{"--mode", "prod", "--bootstrap", "--kek-file", "kek.hex"}, tls...)...)
	require.NoError(t, err)
	assert.Equal(t, "kek.hex", s.KEKFile)
	_, err = parseArgs(t, "--mode", "prod", "--bootstrap", "--insecure")
	assert.NoError(t, err, "--insecure derives the KEK")
	_, err = parseArgs(t, "--mode", "dev")
	assert.NoError(t, err, "dev mode derives the KEK")
	t.Setenv("CAVE_KEK_FILE", "from-env.hex")
	s, err = parseArgs(t, "--mode", "dev")
	require.NoError(t, err)
	assert.Equal(t, "from-env.hex", s.KEKFile)
}

// TestBadKEKFileRefusesStart starts cave with unusable --kek-file files:
// each run fails before opening any port, with a message that names the
// flag and never the file's content.
func TestBadKEKFileRefusesStart(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), mode))
		require.NoError(t, os.Chmod(p, mode))
		return p
	}
	const hexKey = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
	cases := []struct {
		name, path, mentions string
	}{
		{"missing", filepath.Join(dir, "nope"), "no such file"},
		{"readable by others", write("open.hex", hexKey+"\n", 0o644), "chmod 600"},
		{"passphrase", write("short.txt", "correct horse battery staple", 0o600), "want 32 raw bytes"},
		{"all zero", write("zero.hex", "0000000000000000000000000000000000000000000000000000000000000000", 0o600), "all zero"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := newApp().Run([]string{"cave", "--mode", "dev", "--data-dir", filepath.Join(dir, "data"),
				"--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0", "--gossip-addr", "127.0.0.1:0",
				"--log-level", "error", "--kek-file", tc.path})
			require.Error(t, err)
			assert.Contains(t, err.Error(), "--kek-file")
			assert.Contains(t, err.Error(), tc.mentions)
			assert.NotContains(t, err.Error(), "correct horse")
			_, statErr := os.Stat(filepath.Join(dir, "data"))
			assert.ErrorIs(t, statErr, os.ErrNotExist, "a refused start created the data dir")
		})
	}
}
