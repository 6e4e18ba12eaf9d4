package tlsconfig

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cavedb/cave/pki"
)

func TestLoad(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.load()
	assert.Equal(t, "n1", s.Leaf().Subject.CommonName)
	ca, cert, key := s.Files()
	assert.Equal(t, []string{f.caFile, f.certFile, f.keyFile}, []string{ca, cert, key})
}

// TestLoadKeyFormats loads keys in the encodings openssl and other tools
// write: PKCS #8, and SEC 1 preceded by an EC PARAMETERS block.
func TestLoadKeyFormats(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	node := f.issue(pki.KindNode, "n1")
	writeFile(t, f.certFile, node.CertPEM)

	der, err := x509.MarshalPKCS8PrivateKey(node.Key)
	require.NoError(t, err)
	writeFile(t, f.keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	f.load()

	params := pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}})
	writeFile(t, f.keyFile, append(params, node.KeyPEM...))
	f.load()
}

// TestLoadChain loads a certificate file that carries an intermediate
// after the leaf, and a CA file with more than one CA.
func TestLoadChain(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	other := newCA(t, "other CA")
	writeFile(t, f.caFile, append(append([]byte{}, other.CertPEM...), f.ca.CertPEM...))
	node := f.issue(pki.KindNode, "n1")
	writeFile(t, f.certFile, append(append([]byte{}, node.CertPEM...), f.ca.CertPEM...))
	writeFile(t, f.keyFile, node.KeyPEM)
	s := f.load()
	assert.Len(t, s.cur.Load().cert.Certificate, 2)
	assert.Len(t, s.cur.Load().cas, 2)
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	garbageCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not DER")})
	garbageKey := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("not DER")})
	for _, tc := range []struct {
		name string
		// break damages the fixture's files and returns the path the error
		// must name.
		breakFiles func(t *testing.T, f *fixture) string
		want       error
	}{
		{"missing CA file", func(t *testing.T, f *fixture) string { require.NoError(t, os.Remove(f.caFile)); return f.caFile }, fs.ErrNotExist},
		{"missing certificate file", func(t *testing.T, f *fixture) string { require.NoError(t, os.Remove(f.certFile)); return f.certFile }, fs.ErrNotExist},
		{"missing key file", func(t *testing.T, f *fixture) string { require.NoError(t, os.Remove(f.keyFile)); return f.keyFile }, fs.ErrNotExist},
		{"CA file not PEM", func(t *testing.T, f *fixture) string { writeFile(t, f.caFile, []byte("hello")); return f.caFile }, ErrNotPEM},
		{"certificate file not PEM", func(t *testing.T, f *fixture) string { writeFile(t, f.certFile, []byte("hello")); return f.certFile }, ErrNotPEM},
		{"key file not PEM", func(t *testing.T, f *fixture) string { writeFile(t, f.keyFile, []byte("hello")); return f.keyFile }, ErrNotPEM},
		{"empty certificate file", func(t *testing.T, f *fixture) string { writeFile(t, f.certFile, nil); return f.certFile }, ErrNotPEM},
		{"key file holds a certificate", func(t *testing.T, f *fixture) string {
			writeFile(t, f.keyFile, f.ca.CertPEM)
			return f.keyFile
		}, ErrNotPEM},
		{"certificate file holds a key", func(t *testing.T, f *fixture) string {
			writeFile(t, f.certFile, f.ca.KeyPEM)
			return f.certFile
		}, ErrNotPEM},
		{"malformed certificate", func(t *testing.T, f *fixture) string { writeFile(t, f.certFile, garbageCert); return f.certFile }, ErrMalformed},
		{"malformed CA certificate", func(t *testing.T, f *fixture) string { writeFile(t, f.caFile, garbageCert); return f.caFile }, ErrMalformed},
		{"malformed key", func(t *testing.T, f *fixture) string { writeFile(t, f.keyFile, garbageKey); return f.keyFile }, ErrMalformed},
		{"key of another certificate", func(t *testing.T, f *fixture) string {
			writeFile(t, f.keyFile, f.issue(pki.KindNode, "n1").KeyPEM)
			return f.keyFile
		}, ErrKeyMismatch},
		{"certificate from another CA", func(t *testing.T, f *fixture) string {
			f.writeNode(issueBy(t, newCA(t, "other CA"), pki.KindNode, "n1", time.Now(), time.Hour))
			return f.certFile
		}, ErrUntrusted},
		{"CA file holds another CA", func(t *testing.T, f *fixture) string {
			writeFile(t, f.caFile, newCA(t, "other CA").CertPEM)
			return f.caFile
		}, ErrUntrusted},
		{"expired certificate", func(t *testing.T, f *fixture) string {
			f.writeNode(issueBy(t, f.ca, pki.KindNode, "n1", time.Now().Add(-3*time.Hour), time.Hour))
			return f.certFile
		}, ErrExpired},
		{"certificate not yet valid", func(t *testing.T, f *fixture) string {
			f.writeNode(issueBy(t, f.ca, pki.KindNode, "n1", time.Now().Add(time.Hour), time.Hour))
			return f.certFile
		}, ErrExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			path := tc.breakFiles(t, f)
			s, err := Load(f.caFile, f.certFile, f.keyFile, testLogger(t))
			require.Error(t, err)
			assert.Nil(t, s)
			assert.ErrorIs(t, err, tc.want)
			assert.Contains(t, err.Error(), path, "the error names the file at fault")
			assert.NotContains(t, err.Error(), "-----", "no file content in errors")
			assert.NotContains(t, err.Error(), "hello", "no file content in errors")
		})
	}
}

func TestLoadArguments(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	_, err := Load("", "", "", nil)
	require.Error(t, err)
	for _, want := range []string{"--tls-ca", "--tls-cert", "--tls-key", "logger"} {
		assert.Contains(t, err.Error(), want)
	}
	_, err = Load(f.caFile, f.certFile, f.keyFile, nil)
	assert.ErrorContains(t, err, "logger")
}

// TestRequireAndVerifyClientCert runs real handshakes against a server
// that requires a client certificate from its CA.
func TestRequireAndVerifyClientCert(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	addr := serve(t, f.load().ServerConfig(tls.RequireAndVerifyClientCert))
	alice := f.client(f.issue(pki.KindClient, "alice"))
	foreign := issueBy(t, newCA(t, "other CA"), pki.KindClient, "alice", time.Now(), time.Hour)

	for _, tc := range []struct {
		name    string
		cfg     *tls.Config
		subject string // "" means refused
	}{
		{"client from the CA", alice.ClientConfig("localhost"), "alice"},
		{"client dialling by IP", alice.ClientConfig("127.0.0.1"), "alice"},
		{"node certificate as client", f.load().ClientConfig("localhost"), "n1"},
		{"no certificate", plainClient(t, f.pool(), nil), ""},
		{"certificate from another CA", plainClient(t, f.pool(), foreign), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := dial(t, addr, tc.cfg)
			if tc.subject == "" {
				require.Error(t, err, "the server must refuse the client")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, result{server: "n1", subject: tc.subject}, r)
		})
	}
}

// TestVerifyClientCertIfGiven checks that a server with optional client
// certificates accepts a client without one, and still refuses a
// certificate it cannot verify.
func TestVerifyClientCertIfGiven(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	addr := serve(t, f.load().ServerConfig(tls.VerifyClientCertIfGiven))
	alice := f.client(f.issue(pki.KindClient, "alice"))
	foreign := issueBy(t, newCA(t, "other CA"), pki.KindClient, "alice", time.Now(), time.Hour)

	assert.Equal(t, result{server: "n1", subject: "-"}, mustDial(t, addr, plainClient(t, f.pool(), nil)), "no certificate: accepted, no subject")
	assert.Equal(t, result{server: "n1", subject: "alice"}, mustDial(t, addr, alice.ClientConfig("localhost")))
	_, err := dial(t, addr, plainClient(t, f.pool(), foreign))
	assert.Error(t, err, "a certificate from another CA is refused")
}

// TestPeerSubjectUnverified checks that PeerSubject never reports a
// certificate the server accepted without verifying it.
func TestPeerSubjectUnverified(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	addr := serve(t, f.load().ServerConfig(tls.RequireAnyClientCert))
	foreign := issueBy(t, newCA(t, "other CA"), pki.KindClient, "mallory", time.Now(), time.Hour)
	assert.Equal(t, result{server: "n1", subject: "-"}, mustDial(t, addr, plainClient(t, f.pool(), foreign)))
}

func TestPeerSubject(t *testing.T) {
	t.Parallel()
	named := &x509.Certificate{}
	named.Subject.CommonName = "alice"
	for _, tc := range []struct {
		name  string
		state tls.ConnectionState
		want  string
		ok    bool
	}{
		{"no connection state", tls.ConnectionState{}, "", false},
		{"peer certificate not verified", tls.ConnectionState{PeerCertificates: []*x509.Certificate{named}}, "", false},
		{"empty chain", tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{}}}, "", false},
		{"no common name", tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{{}}}}, "", false},
		{"verified", tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{named}}}, "alice", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, ok := PeerSubject(tc.state)
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.ok, ok)
		})
	}
}

// TestClientConfigVerifiesServer checks that ClientConfig accepts only a
// server whose certificate chains to the CA, is meant for servers and names
// the host dialled.
func TestClientConfigVerifiesServer(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	alice := f.client(f.issue(pki.KindClient, "alice"))
	good := serve(t, f.load().ServerConfig(tls.RequireAndVerifyClientCert))

	other := newFixture(t) // a node of another cluster
	foreignServer := serve(t, other.load().ServerConfig(tls.VerifyClientCertIfGiven))

	clientOnly := newFixture(t) // a server presenting a client certificate of alice's CA
	clientOnly.ca = f.ca
	writeFile(t, clientOnly.caFile, f.ca.CertPEM)
	clientOnly.writeNode(f.issue(pki.KindClient, "not-a-server"))
	clientCertServer := serve(t, clientOnly.load().ServerConfig(tls.VerifyClientCertIfGiven))

	for _, tc := range []struct {
		name string
		addr string
		cfg  *tls.Config
		ok   bool
	}{
		{"server of the CA", good, alice.ClientConfig("localhost"), true},
		{"empty name takes the dialled host name", "localhost:" + port(t, good), alice.ClientConfig(""), true},
		{"empty name cannot check an IP address", good, alice.ClientConfig(""), false},
		{"name not in the certificate", good, alice.ClientConfig("n9.example"), false},
		{"server of another CA", foreignServer, alice.ClientConfig("localhost"), false},
		{"certificate without server usage", clientCertServer, alice.ClientConfig("localhost"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := dial(t, tc.addr, tc.cfg)
			if tc.ok {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrUntrusted)
		})
	}
}

func port(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	return p
}

// TestReload replaces the server's and the client's certificates on disk
// and checks that new handshakes on the same listener use them once Reload
// has run, and not before.
func TestReload(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	srv := f.load()
	addr := serve(t, srv.ServerConfig(tls.RequireAndVerifyClientCert))
	alice := f.client(f.issue(pki.KindClient, "alice"))
	cfg := alice.ClientConfig("localhost") // one Config for the whole test
	require.Equal(t, result{server: "n1", subject: "alice"}, mustDial(t, addr, cfg))

	f.writeNode(f.issue(pki.KindNode, "n2"))
	assert.Equal(t, "n1", mustDial(t, addr, cfg).server, "files alone change nothing")
	require.NoError(t, srv.Reload())
	assert.Equal(t, "n2", srv.Leaf().Subject.CommonName)
	assert.Equal(t, result{server: "n2", subject: "alice"}, mustDial(t, addr, cfg))

	// The client side follows its own Reload.
	_, cert, key := alice.Files()
	bob := f.issue(pki.KindClient, "bob")
	writeFile(t, cert, bob.CertPEM)
	writeFile(t, key, bob.KeyPEM)
	require.NoError(t, alice.Reload())
	assert.Equal(t, result{server: "n2", subject: "bob"}, mustDial(t, addr, cfg))
}

// TestReloadCA rotates the cluster to a new CA and checks that the server
// then refuses clients of the old CA, including one holding a session
// ticket from before the rotation, and accepts clients of the new one.
func TestReloadCA(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	srv := f.load()
	addr := serve(t, srv.ServerConfig(tls.RequireAndVerifyClientCert))

	newCA := newCA(t, "cave test CA 2")
	roots := f.pool()
	roots.AddCert(newCA.Cert) // the client trusts either server certificate
	old := plainClient(t, roots, f.issue(pki.KindClient, "alice"))
	old.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	require.Equal(t, "alice", mustDial(t, addr, old).subject)
	require.True(t, mustDial(t, addr, old).resumed, "the old client holds a session ticket the server accepts")

	writeFile(t, f.caFile, newCA.CertPEM)
	f.writeNode(issueBy(t, newCA, pki.KindNode, "n1", time.Now(), time.Hour))
	require.NoError(t, srv.Reload())

	_, err := dial(t, addr, old)
	assert.Error(t, err, "a client of the removed CA is refused, even with a session ticket")
	carol := issueBy(t, newCA, pki.KindClient, "carol", time.Now(), time.Hour)
	assert.Equal(t, "carol", mustDial(t, addr, plainClient(t, roots, carol)).subject)
}

// TestReloadKeepsOldMaterial damages the files in each way Load refuses
// and checks that Reload reports it and that handshakes keep using the
// previous certificate, and that a later good Reload recovers.
func TestReloadKeepsOldMaterial(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		breakFiles func(t *testing.T, f *fixture)
		want       error
	}{
		{"certificate file deleted", func(t *testing.T, f *fixture) { require.NoError(t, os.Remove(f.certFile)) }, fs.ErrNotExist},
		{"CA file not PEM", func(t *testing.T, f *fixture) { writeFile(t, f.caFile, []byte("oops")) }, ErrNotPEM},
		{"certificate file truncated", func(t *testing.T, f *fixture) {
			b, err := os.ReadFile(f.certFile)
			require.NoError(t, err)
			writeFile(t, f.certFile, b[:len(b)/2])
		}, ErrNotPEM},
		{"new certificate, old key", func(t *testing.T, f *fixture) {
			writeFile(t, f.certFile, f.issue(pki.KindNode, "n2").CertPEM)
		}, ErrKeyMismatch},
		{"certificate from another CA", func(t *testing.T, f *fixture) {
			f.writeNode(issueBy(t, newCA(t, "other CA"), pki.KindNode, "n2", time.Now(), time.Hour))
		}, ErrUntrusted},
		{"expired certificate", func(t *testing.T, f *fixture) {
			f.writeNode(issueBy(t, f.ca, pki.KindNode, "n2", time.Now().Add(-3*time.Hour), time.Hour))
		}, ErrExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			srv := f.load()
			addr := serve(t, srv.ServerConfig(tls.RequireAndVerifyClientCert))
			cfg := f.client(f.issue(pki.KindClient, "alice")).ClientConfig("localhost")

			tc.breakFiles(t, f)
			err := srv.Reload()
			require.Error(t, err)
			assert.ErrorIs(t, err, tc.want)
			assert.Equal(t, "n1", srv.Leaf().Subject.CommonName)
			assert.Equal(t, result{server: "n1", subject: "alice"}, mustDial(t, addr, cfg), "handshakes keep the old material")

			writeFile(t, f.caFile, f.ca.CertPEM)
			f.writeNode(f.issue(pki.KindNode, "n3"))
			require.NoError(t, srv.Reload())
			assert.Equal(t, "n3", mustDial(t, addr, cfg).server)
		})
	}
}

// TestWatch checks that Watch, on its own ticker, loads a new certificate
// within a bounded time and stops when its context ends.
func TestWatch(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rec := &recorder{}
	srv, err := Load(f.caFile, f.certFile, f.keyFile, slog.New(rec))
	require.NoError(t, err)
	addr := serve(t, srv.ServerConfig(tls.RequireAndVerifyClientCert))
	cfg := f.client(f.issue(pki.KindClient, "alice")).ClientConfig("localhost")

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Watch(ctx, 10*time.Millisecond)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})

	start := time.Now()
	f.writeNode(f.issue(pki.KindNode, "n2"))
	rec.wait(t, "tls material reloaded", 1, 5*time.Second)
	t.Logf("new certificate loaded after %s", time.Since(start))
	assert.Equal(t, "n2", mustDial(t, addr, cfg).server)

	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not return after its context was cancelled")
	}
}

// TestWatchCheck drives Watch's check tick by tick: it rides out a
// half-written update, logs a lasting failure once rather than at every
// tick, recovers, and logs a failure that comes back after a success
// again.
func TestWatchCheck(t *testing.T) {
	t.Parallel()
	const failed = "tls reload failed; keeping the previous certificate"
	f := newFixture(t)
	rec := &recorder{}
	srv, err := Load(f.caFile, f.certFile, f.keyFile, slog.New(rec))
	require.NoError(t, err)
	addr := serve(t, srv.ServerConfig(tls.RequireAndVerifyClientCert))
	cfg := f.client(f.issue(pki.KindClient, "alice")).ClientConfig("localhost")
	w := watcher{s: srv}
	ticks := func(n int) {
		for range n {
			w.check()
		}
	}

	ticks(3)
	assert.Zero(t, rec.count("tls material reloaded"), "unchanged files are not reloaded")
	assert.Zero(t, rec.count(failed))

	// Certificate first, key a little later: the check sees a mismatched
	// pair, logs it once, and keeps serving n1 until the pair agrees.
	n2 := f.issue(pki.KindNode, "n2")
	writeFile(t, f.certFile, n2.CertPEM)
	ticks(3)
	assert.Equal(t, 1, rec.count(failed), "the mismatched pair is logged once")
	assert.Equal(t, "n1", mustDial(t, addr, cfg).server)
	writeFile(t, f.keyFile, n2.KeyPEM)
	ticks(1)
	assert.Equal(t, "n2", mustDial(t, addr, cfg).server)
	assert.Equal(t, 1, rec.count("tls material reloaded"))

	// A lasting failure keeps n2 and is logged once, not at every tick.
	writeFile(t, f.caFile, []byte("broken"))
	ticks(20)
	assert.Equal(t, 2, rec.count(failed))
	assert.Equal(t, "n2", mustDial(t, addr, cfg).server)

	f.writeNode(f.issue(pki.KindNode, "n3"))
	writeFile(t, f.caFile, f.ca.CertPEM)
	ticks(1)
	assert.Equal(t, "n3", mustDial(t, addr, cfg).server)
	assert.Equal(t, 2, rec.count("tls material reloaded"))

	// The same failure after a success is news again.
	writeFile(t, f.caFile, []byte("broken"))
	ticks(2)
	assert.Equal(t, 3, rec.count(failed))
}

// TestReloadIfChanged checks that Watch's check reloads only on a change
// of content: rewriting the same bytes or touching the files does not.
func TestReloadIfChanged(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rec := &recorder{}
	srv, err := Load(f.caFile, f.certFile, f.keyFile, slog.New(rec))
	require.NoError(t, err)

	b, err := os.ReadFile(f.certFile)
	require.NoError(t, err)
	writeFile(t, f.certFile, b)
	later := time.Now().Add(time.Hour)
	for _, p := range []string{f.caFile, f.certFile, f.keyFile} {
		require.NoError(t, os.Chtimes(p, later, later))
	}
	require.NoError(t, srv.reloadIfChanged())
	assert.Equal(t, 0, rec.count("tls material reloaded"))

	f.writeNode(f.issue(pki.KindNode, "n2"))
	require.NoError(t, srv.reloadIfChanged())
	assert.Equal(t, 1, rec.count("tls material reloaded"))
	assert.Equal(t, "n2", srv.Leaf().Subject.CommonName)
}

// TestSymlinkSwap replaces the files the way a Kubernetes secret volume
// does, by repointing a directory symlink, and checks Reload follows.
func TestSymlinkSwap(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	root := t.TempDir()
	gen := func(name string, node *pki.Bundle) string {
		d := filepath.Join(root, name)
		require.NoError(t, os.Mkdir(d, 0o700))
		writeFile(t, filepath.Join(d, "ca.crt"), f.ca.CertPEM)
		writeFile(t, filepath.Join(d, "tls.crt"), node.CertPEM)
		writeFile(t, filepath.Join(d, "tls.key"), node.KeyPEM)
		return d
	}
	data := filepath.Join(root, "..data")
	require.NoError(t, os.Symlink(gen("v1", f.issue(pki.KindNode, "n1")), data))
	for _, n := range []string{"ca.crt", "tls.crt", "tls.key"} {
		require.NoError(t, os.Symlink(filepath.Join("..data", n), filepath.Join(root, n)))
	}
	s, err := Load(filepath.Join(root, "ca.crt"), filepath.Join(root, "tls.crt"), filepath.Join(root, "tls.key"), testLogger(t))
	require.NoError(t, err)

	v2 := gen("v2", f.issue(pki.KindNode, "n2"))
	tmp := filepath.Join(root, "..data_tmp")
	require.NoError(t, os.Symlink(v2, tmp))
	require.NoError(t, os.Rename(tmp, data))
	require.NoError(t, s.reloadIfChanged())
	assert.Equal(t, "n2", s.Leaf().Subject.CommonName)
}

func TestReloadConcurrentWithHandshakes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	srv := f.load()
	addr := serve(t, srv.ServerConfig(tls.RequireAndVerifyClientCert))
	cfg := f.client(f.issue(pki.KindClient, "alice")).ClientConfig("localhost")
	nodes := []*pki.Bundle{f.issue(pki.KindNode, "n1"), f.issue(pki.KindNode, "n2")}

	// The reloading goroutine must not call t.FailNow, so it replaces the
	// files itself and reports the first unexpected error.
	replace := func(path string, data []byte) error {
		if err := os.WriteFile(path+".tmp", data, 0o600); err != nil {
			return err
		}
		return os.Rename(path+".tmp", path)
	}
	stop := make(chan struct{})
	reloaded := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				reloaded <- nil
				return
			default:
			}
			n := nodes[i%2]
			err := errors.Join(replace(f.certFile, n.CertPEM), replace(f.keyFile, n.KeyPEM))
			if err == nil {
				// A reload between the two renames sees a mismatched pair.
				if err = srv.Reload(); errors.Is(err, ErrKeyMismatch) {
					err = nil
				}
			}
			if err != nil {
				reloaded <- err
				return
			}
		}
	}()
	for range 20 {
		r := mustDial(t, addr, cfg)
		assert.Contains(t, []string{"n1", "n2"}, r.server)
		assert.Equal(t, "alice", r.subject)
	}
	close(stop)
	assert.NoError(t, <-reloaded)
}
