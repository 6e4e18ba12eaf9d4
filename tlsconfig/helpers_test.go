package tlsconfig

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cavedb/cave/pki"
)

// fixture is a CA with a node's files written to a temporary directory.
type fixture struct {
	t   *testing.T
	dir string
	ca  *pki.Bundle

	caFile, certFile, keyFile string
}

// newFixture creates a CA and a node certificate "n1" for 127.0.0.1 and
// localhost, and writes ca.crt, node.crt and node.key.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{
		t: t, dir: dir, ca: newCA(t, "cave test CA"),
		caFile: filepath.Join(dir, "ca.crt"), certFile: filepath.Join(dir, "node.crt"), keyFile: filepath.Join(dir, "node.key"),
	}
	writeFile(t, f.caFile, f.ca.CertPEM)
	f.writeNode(f.issue(pki.KindNode, "n1"))
	return f
}

func newCA(t *testing.T, cn string) *pki.Bundle {
	t.Helper()
	ca, err := pki.NewCA(cn, 24*time.Hour, time.Now())
	require.NoError(t, err)
	return ca
}

// issue signs a certificate named cn with the fixture's CA.
func (f *fixture) issue(kind pki.Kind, cn string) *pki.Bundle {
	f.t.Helper()
	return issueBy(f.t, f.ca, kind, cn, time.Now(), time.Hour)
}

func issueBy(t *testing.T, ca *pki.Bundle, kind pki.Kind, cn string, now time.Time, validity time.Duration) *pki.Bundle {
	t.Helper()
	b, err := ca.Issue(pki.Request{Kind: kind, CommonName: cn, Hosts: []string{"127.0.0.1", "localhost"}, Validity: validity}, now)
	require.NoError(t, err)
	return b
}

// writeNode replaces the node's certificate and key files with b's.
func (f *fixture) writeNode(b *pki.Bundle) {
	f.t.Helper()
	writeFile(f.t, f.certFile, b.CertPEM)
	writeFile(f.t, f.keyFile, b.KeyPEM)
}

// load returns a Source over the fixture's node files.
func (f *fixture) load() *Source {
	f.t.Helper()
	s, err := Load(f.caFile, f.certFile, f.keyFile, testLogger(f.t))
	require.NoError(f.t, err)
	return s
}

// client writes b as NAME.crt and NAME.key and returns a Source for it
// with the fixture's CA file.
func (f *fixture) client(b *pki.Bundle) *Source {
	f.t.Helper()
	cn := b.Cert.Subject.CommonName
	cert, key := filepath.Join(f.dir, cn+".crt"), filepath.Join(f.dir, cn+".key")
	writeFile(f.t, cert, b.CertPEM)
	writeFile(f.t, key, b.KeyPEM)
	s, err := Load(f.caFile, cert, key, testLogger(f.t))
	require.NoError(f.t, err)
	return s
}

// pool returns a pool of the fixture's CA.
func (f *fixture) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(f.ca.Cert)
	return p
}

// plainClient is a client configuration built without a Source: it trusts
// roots and presents cert, if not nil, whenever asked, even when the
// server names other CAs (as an attacker would; crypto/tls would otherwise
// send no certificate to a server that lists other CAs).
func plainClient(t *testing.T, roots *x509.CertPool, cert *pki.Bundle) *tls.Config {
	t.Helper()
	cfg := &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS13}
	if cert != nil {
		c, err := tls.X509KeyPair(cert.CertPEM, cert.KeyPEM)
		require.NoError(t, err)
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &c, nil }
	}
	return cfg
}

// writeFile replaces path with data the way operators and cert tools do:
// write a temporary file, then rename it over the old one.
func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, data, 0o600))
	require.NoError(t, os.Rename(tmp, path))
}

// serve runs a TLS server with cfg on 127.0.0.1 until the test ends. For
// each connection it completes the handshake and writes one line: the
// verified client subject (PeerSubject), or "-" when there is none.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				tc := c.(*tls.Conn)
				_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
				if err := tc.Handshake(); err != nil {
					return
				}
				subject, ok := PeerSubject(tc.ConnectionState())
				if !ok {
					subject = "-"
				}
				_, _ = tc.Write([]byte(subject + "\n"))
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// result is what a client learnt from a server started by serve.
type result struct {
	server  string // common name of the server's certificate
	subject string // the subject the server verified, "-" for none
	resumed bool   // the TLS session was resumed
}

// dial connects to addr with cfg and reads the server's line. A server
// that refuses the client's certificate makes it fail: in TLS 1.3 the
// client learns that at its first read.
func dial(t *testing.T, addr string, cfg *tls.Config) (result, error) {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return result{}, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return result{}, err
	}
	cs := conn.ConnectionState()
	return result{server: cs.PeerCertificates[0].Subject.CommonName, subject: strings.TrimSpace(line), resumed: cs.DidResume}, nil
}

// mustDial is dial for connections that must succeed.
func mustDial(t *testing.T, addr string, cfg *tls.Config) result {
	t.Helper()
	r, err := dial(t, addr, cfg)
	require.NoError(t, err)
	return r
}

// testLogger sends log lines to t.Log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// recorder is a slog.Handler that keeps every record, for tests that check
// what was logged.
type recorder struct {
	mu      sync.Mutex
	recs    []slog.Record
	changed chan struct{} // closed at the next record; nil while no one waits
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }

func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec.Clone())
	if r.changed != nil {
		close(r.changed)
		r.changed = nil
	}
	return nil
}

// count returns how many records have message msg.
func (r *recorder) count(msg string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.countLocked(msg)
}

func (r *recorder) countLocked(msg string) int {
	n := 0
	for _, rec := range r.recs {
		if rec.Message == msg {
			n++
		}
	}
	return n
}

// wait blocks until at least n records have message msg, and fails the
// test if that takes longer than d.
func (r *recorder) wait(t *testing.T, msg string, n int, d time.Duration) {
	t.Helper()
	timeout := time.NewTimer(d)
	defer timeout.Stop()
	for {
		r.mu.Lock()
		got := r.countLocked(msg)
		if got >= n {
			r.mu.Unlock()
			return
		}
		if r.changed == nil {
			r.changed = make(chan struct{})
		}
		changed := r.changed
		r.mu.Unlock()
		select {
		case <-changed:
		case <-timeout.C:
			t.Fatalf("%d records %q within %s, want %d", got, msg, d, n)
		}
	}
}
