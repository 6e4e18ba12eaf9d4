package e2e

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// rootUser is the client certificate name that a new cluster's policy makes
// administrator.
const rootUser = "root"

// withTLS runs the cluster secure, as an operator would: a CA, one node
// certificate per node and a client certificate for rootUser, all made by
// the real `cave certs` commands in the cluster dir's certs/; every node
// gets --tls-ca, --tls-cert, --tls-key and a --kek-file instead of
// --insecure, joins through the gRPC address of its joinVia node, and
// serves HTTPS. URL, WaitReady and restClient follow.
func withTLS() clusterOption { return func(c *clusterConfig) { c.secure = true } }

// makeCerts creates the certificates and the key-encryption key of a
// withTLS cluster in c.certs.
func (c *procCluster) makeCerts() {
	c.t.Helper()
	c.certs = filepath.Join(c.dir, "certs")
	c.certsCmd("init", "--dir", c.certs)
	for _, nd := range c.nodes {
		c.certsCmd("node", "--dir", c.certs, "--name", nd.name, "--hosts", "127.0.0.1,localhost")
	}
	c.certsCmd("client", "--dir", c.certs, "--name", rootUser)
	kek := make([]byte, 32)
	if _, err := rand.Read(kek); err != nil {
		c.t.Fatalf("key-encryption key: %v", err)
	}
	if err := os.WriteFile(filepath.Join(c.certs, "kek.hex"), []byte(hex.EncodeToString(kek)+"\n"), 0o600); err != nil {
		c.t.Fatalf("key-encryption key: %v", err)
	}
}

// certsCmd runs `cave certs ARGS...` and fails the test if it fails.
func (c *procCluster) certsCmd(args ...string) {
	c.t.Helper()
	cmd := exec.Command(c.bin, append([]string{"certs"}, args...)...)
	cmd.Env = cleanEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		c.t.Fatalf("cave certs %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// securityArgs are node nd's security flags: --insecure, or with withTLS
// its certificate files and the key-encryption key.
func (c *procCluster) securityArgs(nd *procNode) []string {
	if !c.cfg.secure {
		return []string{"--insecure"}
	}
	return []string{
		"--tls-ca", filepath.Join(c.certs, "ca.crt"),
		"--tls-cert", filepath.Join(c.certs, nd.name+".crt"),
		"--tls-key", filepath.Join(c.certs, nd.name+".key"),
		"--kek-file", filepath.Join(c.certs, "kek.hex"),
	}
}

// joinAddr is the address other nodes pass to --join to join through node
// i: its gossip address, or with TLS its gRPC address.
func (c *procCluster) joinAddr(i int) string {
	if c.cfg.secure {
		return c.node(i).grpcAddr
	}
	return c.node(i).gossipAddr
}

// clientTLS returns a client configuration that trusts the cluster CA and
// presents the certificate NAME.crt from the certs dir ("" for none).
func (c *procCluster) clientTLS(name string) *tls.Config {
	c.t.Helper()
	return clientTLSFrom(c.t, c.certs, c.certs, name)
}

// clientTLSFrom returns a client configuration that trusts caDir/ca.crt
// and presents certDir/NAME.crt with its key ("" for no certificate).
func clientTLSFrom(t testing.TB, caDir, certDir, name string) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(caDir, "ca.crt"))
	if err != nil {
		t.Fatalf("read CA: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", filepath.Join(caDir, "ca.crt"))
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}
	if name != "" {
		kp, err := tls.LoadX509KeyPair(filepath.Join(certDir, name+".crt"), filepath.Join(certDir, name+".key"))
		if err != nil {
			t.Fatalf("load client certificate %s: %v", name, err)
		}
		cfg.Certificates = []tls.Certificate{kp}
	}
	return cfg
}

// httpClient returns an HTTP client for the nodes' REST port: plain, or
// with withTLS presenting rootUser's certificate.
func (c *procCluster) httpClient(timeout time.Duration) *http.Client {
	c.t.Helper()
	if !c.cfg.secure {
		return &http.Client{Timeout: timeout}
	}
	return &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: c.clientTLS(rootUser)}}
}

// restClient returns a restClient for the cluster: newRESTClient, with
// withTLS presenting rootUser's certificate.
func (c *procCluster) restClient(timeout time.Duration) *restClient {
	c.t.Helper()
	rc := newRESTClient(timeout)
	if c.cfg.secure {
		rc.hc.Transport.(*http.Transport).TLSClientConfig = c.clientTLS(rootUser)
	}
	return rc
}
