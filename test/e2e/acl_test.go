package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestProdAccessControlAndAuditLog runs one real prod node with TLS and
// --audit-log: access control is on by default, the bootstrap log says how
// to get the first administrator, a certificate named root is one, another
// certificate of the cluster CA is nobody until granted, health stays
// open, and after SIGTERM the audit log holds the allowed and refused
// calls, never a value, in a file only its owner can read.
func TestProdAccessControlAndAuditLog(t *testing.T) {
	auditPath := filepath.Join(t.TempDir(), "audit.log")
	c := newProcCluster(t, 1, withTLS(), withShards(1), withReplicas(1), withExtraArgs("--audit-log", auditPath))
	c.certsCmd("client", "--dir", c.certs, "--name", "alice")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	base := c.URL(1) + "/api/v1"
	client := func(cert string) *http.Client {
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: c.clientTLS(cert)}}
	}
	do := func(hc *http.Client, method, url, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
		require.NoError(t, err)
		resp, err := hc.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b)
	}
	const value = "e2e-value-never-in-the-audit-log"

	code, body := do(client(rootUser), http.MethodPut, base+"/kv/app/x", value)
	assert.Equal(t, http.StatusOK, code, "root writes: %s", body)
	code, body = do(client("alice"), http.MethodPut, base+"/kv/app/x", value)
	assert.Equal(t, http.StatusForbidden, code, "alice, not granted, writes: %s", body)
	code, body = do(client(""), http.MethodGet, base+"/kv/app/x", "")
	assert.Equal(t, http.StatusUnauthorized, code, "no certificate and no token: %s", body)
	code, body = do(client(""), http.MethodGet, base+"/health", "")
	assert.Equal(t, http.StatusOK, code, "health stays open: %s", body)
	code, body = do(client(rootUser), http.MethodGet, base+"/auth/whoami", "")
	assert.Equal(t, http.StatusOK, code, body)
	assert.JSONEq(t, `{"subject":"root","method":"certificate","roles":["admin"],"acl_enabled":true}`, body)

	c.Stop(1, 20*time.Second)
	logText, err := os.ReadFile(c.node(1).logPath)
	require.NoError(t, err)
	assert.Contains(t, string(logText), "cave certs client --dir DIR --name root", "the bootstrap log says how to get the first administrator")

	st, err := os.Stat(auditPath)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	raw, err := os.ReadFile(auditPath)
	require.NoError(t, err)
	assert.NotContains(t, string(raw), value)
	type line struct{ Subject, Method, Key, Result, Source string }
	var lines []line
	for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var e line
		require.NoError(t, json.Unmarshal([]byte(l), &e), "audit line %q", l)
		lines = append(lines, e)
	}
	for _, want := range []line{
		{Subject: "root", Method: "/cave.kv.v1.KV/Put", Key: "app/x", Result: "ok"},
		{Subject: "alice", Method: "/cave.kv.v1.KV/Put", Key: "app/x", Result: "denied"},
		{Subject: "", Method: "GET /api/v1/kv/app/x", Result: "Unauthenticated"},
		{Subject: "root", Method: "/cave.auth.v1.Auth/WhoAmI", Result: "ok"},
	} {
		found := false
		for _, e := range lines {
			if e.Subject == want.Subject && e.Method == want.Method && e.Key == want.Key && e.Result == want.Result && strings.HasPrefix(e.Source, "127.0.0.1:") {
				found = true
			}
		}
		assert.True(t, found, "no audit line %+v in\n%s", want, raw)
	}
}
