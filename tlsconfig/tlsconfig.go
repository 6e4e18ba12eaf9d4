// Package tlsconfig turns the node's PEM files (--tls-ca, --tls-cert,
// --tls-key) into TLS configurations for every port, and reloads them
// without a restart.
//
// A Source holds the current CA pool and key pair. The configurations it
// hands out (ServerConfig, ClientConfig, Credentials) read the current
// material at each handshake, so after Reload every new connection uses the
// new certificate and the new CA pool; established connections keep the
// keys they negotiated. Reload is all or nothing: when any file is missing
// or wrong, the previous material stays in use and Reload returns why.
//
// The package installs no signal handler. The caller reloads on SIGHUP:
//
//	hup := make(chan os.Signal, 1)
//	signal.Notify(hup, syscall.SIGHUP)
//	go func() {
//		for range hup {
//			if err := src.Reload(); err != nil {
//				lg.Error("tls reload failed; keeping the previous certificate", "err", err)
//			}
//		}
//	}()
//
// and may also run Watch, which reloads when the files' contents change.
//
// Every configuration requires TLS 1.3. All of cave's clients and servers
// are Go programs, so nothing needs 1.2, and 1.3 has only AEAD cipher
// suites with forward secrecy, which Go does not let a Config change; there
// is no cipher list to get wrong.
//
// Dragonboat's Raft transport reads the files itself (Files gives the
// paths for its MutualTLS settings) when the NodeHost starts, so a reload
// reaches it only at the next restart.
package tlsconfig

import (
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// expiryWarning is how close to its NotAfter a freshly loaded certificate
// makes Load and Reload log a warning.
const expiryWarning = 14 * 24 * time.Hour

// Source is the node's TLS material, read from three PEM files: the CA
// certificates that peers must chain to, and the node's own certificate
// (optionally followed by intermediates) with its private key.
//
// A Source is safe for concurrent use. Handshakes read the current material
// without locking; Reload and Watch may run at the same time as handshakes
// and as each other.
type Source struct {
	caFile, certFile, keyFile string
	lg                        *slog.Logger

	cur atomic.Pointer[material] // never nil after Load

	reloadMu sync.Mutex // serialises Reload, so material swaps in read order
}

// material is one consistent set of CA pool and key pair. It is never
// modified after it is stored in Source.cur.
type material struct {
	pool *x509.CertPool
	cas  []*x509.Certificate // the certificates in pool, in file order
	cert *tls.Certificate    // Leaf is set
	sum  [sha256.Size]byte   // of the three files' contents, see fileSum
}

// Load reads the CA certificates from caFile and the key pair from certFile
// and keyFile, and returns a Source serving them.
//
// It fails when a file cannot be read (errors.Is(err, fs.ErrNotExist) for a
// missing one), holds no PEM data (ErrNotPEM) or malformed data
// (ErrMalformed), when the key does not belong to the certificate
// (ErrKeyMismatch), when the certificate does not chain to the CA
// (ErrUntrusted), or when either is outside its validity period
// (ErrExpired). lg receives a line for each load and reload; it must not be
// nil.
func Load(caFile, certFile, keyFile string, lg *slog.Logger) (*Source, error) {
	var errs []error
	for _, f := range []struct{ path, flag string }{{caFile, "--tls-ca"}, {certFile, "--tls-cert"}, {keyFile, "--tls-key"}} {
		if f.path == "" {
			errs = append(errs, fmt.Errorf("tlsconfig: %s must name a PEM file", f.flag))
		}
	}
	if lg == nil {
		errs = append(errs, errors.New("tlsconfig: a logger is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	s := &Source{caFile: caFile, certFile: certFile, keyFile: keyFile, lg: lg}
	m, err := s.read(time.Now())
	if err != nil {
		return nil, err
	}
	s.cur.Store(m)
	s.logLoaded("tls material loaded", m)
	return s, nil
}

// Reload reads the three files again and, if they are valid together,
// makes them the material for every new handshake. On error the previous
// material stays in use and the error says why, as Load's does; logging it
// is the caller's job. Reloading unchanged files is harmless.
func (s *Source) Reload() error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	m, err := s.read(time.Now())
	if err != nil {
		return err
	}
	old := s.cur.Swap(m)
	s.logLoaded("tls material reloaded", m, "changed", old.sum != m.sum)
	return nil
}

// Files returns the paths given to Load, for code that reads the files
// itself (dragonboat's MutualTLS settings).
func (s *Source) Files() (ca, cert, key string) {
	return s.caFile, s.certFile, s.keyFile
}

// Leaf returns the certificate currently presented to peers. The caller
// must not modify it.
func (s *Source) Leaf() *x509.Certificate {
	return s.cur.Load().cert.Leaf
}

func (s *Source) logLoaded(msg string, m *material, attrs ...any) {
	leaf := m.cert.Leaf
	attrs = append(attrs,
		"subject", leaf.Subject.CommonName,
		"not_after", leaf.NotAfter.UTC().Format(time.RFC3339),
		"ca_certs", len(m.cas),
		"cert_file", s.certFile)
	s.lg.Info(msg, attrs...)
	if left := time.Until(leaf.NotAfter); left < expiryWarning {
		s.lg.Warn("tls certificate expires soon", "subject", leaf.Subject.CommonName,
			"not_after", leaf.NotAfter.UTC().Format(time.RFC3339), "left", left.Round(time.Minute).String())
	}
}

// readFiles returns the contents of the CA, certificate and key files and
// their fingerprint.
func (s *Source) readFiles() (ca, cert, key []byte, sum [sha256.Size]byte, err error) {
	if ca, err = os.ReadFile(s.caFile); err != nil {
		return nil, nil, nil, sum, fmt.Errorf("tlsconfig: read CA file: %w", err)
	}
	if cert, err = os.ReadFile(s.certFile); err != nil {
		return nil, nil, nil, sum, fmt.Errorf("tlsconfig: read certificate file: %w", err)
	}
	if key, err = os.ReadFile(s.keyFile); err != nil {
		return nil, nil, nil, sum, fmt.Errorf("tlsconfig: read key file: %w", err)
	}
	h := sha256.New()
	for _, b := range [][]byte{ca, cert, key} {
		d := sha256.Sum256(b)
		h.Write(d[:])
	}
	copy(sum[:], h.Sum(nil))
	return ca, cert, key, sum, nil
}

// read loads and checks the three files as of now.
func (s *Source) read(now time.Time) (*material, error) {
	caPEM, certPEM, keyPEM, sum, err := s.readFiles()
	if err != nil {
		return nil, err
	}
	cas, err := parseCerts(caPEM)
	if err != nil {
		return nil, fmt.Errorf("tlsconfig: CA file %q: %w", s.caFile, err)
	}
	chain, err := parseCerts(certPEM)
	if err != nil {
		return nil, fmt.Errorf("tlsconfig: certificate file %q: %w", s.certFile, err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tlsconfig: key file %q: %w", s.keyFile, err)
	}
	leaf := chain[0]
	if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(leaf.PublicKey) {
		return nil, fmt.Errorf("tlsconfig: key file %q and certificate file %q: %w", s.keyFile, s.certFile, ErrKeyMismatch)
	}
	if err := checkValidity(leaf, now); err != nil {
		return nil, fmt.Errorf("tlsconfig: certificate file %q: %w", s.certFile, err)
	}
	pool := x509.NewCertPool()
	for _, c := range cas {
		pool.AddCert(c)
	}
	opts := x509.VerifyOptions{
		Roots:         pool,
		Intermediates: x509.NewCertPool(),
		CurrentTime:   now,
		// Node certificates serve and dial; client certificates (kvctl)
		// only dial. Handshakes check the usage each side needs.
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}
	for _, c := range chain[1:] {
		opts.Intermediates.AddCert(c)
	}
	if _, err := leaf.Verify(opts); err != nil {
		return nil, fmt.Errorf("tlsconfig: certificate file %q against CA file %q: %w", s.certFile, s.caFile, classifyVerify(err))
	}
	ders := make([][]byte, len(chain))
	for i, c := range chain {
		ders[i] = c.Raw
	}
	return &material{
		pool: pool,
		cas:  cas,
		cert: &tls.Certificate{Certificate: ders, PrivateKey: key, Leaf: leaf},
		sum:  sum,
	}, nil
}

// parseCerts returns every CERTIFICATE block in data, in order; other
// blocks are skipped.
func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: certificate %d: %w", ErrMalformed, len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%w: want a CERTIFICATE block", ErrNotPEM)
	}
	return certs, nil
}

// parseKey returns the first private key in data.
func parseKey(data []byte) (crypto.Signer, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, fmt.Errorf("%w: want a PRIVATE KEY block", ErrNotPEM)
		}
		if !strings.HasSuffix(b.Type, "PRIVATE KEY") {
			continue // such as EC PARAMETERS, which openssl writes first
		}
		if k, err := x509.ParsePKCS8PrivateKey(b.Bytes); err == nil {
			if s, ok := k.(crypto.Signer); ok {
				return s, nil
			}
			return nil, fmt.Errorf("%w: PKCS #8 key of type %T cannot sign", ErrMalformed, k)
		}
		if k, err := x509.ParseECPrivateKey(b.Bytes); err == nil {
			return k, nil
		}
		if k, err := x509.ParsePKCS1PrivateKey(b.Bytes); err == nil {
			return k, nil
		}
		return nil, fmt.Errorf("%w: %s block is not a PKCS #8, SEC 1 EC or PKCS #1 RSA key", ErrMalformed, b.Type)
	}
}

func checkValidity(c *x509.Certificate, now time.Time) error {
	switch {
	case now.After(c.NotAfter):
		return fmt.Errorf("%w: %q expired at %s", ErrExpired, c.Subject.CommonName, c.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(c.NotBefore):
		return fmt.Errorf("%w: %q is valid only from %s", ErrExpired, c.Subject.CommonName, c.NotBefore.UTC().Format(time.RFC3339))
	}
	return nil
}

// classifyVerify marks an x509 verification error with ErrExpired or
// ErrUntrusted, keeping the x509 error as the detail.
func classifyVerify(err error) error {
	var inv x509.CertificateInvalidError
	if errors.As(err, &inv) && inv.Reason == x509.Expired {
		return fmt.Errorf("%w: %w", ErrExpired, err)
	}
	return fmt.Errorf("%w: %w", ErrUntrusted, err)
}
