package secrets

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
)

// maxKEKFileBytes bounds how much of a --kek-file is read; every accepted
// encoding is far shorter.
const maxKEKFileBytes = 4096

// LoadKEKFile reads the key-encryption key from the file at path (the
// --kek-file flag). The file holds the 32-byte key in one of these forms:
//
//   - exactly 32 bytes: the raw key (e.g. head -c 32 /dev/urandom);
//   - 64 hexadecimal digits (e.g. openssl rand -hex 32);
//   - base64 of the 32 bytes, standard or URL alphabet, padded or not
//     (e.g. openssl rand -base64 32).
//
// Whitespace around the text forms, such as a final newline, is ignored.
// A 32-byte file made only of printable ASCII is refused rather than
// taken raw: it is a passphrase or a short hex key typed without a newline,
// not random bytes (which are all printable with odds of about 1e-14).
//
// The file must be a regular file that neither group nor others may read,
// write or execute (mode 0600 or 0400); on Windows, where Go reports no
// such bits, this check is skipped. Errors: ErrBadKEK for a file that
// breaks these rules, is in no accepted form, or holds an all-zero key;
// the os error (errors.Is(err, fs.ErrNotExist), ...) when it cannot be
// opened or read. No error contains the file's content.
func LoadKEKFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("secrets: --kek-file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("secrets: --kek-file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: --kek-file %s is not a regular file", ErrBadKEK, path)
	}
	if perm := fi.Mode().Perm(); runtime.GOOS != "windows" && perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: --kek-file %s has mode %#o; group and others must have no access (chmod 600)", ErrBadKEK, path, perm)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKEKFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("secrets: --kek-file: %w", err)
	}
	if len(data) > maxKEKFileBytes {
		return nil, fmt.Errorf("%w: --kek-file %s is longer than %d bytes", ErrBadKEK, path, maxKEKFileBytes)
	}
	kek, why := parseKEK(data)
	if kek == nil {
		return nil, fmt.Errorf("%w: --kek-file %s: %s", ErrBadKEK, path, why)
	}
	return kek, nil
}

// ParseKEK decodes a key-encryption key given in one of the forms
// LoadKEKFile accepts. It returns ErrBadKEK, without the input in the
// message, for anything else or for an all-zero key. The result does not
// share memory with data.
func ParseKEK(data []byte) ([]byte, error) {
	kek, why := parseKEK(data)
	if kek == nil {
		return nil, fmt.Errorf("%w: %s", ErrBadKEK, why)
	}
	return kek, nil
}

// parseKEK returns the key in data, or nil and why not.
func parseKEK(data []byte) (kek []byte, why string) {
	if len(data) == KeyBytes && !printable(data) {
		kek = bytes.Clone(data)
	} else if kek = decodeKEKText(string(bytes.TrimSpace(data))); kek == nil {
		return nil, fmt.Sprintf("want %d raw bytes, %d hex digits or base64 of %d bytes", KeyBytes, 2*KeyBytes, KeyBytes)
	}
	if allZero(kek) {
		return nil, "all zero bytes"
	}
	return kek, ""
}

// printable reports whether b is all printable ASCII or whitespace.
func printable(b []byte) bool {
	for _, c := range b {
		if (c < 0x20 || c > 0x7e) && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}

// decodeKEKText returns the key in text, as hex or any base64 variant, or
// nil.
func decodeKEKText(text string) []byte {
	if len(text) == 2*KeyBytes {
		if b, err := hex.DecodeString(text); err == nil {
			return b
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(text); err == nil && len(b) == KeyBytes {
			return b
		}
	}
	return nil
}

// GenerateKEKFile writes a new random key-encryption key, drawn from rand
// (crypto/rand.Reader outside tests), to a new file at path as 64 hex
// digits and a newline, with mode 0600, and returns the key. It never
// overwrites: an existing path fails with an error matching
// fs.ErrExist. It is meant for `cave` to create a KEK in dev mode or on
// an operator's request; on a write error the partial file is removed.
func GenerateKEKFile(path string, rand io.Reader) ([]byte, error) {
	if rand == nil {
		return nil, errors.New("secrets: GenerateKEKFile needs a random source, got nil")
	}
	kek := make([]byte, KeyBytes)
	if _, err := io.ReadFull(rand, kek); err != nil {
		return nil, fmt.Errorf("secrets: generate kek: %w", err)
	}
	if err := checkKEK(kek); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("secrets: create kek file: %w", err)
	}
	_, werr := f.WriteString(hex.EncodeToString(kek) + "\n")
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(path)
		return nil, fmt.Errorf("secrets: write kek file: %w", werr)
	}
	return kek, nil
}

// DeriveDevKEK returns the dev-mode key-encryption key for the cluster
// named cluster: HKDF-SHA256 over fixed public inputs and the name.
//
// It is NOT secret: anyone who knows the cluster name and this code can
// compute it, so secret values of a cluster that uses it are protected
// only against casual reading of the data directory. Use it for
// --mode=dev only; prod requires --kek-file. The same name always gives
// the same key, so a dev cluster restarts without a key file.
func DeriveDevKEK(cluster string) []byte {
	kek, err := hkdf.Key(sha256.New, []byte("cave dev-mode key-encryption key (not secret)"), []byte("cave/secrets/v1/dev-kek"), cluster, KeyBytes)
	if err != nil {
		// hkdf fails only for key lengths above 255*32 bytes.
		panic(fmt.Sprintf("secrets: derive dev kek: %v", err))
	}
	return kek
}
