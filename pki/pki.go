// Package pki creates the certificates cave uses for mutual TLS: a cluster
// CA, node certificates (server and client use, for every port and for
// node-to-node calls) and client certificates whose common name is the
// subject the access policy knows. Keys are ECDSA P-256.
//
// Node certificates are best issued by an intermediate CA that signs node
// certificates only (NewIntermediate): everything that trusts the cluster
// CA accepts them, and the Raft transport, which can check nothing but the
// chain, trusts the intermediate alone and so refuses client certificates
// (IssuerPEM gives a node the intermediate to trust).
package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Bundle is a certificate with its private key, parsed and PEM encoded.
type Bundle struct {
	Cert    *x509.Certificate
	Key     *ecdsa.PrivateKey
	CertPEM []byte
	KeyPEM  []byte
}

// Kind says what a certificate is for.
type Kind int

const (
	// KindNode certificates serve every port and dial other nodes.
	KindNode Kind = iota
	// KindClient certificates authenticate a client; the common name is
	// the subject of access checks.
	KindClient
)

// Request describes a certificate to issue.
type Request struct {
	Kind       Kind
	CommonName string
	// Hosts are DNS names or IP addresses for the SAN extension; node
	// certificates need every name and address peers and clients dial.
	Hosts    []string
	Validity time.Duration
}

// ErrBadRequest is returned for a Request that cannot be issued.
var ErrBadRequest = errors.New("pki: bad certificate request")

// NewCA returns a self-signed CA certificate named cn, valid from now for
// validity. It may sign one level of intermediate CAs (NewIntermediate).
func NewCA(cn string, validity time.Duration, now time.Time) (*Bundle, error) {
	if cn == "" || validity <= 0 {
		return nil, fmt.Errorf("%w: the CA needs a name and a positive validity", ErrBadRequest)
	}
	tmpl := caTemplate(cn, validity, now)
	tmpl.MaxPathLen = 1 // one intermediate: the node CA
	return sign(tmpl, nil)
}

// NewIntermediate returns a CA named cn signed by ca, valid from now for
// validity (capped at ca's expiry), that may sign leaf certificates only.
// Its CertPEM holds its certificate followed by ca's chain, so that
// certificates it issues carry the whole chain to ca.
func NewIntermediate(ca *Bundle, cn string, validity time.Duration, now time.Time) (*Bundle, error) {
	if cn == "" || validity <= 0 {
		return nil, fmt.Errorf("%w: the intermediate CA needs a name and a positive validity", ErrBadRequest)
	}
	if !ca.Cert.IsCA {
		return nil, fmt.Errorf("%w: the issuer is not a CA", ErrBadRequest)
	}
	tmpl := caTemplate(cn, validity, now)
	tmpl.MaxPathLenZero = true
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter
	}
	return sign(tmpl, ca)
}

// caTemplate is the template of a CA certificate named cn, valid from now
// (less a minute of clock skew) for validity.
func caTemplate(cn string, validity time.Duration, now time.Time) *x509.Certificate {
	return &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"cave"}},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
}

// Issue signs a certificate for req with the CA ca. When ca is an
// intermediate, the returned CertPEM holds the new certificate followed by
// ca's chain.
func (ca *Bundle) Issue(req Request, now time.Time) (*Bundle, error) {
	if req.CommonName == "" || req.Validity <= 0 {
		return nil, fmt.Errorf("%w: a certificate needs a common name and a positive validity", ErrBadRequest)
	}
	if !ca.Cert.IsCA {
		return nil, fmt.Errorf("%w: the issuer is not a CA", ErrBadRequest)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: req.CommonName, Organization: []string{"cave"}},
		NotBefore:   now.Add(-time.Minute),
		NotAfter:    now.Add(req.Validity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if req.Kind == KindNode {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
		if len(req.Hosts) == 0 {
			return nil, fmt.Errorf("%w: a node certificate needs at least one host name or address", ErrBadRequest)
		}
	}
	for _, h := range req.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter
	}
	return sign(tmpl, ca)
}

func sign(tmpl *x509.Certificate, issuer *Bundle) (*Bundle, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	parent, signer := tmpl, key
	var chain []byte // the issuer's chain, below a root
	if issuer != nil {
		parent, signer = issuer.Cert, issuer.Key
		if !selfSigned(issuer.Cert) {
			chain = issuer.CertPEM
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		return nil, fmt.Errorf("pki: sign %q: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &Bundle{
		Cert:    cert,
		Key:     key,
		CertPEM: append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), chain...),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// selfSigned reports whether c is a root: its own issuer.
func selfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil
}

// IssuerPEM returns, PEM encoded, the certificate that issued the leaf of
// chainPEM (a certificate file: the leaf, then its chain) when the file
// carries it and it is an intermediate CA, not a root; ok is false
// otherwise. A node gives it to the Raft transport as the only CA to
// trust, so that only certificates of the same intermediate, node
// certificates, can connect.
func IssuerPEM(chainPEM []byte) (issuer []byte, ok bool) {
	leafBlock, rest := pem.Decode(chainPEM)
	if leafBlock == nil {
		return nil, false
	}
	leaf, err := x509.ParseCertificate(leafBlock.Bytes)
	if err != nil {
		return nil, false
	}
	block, _ := pem.Decode(rest)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, false
	}
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil || !ca.IsCA || selfSigned(ca) || leaf.CheckSignatureFrom(ca) != nil {
		return nil, false
	}
	return pem.EncodeToMemory(block), true
}

// Parse reads a bundle from PEM-encoded certificate and EC private key.
func Parse(certPEM, keyPEM []byte) (*Bundle, error) {
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%w: no PEM certificate", ErrBadRequest)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: parse certificate: %w", err)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, fmt.Errorf("%w: no PEM private key", ErrBadRequest)
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: parse private key: %w", err)
	}
	return &Bundle{Cert: cert, Key: key, CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

// Load reads NAME.crt and NAME.key from dir.
func Load(dir, name string) (*Bundle, error) {
	c, err := os.ReadFile(filepath.Join(dir, name+".crt"))
	if err != nil {
		return nil, err
	}
	k, err := os.ReadFile(filepath.Join(dir, name+".key"))
	if err != nil {
		return nil, err
	}
	return Parse(c, k)
}

// Write stores b as NAME.crt and NAME.key in dir, creating dir with mode
// 0700 and both files with mode 0600. It refuses to overwrite existing
// files.
func Write(dir, name string, b *Bundle) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for ext, data := range map[string][]byte{".crt": b.CertPEM, ".key": b.KeyPEM} {
		path := filepath.Join(dir, name+ext)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fmt.Errorf("pki: %w", err)
		}
		if _, err := f.Write(data); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}
