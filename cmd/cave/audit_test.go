package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cavedb/cave/audit"
)

func TestOpenAudit(t *testing.T) {
	t.Parallel()
	lg := slog.New(slog.DiscardHandler)

	al, closeAudit, err := openAudit("", lg)
	require.NoError(t, err)
	assert.Nil(t, al, "no --audit-log, no logger")
	closeAudit()

	path := filepath.Join(t.TempDir(), "audit.log")
	require.NoError(t, os.WriteFile(path, []byte("{\"earlier\":1}\n"), 0o600))
	al, closeAudit, err = openAudit(path, lg)
	require.NoError(t, err)
	al.Log(audit.Event{Subject: "alice", Source: "127.0.0.1:1", Method: "/cave.kv.v1.KV/Put", Key: "app/x", Result: audit.ResultOK})
	closeAudit() // flushes before it returns
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	require.Len(t, lines, 2, "appended after the earlier line:\n%s", b)
	assert.Contains(t, lines[1], `"subject":"alice"`)
	assert.Contains(t, lines[1], `"key":"app/x"`)

	fresh := filepath.Join(t.TempDir(), "new.log")
	_, closeAudit, err = openAudit(fresh, lg)
	require.NoError(t, err)
	closeAudit()
	st, err := os.Stat(fresh)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "a new audit log is private")

	_, _, err = openAudit(filepath.Join(t.TempDir(), "missing", "dir", "audit.log"), lg)
	assert.ErrorContains(t, err, "--audit-log")
}
