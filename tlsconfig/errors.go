package tlsconfig

import "errors"

// The errors Load and Reload return, each wrapped with the file it concerns.
// A file that cannot be read is reported with the os error, so
// errors.Is(err, fs.ErrNotExist) tells a missing file.
var (
	// ErrNotPEM is returned by Load and Reload when a file holds no PEM
	// block of the kind it must: CERTIFICATE in the CA and certificate
	// files, a PRIVATE KEY in the key file.
	ErrNotPEM = errors.New("tlsconfig: no PEM data of the expected type")

	// ErrMalformed is returned by Load and Reload when a PEM block does
	// not decode to a certificate or to a supported private key (PKCS #8,
	// SEC 1 EC or PKCS #1 RSA).
	ErrMalformed = errors.New("tlsconfig: malformed certificate or key")

	// ErrKeyMismatch is returned by Load and Reload when the private key
	// is not the one the certificate was issued for.
	ErrKeyMismatch = errors.New("tlsconfig: private key does not match the certificate")

	// ErrUntrusted is returned by Load and Reload when the certificate
	// does not chain to a certificate in the CA file. A handshake made
	// with ClientConfig fails with it when the server's certificate does
	// not chain to the current CA pool or does not name the server.
	ErrUntrusted = errors.New("tlsconfig: certificate not signed by the CA")

	// ErrExpired is returned by Load and Reload when the certificate, or a
	// CA certificate it chains to, is outside its validity period (expired
	// or not yet valid).
	ErrExpired = errors.New("tlsconfig: certificate expired or not yet valid")
)
