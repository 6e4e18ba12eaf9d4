package nodetest

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cavedb/cave/node"
	"github.com/cavedb/cave/pki"
	"github.com/cavedb/cave/tlsconfig"
)

// WithTLS runs every node with TLS on every port, as `cave --tls-*` does: a
// CA, a node CA under it and one node certificate for 127.0.0.1 and
// localhost, made with pki in
// the cluster's temp dir; mutual TLS on gRPC (the Peer service for node
// certificates only), HTTPS on REST, Raft over mutual TLS and encrypted
// gossip, with nodes joining through gRPC addresses. HTTPURL then returns
// https URLs; ClientTLS makes client configurations. Access control stays
// as WithACL sets it. Default off.
func WithTLS() Option { return func(s *settings) { s.tls = true } }

// certs is the TLS material of a WithTLS cluster.
type certs struct {
	dir string // ca.crt, node.crt and node.key
	ca  *pki.Bundle

	mu      sync.Mutex // guards clients
	clients map[string]*tls.Config
}

// newCerts creates the CA and the node certificate in dir.
func newCerts(t testing.TB, dir string) *certs {
	t.Helper()
	now := time.Now()
	ca, err := pki.NewCA("nodetest-ca", 24*time.Hour, now)
	if err != nil {
		t.Fatalf("nodetest: CA: %v", err)
	}
	// Node certificates come from a node CA under the cluster CA, as
	// `cave certs` makes them, so the Raft port trusts node certificates
	// only.
	nodesCA, err := pki.NewIntermediate(ca, "nodetest-nodes", 24*time.Hour, now)
	if err != nil {
		t.Fatalf("nodetest: node CA: %v", err)
	}
	nd, err := nodesCA.Issue(pki.Request{Kind: pki.KindNode, CommonName: "node", Hosts: []string{"127.0.0.1", "localhost"}, Validity: time.Hour}, now)
	if err != nil {
		t.Fatalf("nodetest: node certificate: %v", err)
	}
	dir = filepath.Join(dir, "certs")
	if err := pki.Write(dir, "ca", ca); err != nil {
		t.Fatalf("nodetest: %v", err)
	}
	if err := pki.Write(dir, "node", nd); err != nil {
		t.Fatalf("nodetest: %v", err)
	}
	return &certs{dir: dir, ca: ca, clients: map[string]*tls.Config{}}
}

// files returns the node's --tls-* files.
func (cs *certs) files() node.TLSFiles {
	return node.TLSFiles{CAFile: filepath.Join(cs.dir, "ca.crt"), CertFile: filepath.Join(cs.dir, "node.crt"), KeyFile: filepath.Join(cs.dir, "node.key")}
}

// source loads the node's TLS material for one member, or returns nil
// without WithTLS.
func (cs *certs) source(lg *slog.Logger) (*tlsconfig.Source, error) {
	if cs == nil {
		return nil, nil
	}
	f := cs.files()
	return tlsconfig.Load(f.CAFile, f.CertFile, f.KeyFile, lg)
}

// ClientTLS returns a client configuration for a WithTLS cluster: it trusts
// the cluster CA and presents a client certificate whose common name is
// name (no certificate when name is ""). It fails the test without
// WithTLS.
func (c *Cluster) ClientTLS(name string) *tls.Config {
	c.t.Helper()
	cs := c.certs
	if cs == nil {
		c.t.Fatalf("nodetest: ClientTLS needs WithTLS")
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cfg, ok := cs.clients[name]; ok {
		return cfg.Clone()
	}
	pool := x509.NewCertPool()
	pool.AddCert(cs.ca.Cert)
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}
	if name != "" {
		b, err := cs.ca.Issue(pki.Request{Kind: pki.KindClient, CommonName: name, Validity: time.Hour}, time.Now())
		if err != nil {
			c.t.Fatalf("nodetest: client certificate %q: %v", name, err)
		}
		kp, err := tls.X509KeyPair(b.CertPEM, b.KeyPEM)
		if err != nil {
			c.t.Fatalf("nodetest: client certificate %q: %v", name, err)
		}
		cfg.Certificates = []tls.Certificate{kp}
	}
	cs.clients[name] = cfg
	return cfg.Clone()
}
