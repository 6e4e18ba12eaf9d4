package main

import (
	"bytes"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cavedb/cave/pki"
	"github.com/cavedb/cave/secrets"
)

// runCerts runs `cave certs args...` and returns its output.
func runCerts(t *testing.T, args ...string) (string, error) {
	t.Helper()
	app := newApp()
	var out bytes.Buffer
	app.Writer, app.ErrWriter = &out, &out
	err := app.Run(append([]string{"cave", "certs"}, args...))
	return out.String(), err
}

// TestCertsFiles creates a CA, a node and a client certificate and checks
// the files, their modes and what the certificates say.
func TestCertsFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	_, err := runCerts(t, "init", "--dir", dir, "--name", "test-ca")
	require.NoError(t, err)
	_, err = runCerts(t, "node", "--dir", dir, "--name", "n1", "--hosts", "127.0.0.1,node1.example.com", "--hosts", "::1")
	require.NoError(t, err)
	out, err := runCerts(t, "client", "--dir", dir, "--name", "alice", "--validity", "24h")
	require.NoError(t, err)
	assert.Contains(t, out, `client certificate "alice"`)

	st, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), st.Mode().Perm(), "certs dir mode")
	for _, name := range []string{"ca", "nodes-ca", "n1", "alice"} {
		for _, ext := range []string{".crt", ".key"} {
			st, err := os.Stat(filepath.Join(dir, name+ext))
			require.NoError(t, err)
			assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "%s%s mode", name, ext)
		}
	}

	ca, err := pki.Load(dir, "ca")
	require.NoError(t, err)
	assert.True(t, ca.Cert.IsCA)
	assert.Equal(t, "test-ca", ca.Cert.Subject.CommonName)
	assert.WithinDuration(t, time.Now().Add(defaultCAValidity), ca.Cert.NotAfter, time.Hour)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)

	node, err := pki.Load(dir, "n1")
	require.NoError(t, err)
	assert.Equal(t, "n1", node.Cert.Subject.CommonName)
	assert.Equal(t, []string{"node1.example.com"}, node.Cert.DNSNames)
	assert.True(t, slices.ContainsFunc(node.Cert.IPAddresses, func(ip net.IP) bool { return ip.Equal(net.ParseIP("127.0.0.1")) }))
	assert.True(t, slices.ContainsFunc(node.Cert.IPAddresses, func(ip net.IP) bool { return ip.Equal(net.IPv6loopback) }))
	// The node certificate comes from the node CA and its file carries
	// the chain to the cluster CA.
	nodesCA, err := pki.Load(dir, "nodes-ca")
	require.NoError(t, err)
	assert.True(t, nodesCA.Cert.IsCA)
	assert.Equal(t, nodesCA.Cert.Subject.String(), node.Cert.Issuer.String())
	issuer, ok := pki.IssuerPEM(node.CertPEM)
	require.True(t, ok, "the node certificate file carries its issuer")
	assert.Equal(t, string(nodesCA.CertPEM), string(issuer))
	chain := x509.NewCertPool()
	require.True(t, chain.AppendCertsFromPEM(issuer))
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		_, err := node.Cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: chain, DNSName: "node1.example.com", KeyUsages: []x509.ExtKeyUsage{usage}})
		assert.NoError(t, err, "node certificate for usage %v", usage)
	}
	assert.WithinDuration(t, time.Now().Add(defaultLeafValidity), node.Cert.NotAfter, time.Hour)

	client, err := pki.Load(dir, "alice")
	require.NoError(t, err)
	assert.Equal(t, "alice", client.Cert.Subject.CommonName)
	_, err = client.Cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	assert.NoError(t, err)
	_, err = client.Cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	assert.Error(t, err, "a client certificate must not serve")
	_, err = client.Cert.Verify(x509.VerifyOptions{Roots: chain, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	assert.Error(t, err, "whoever trusts only the node CA (the Raft port) must refuse a client certificate")
	assert.WithinDuration(t, time.Now().Add(24*time.Hour), client.Cert.NotAfter, time.Hour)
}

// TestCertsErrors checks that bad input gets a clear error and leaves the
// files as they were.
func TestCertsErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := runCerts(t, "init", "--dir", dir)
	require.NoError(t, err)
	_, err = runCerts(t, "node", "--dir", dir, "--name", "n1", "--hosts", "localhost")
	require.NoError(t, err)
	caBefore, err := os.ReadFile(filepath.Join(dir, "ca.key"))
	require.NoError(t, err)
	nodeBefore, err := os.ReadFile(filepath.Join(dir, "n1.crt"))
	require.NoError(t, err)
	empty := t.TempDir()

	cases := []struct {
		name string
		args []string
		want string
	}{
		{"second CA", []string{"init", "--dir", dir}, "refusing to overwrite a CA"},
		{"existing node", []string{"node", "--dir", dir, "--name", "n1", "--hosts", "localhost"}, "refusing to overwrite a certificate"},
		{"no CA", []string{"client", "--dir", empty, "--name", "bob"}, "no CA in"},
		{"no hosts", []string{"node", "--dir", dir, "--name", "n2", "--hosts", ","}, "--hosts must name at least one"},
		{"bad host", []string{"node", "--dir", dir, "--name", "n2", "--hosts", "under_score!"}, "neither an IP address nor a DNS name"},
		{"name with slash", []string{"client", "--dir", dir, "--name", "../evil"}, "slashes"},
		{"name with space", []string{"client", "--dir", dir, "--name", "a b"}, "spaces"},
		{"reserved name", []string{"client", "--dir", dir, "--name", "ca"}, "reserved"},
		{"reserved node CA name", []string{"node", "--dir", dir, "--name", "nodes-ca", "--hosts", "localhost"}, "reserved"},
		{"zero validity", []string{"client", "--dir", dir, "--name", "bob", "--validity", "0s"}, "--validity must be > 0"},
		{"negative CA validity", []string{"init", "--dir", empty, "--validity", "-1h"}, "--validity must be > 0"},
		{"empty CA name", []string{"init", "--dir", empty, "--name", " "}, "--name must not be empty"},
		{"missing name", []string{"client", "--dir", dir}, `"name" not set`},
		{"missing dir", []string{"init"}, `"dir" not set`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runCerts(t, tc.args...)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}

	caAfter, err := os.ReadFile(filepath.Join(dir, "ca.key"))
	require.NoError(t, err)
	assert.Equal(t, caBefore, caAfter, "the CA key is unchanged")
	nodeAfter, err := os.ReadFile(filepath.Join(dir, "n1.crt"))
	require.NoError(t, err)
	assert.Equal(t, nodeBefore, nodeAfter, "the node certificate is unchanged")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.Equal(t, "ca.crt ca.key n1.crt n1.key nodes-ca.crt nodes-ca.key", strings.Join(names, " "), "no file was added by a failed command")
	entries, err = os.ReadDir(empty)
	require.NoError(t, err)
	assert.Empty(t, entries)
}

// TestCertsKEK creates a key-encryption key, checks that --kek-file loads
// it, and that a second run refuses to replace it.
func TestCertsKEK(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	out, err := runCerts(t, "kek", "--dir", dir)
	require.NoError(t, err)
	path := filepath.Join(dir, "kek.hex")
	assert.Contains(t, out, path)
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	kek, err := secrets.LoadKEKFile(path)
	require.NoError(t, err)
	assert.Len(t, kek, secrets.KeyBytes)

	before, err := os.ReadFile(path)
	require.NoError(t, err)
	_, err = runCerts(t, "kek", "--dir", dir)
	assert.ErrorContains(t, err, "refusing to overwrite")
	after, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, before, after, "the key must not change")
}

// TestCertsHelp checks that the help of `cave certs` says which CA signs
// what, and that each subcommand describes its own --dir.
func TestCertsHelp(t *testing.T) {
	help := func(args ...string) string {
		t.Helper()
		out, err := runCerts(t, append(args, "--help")...)
		require.NoError(t, err)
		return out
	}
	top := help()
	for _, want := range []string{"signed by the node CA DIR/nodes-ca.*", "signed by the cluster CA DIR/ca.*",
		"the node CA (nodes-ca.crt, nodes-ca.key), which signs node certificates only"} {
		assert.Contains(t, top, want)
	}
	assert.Contains(t, help("kek"), "--dir DIR   DIR to write kek.hex in (created with mode 0700 if missing; needs no CA)")
	assert.NotContains(t, help("kek"), "ca.crt")
	assert.Contains(t, help("init"), "--dir DIR")
	assert.Contains(t, help("init"), "DIR to create the CAs in")
	for _, cmd := range []string{"node", "client"} {
		assert.Contains(t, help(cmd), "DIR of the CAs (made by: cave certs init)", cmd)
	}
}

// TestGitignoreCoversRecipes checks that what the README's recipes create
// in the repository root (certs with --dir certs, data dirs under data/)
// is ignored by git.
func TestGitignoreCoversRecipes(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	require.NoError(t, err)
	ignore, err := os.ReadFile(filepath.Join("..", "..", ".gitignore"))
	require.NoError(t, err)
	lines := strings.Split(string(ignore), "\n")
	for recipe, pattern := range map[string]string{"--dir certs": "/certs/", "--data-dir data/": "/data/"} {
		require.Contains(t, string(readme), recipe, "the README no longer uses %s", recipe)
		assert.Contains(t, lines, pattern, ".gitignore does not ignore what %s creates", recipe)
	}
}
