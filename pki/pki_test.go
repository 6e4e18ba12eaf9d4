package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func mustCA(t *testing.T, cn string) *Bundle {
	t.Helper()
	ca, err := NewCA(cn, 24*time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// TestMutualTLS issues a node and a client certificate and runs a real TLS
// handshake with client verification, then checks that a client from
// another CA is refused.
func TestMutualTLS(t *testing.T) {
	ca := mustCA(t, "cave test CA")
	node, err := ca.Issue(Request{Kind: KindNode, CommonName: "n1", Hosts: []string{"127.0.0.1", "localhost"}, Validity: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	client, err := ca.Issue(Request{Kind: KindClient, CommonName: "alice", Validity: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := mustCA(t, "other CA").Issue(Request{Kind: KindClient, CommonName: "alice", Validity: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	srvCert, err := tls.X509KeyPair(node.CertPEM, node.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{srvCert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if tc, ok := c.(*tls.Conn); ok && tc.Handshake() == nil {
					_, _ = io.WriteString(c, tc.ConnectionState().PeerCertificates[0].Subject.CommonName)
				}
			}()
		}
	}()
	dial := func(b *Bundle) (string, error) {
		cc, err := tls.X509KeyPair(b.CertPEM, b.KeyPEM)
		if err != nil {
			return "", err
		}
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), &tls.Config{Certificates: []tls.Certificate{cc}, RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS13})
		if err != nil {
			return "", err
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		b2, err := io.ReadAll(conn)
		return string(b2), err
	}
	if cn, err := dial(client); err != nil || cn != "alice" {
		t.Fatalf("client from the cluster CA: cn=%q err=%v", cn, err)
	}
	if cn, err := dial(foreign); err == nil && cn != "" {
		t.Fatalf("client from a foreign CA was accepted as %q", cn)
	}
}

func TestWriteAndLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	ca := mustCA(t, "ca")
	if err := Write(dir, "ca", ca); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ca.crt", "ca.key"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, st.Mode().Perm())
		}
	}
	if err := Write(dir, "ca", ca); err == nil {
		t.Error("Write overwrote existing files")
	}
	got, err := Load(dir, "ca")
	if err != nil {
		t.Fatal(err)
	}
	if !got.Cert.Equal(ca.Cert) || !got.Key.Equal(ca.Key) {
		t.Fatal("loaded bundle differs")
	}
}

func TestBadRequests(t *testing.T) {
	ca := mustCA(t, "ca")
	leaf, _ := ca.Issue(Request{Kind: KindClient, CommonName: "c", Validity: time.Hour}, time.Now())
	cases := map[string]func() error{
		"empty CA name":  func() error { _, err := NewCA("", time.Hour, time.Now()); return err },
		"no common name": func() error { _, err := ca.Issue(Request{Validity: time.Hour}, time.Now()); return err },
		"no validity":    func() error { _, err := ca.Issue(Request{CommonName: "x"}, time.Now()); return err },
		"node without hosts": func() error {
			_, err := ca.Issue(Request{Kind: KindNode, CommonName: "n", Validity: time.Hour}, time.Now())
			return err
		},
		"issuer is not a CA": func() error {
			_, err := leaf.Issue(Request{CommonName: "x", Validity: time.Hour}, time.Now())
			return err
		},
		"garbage certificate": func() error { _, err := Parse([]byte("nope"), []byte("nope")); return err },
	}
	for name, f := range cases {
		if err := f(); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%s: got %v, want ErrBadRequest", name, err)
		}
	}
}

// TestNodeIntermediate issues node certificates from an intermediate CA and
// a client certificate from the root: a peer that trusts the root accepts
// both; a peer that trusts only the intermediate (the Raft transport, given
// IssuerPEM of its own certificate) accepts the node and refuses the
// client, in a real TLS handshake.
func TestNodeIntermediate(t *testing.T) {
	now := time.Now()
	root := mustCA(t, "cave test CA")
	nodes, err := NewIntermediate(root, "cave nodes", 48*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if !nodes.Cert.NotAfter.Equal(root.Cert.NotAfter) {
		t.Errorf("intermediate expires %v, after its root %v", nodes.Cert.NotAfter, root.Cert.NotAfter)
	}
	n1, err := nodes.Issue(Request{Kind: KindNode, CommonName: "n1", Hosts: []string{"127.0.0.1"}, Validity: time.Hour}, now)
	if err != nil {
		t.Fatal(err)
	}
	n2, err := nodes.Issue(Request{Kind: KindNode, CommonName: "n2", Hosts: []string{"127.0.0.1"}, Validity: time.Hour}, now)
	if err != nil {
		t.Fatal(err)
	}
	client, err := root.Issue(Request{Kind: KindClient, CommonName: "alice", Validity: time.Hour}, now)
	if err != nil {
		t.Fatal(err)
	}

	issuer, ok := IssuerPEM(n1.CertPEM)
	if !ok {
		t.Fatal("IssuerPEM found no intermediate in a node certificate's chain")
	}
	if string(issuer) != string(nodes.CertPEM) {
		t.Error("IssuerPEM returned something other than the intermediate")
	}
	if _, ok := IssuerPEM(client.CertPEM); ok {
		t.Error("IssuerPEM of a root-signed certificate: want none")
	}
	if _, ok := IssuerPEM(root.CertPEM); ok {
		t.Error("IssuerPEM of a root: want none")
	}
	if _, ok := IssuerPEM([]byte("not pem")); ok {
		t.Error("IssuerPEM of garbage: want none")
	}

	pool := func(pemData []byte) *x509.CertPool {
		p := x509.NewCertPool()
		if !p.AppendCertsFromPEM(pemData) {
			t.Fatal("no certificate in pool data")
		}
		return p
	}
	handshake := func(server *Bundle, trusted *x509.CertPool, peer *Bundle) error {
		t.Helper()
		srv, err := tls.X509KeyPair(server.CertPEM, server.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		cli, err := tls.X509KeyPair(peer.CertPEM, peer.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return handshakePair(t,
			&tls.Config{Certificates: []tls.Certificate{srv}, ClientCAs: trusted, ClientAuth: tls.RequireAndVerifyClientCert},
			&tls.Config{Certificates: []tls.Certificate{cli}, RootCAs: trusted, ServerName: "127.0.0.1"})
	}
	if err := handshake(n1, pool(root.CertPEM), n2); err != nil {
		t.Errorf("node to node, trusting the root: %v", err)
	}
	if err := handshake(n1, pool(issuer), n2); err != nil {
		t.Errorf("node to node, trusting the intermediate: %v", err)
	}
	if err := handshake(n1, pool(issuer), client); err == nil {
		t.Error("a client certificate reached a server that trusts only the node intermediate")
	}
}

// handshakePair runs a TLS handshake between server and client configs
// over a loopback TCP connection and returns the server's error or,
// failing that, the client's.
func handshakePair(t *testing.T, server, client *tls.Config) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srvErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			srvErr <- err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		srvErr <- tls.Server(c, server).Handshake()
	}()
	c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	cliErr := tls.Client(c, client).Handshake()
	if err := <-srvErr; err != nil {
		return err
	}
	return cliErr
}
