package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"time"
)

// ServerConfig returns a server configuration that presents the current
// certificate and treats client certificates as clientAuth says, checking
// them against the current CA pool.
//
// Every handshake runs on a configuration that GetConfigForClient builds
// from a clone of the returned Config plus the material current at that
// moment, so a Reload takes effect at the next handshake on listeners that
// are already open. Fields the caller sets on the returned Config before
// serving (NextProtos, VerifyConnection, session ticket settings) carry
// over to every handshake; changing them once serving has started is a
// data race. The caller must not set GetConfigForClient.
//
// ALPN: grpc's credentials.NewTLS adds "h2" to each handshake's
// configuration itself. net/http adds protocols only to its private copy,
// which handshakes do not use, so an http.Server that should speak HTTP/2
// needs NextProtos = []string{"h2", "http/1.1"} set on the returned Config;
// without it clients fall back to HTTP/1.1.
//
// With tls.RequireAndVerifyClientCert or tls.VerifyClientCertIfGiven, a
// client certificate must chain to the current CA pool and allow client
// authentication, and PeerSubject reports its common name. crypto/tls checks
// a resumed session against the current pool too, so a CA dropped by
// Reload cannot come back through a session ticket. tls.RequestClientCert
// and tls.RequireAnyClientCert accept any certificate unverified; PeerSubject
// reports no subject for those connections.
func (s *Source) ServerConfig(clientAuth tls.ClientAuthType) *tls.Config {
	base := &tls.Config{
		MinVersion: tls.VersionTLS13,
		ClientAuth: clientAuth,
		// GetConfigForClient replaces both for every handshake. They are
		// set so that code which bypasses it still presents the current
		// certificate and never verifies clients against the system roots.
		ClientCAs: s.cur.Load().pool,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.cur.Load().cert, nil
		},
	}
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		m := s.cur.Load()
		c := base.Clone()
		c.GetConfigForClient = nil
		c.GetCertificate = nil
		c.Certificates = []tls.Certificate{*m.cert}
		c.ClientCAs = m.pool
		return c, nil
	}
	return base
}

// ClientConfig returns a client configuration that presents the current
// certificate whenever the server asks for one, and accepts a server only
// if its certificate chains to the current CA pool, allows server
// authentication and names serverName.
//
// serverName is the DNS name or IP address the server's certificate must
// carry: pass the host part of the address being dialled. When it is empty
// the name the connection sends in SNI is used instead (grpc and net/http
// fill it in from the dial target); an IP address is never sent in SNI, so
// dialling an IP address needs the address here, or Credentials for gRPC.
//
// The Config sets InsecureSkipVerify so that crypto/tls does not verify
// against a pool fixed at creation; VerifyConnection does the complete check
// against the pool current at each handshake, resumed sessions included,
// and fails the handshake with ErrUntrusted. The caller must not replace
// VerifyConnection.
func (s *Source) ClientConfig(serverName string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		ServerName: serverName,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return s.cur.Load().cert, nil
		},
		InsecureSkipVerify: true, // VerifyConnection verifies; see above
		VerifyConnection: func(cs tls.ConnectionState) error {
			return s.verifyServer(cs, serverName)
		},
	}
}

// verifyServer checks the server's certificate chain in cs against the
// current pool and name (or the SNI name when name is empty).
func (s *Source) verifyServer(cs tls.ConnectionState, name string) error {
	if name == "" {
		name = cs.ServerName
	}
	if name == "" {
		return fmt.Errorf("%w: no server name to check the server's certificate against (dialling an IP address needs ClientConfig(address))", ErrUntrusted)
	}
	if len(cs.PeerCertificates) == 0 {
		return fmt.Errorf("%w: server %q sent no certificate", ErrUntrusted, name)
	}
	opts := x509.VerifyOptions{
		Roots:         s.cur.Load().pool,
		Intermediates: x509.NewCertPool(),
		DNSName:       name,
		CurrentTime:   time.Now(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, c := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
		return fmt.Errorf("%w: server %q: %w", ErrUntrusted, name, err)
	}
	return nil
}

// PeerSubject returns the common name of the client certificate that the
// server verified on the connection described by state, and false when no
// certificate was verified: the client sent none, the server's ClientAuth
// does not verify, or state is a client's view of the connection. The
// common name is the subject of access checks.
func PeerSubject(state tls.ConnectionState) (string, bool) {
	if len(state.VerifiedChains) == 0 || len(state.VerifiedChains[0]) == 0 {
		return "", false
	}
	cn := state.VerifiedChains[0][0].Subject.CommonName
	return cn, cn != ""
}
