// Package secrets encrypts the values written with secret=true (docs/architecture.md, "Security")
// under a three-level key hierarchy:
//
//   - the key-encryption key (KEK), 32 bytes the operator supplies with
//     --kek-file (LoadKEKFile) or, in dev mode only, DeriveDevKEK. It is
//     never stored by cave;
//   - the cluster key, 32 random bytes made at bootstrap and stored only
//     wrapped (AES-256-GCM) by the KEK;
//   - data keys, 32 random bytes each with a numeric KeyID, stored only
//     wrapped by the cluster key. The newest one is current; Rotate adds
//     another.
//
// A value is sealed with AES-256-GCM under the current data key with a
// fresh random 96-bit nonce into a self-describing envelope (see Encrypt).
// The caller passes the value's key as aad, so an envelope copied under
// another key does not decrypt.
//
// Encryption is randomised, so it happens in the gateway before a write is
// proposed and the ciphertext travels in the Raft command: nothing here may
// be called from a state machine's Update. The package does no I/O except
// in LoadKEKFile and GenerateKEKFile, on the path the caller passes, and
// keeps no package-level state.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
)

// KeyBytes is the size of every key: the KEK, the cluster key and data
// keys (AES-256).
const KeyBytes = 32

// NonceBytes is the size of the random AES-GCM nonce in an envelope.
const NonceBytes = 12

// KeyID names a data key inside a keyring. Ids start at 1 and grow by one
// with each Rotate; 0 is never a valid id.
type KeyID uint32

// Envelope layout, all integers big-endian:
//
//	offset  size  field
//	0       4     magic "\x89CVS"
//	4       1     version (1)
//	5       4     data key id
//	9       12    nonce
//	21      n+16  AES-256-GCM ciphertext of the n-byte plaintext, then tag
//
// The first byte 0x89 cannot start valid UTF-8, so no text value is ever
// mistaken for an envelope. The GCM additional data is the 9-byte header
// followed by the caller's aad, so the version and key id are
// authenticated too.
const (
	magic           = "\x89CVS"
	envelopeVersion = 1
	headerBytes     = len(magic) + 1 + 4
	tagBytes        = 16
)

// EnvelopeOverhead is how many bytes Encrypt adds to a plaintext: 37.
const EnvelopeOverhead = headerBytes + NonceBytes + tagBytes

// Additional data that binds each wrapped key to its role (and data keys
// to their id), so a wrapped data key cannot pass for the cluster key or
// for another id.
const (
	clusterKeyAD = "cave/secrets/v1/cluster-key"
	dataKeyAD    = "cave/secrets/v1/data-key/"
)

// wrappedVersion is the WrappedKeyring.Version this package writes and
// reads.
const wrappedVersion = 1

// WrappedKeyring is the persisted form of a Keyring, safe to store where
// the KEK is not: the gateway keeps it in the meta shard. Opening it needs
// the KEK (OpenKeyring).
type WrappedKeyring struct {
	// Version is the format version, 1.
	Version int `json:"version"`
	// ClusterKey is nonce || AES-256-GCM(KEK, cluster key) || tag.
	ClusterKey []byte `json:"cluster_key"`
	// Current is the id of the data key new envelopes are sealed with.
	Current KeyID `json:"current"`
	// DataKeys are every data key, ascending by ID.
	DataKeys []WrappedKey `json:"data_keys"`
}

// WrappedKey is one data key wrapped by the cluster key.
type WrappedKey struct {
	ID KeyID `json:"id"`
	// Key is nonce || AES-256-GCM(cluster key, data key) || tag.
	Key []byte `json:"key"`
}

// Marshal encodes w as JSON. Equal values encode to equal bytes.
func (w WrappedKeyring) Marshal() []byte {
	b, err := json.Marshal(w)
	if err != nil {
		// Only slices, ints and strings: json cannot fail on this type.
		panic(fmt.Sprintf("secrets: marshal wrapped keyring: %v", err))
	}
	return b
}

// UnmarshalWrapped decodes what WrappedKeyring.Marshal produced. It checks
// the encoding only (ErrCorrupt); OpenKeyring checks the content.
func UnmarshalWrapped(b []byte) (WrappedKeyring, error) {
	var w WrappedKeyring
	if err := json.Unmarshal(b, &w); err != nil {
		return WrappedKeyring{}, fmt.Errorf("%w: wrapped keyring is not valid JSON", ErrCorrupt)
	}
	return w, nil
}

// clone returns a deep copy of w, so callers never share its slices.
func (w WrappedKeyring) clone() WrappedKeyring {
	c := w
	c.ClusterKey = append([]byte(nil), w.ClusterKey...)
	c.DataKeys = make([]WrappedKey, len(w.DataKeys))
	for i, k := range w.DataKeys {
		c.DataKeys[i] = WrappedKey{ID: k.ID, Key: append([]byte(nil), k.Key...)}
	}
	return c
}

// Keyring holds the unwrapped cluster key and data keys and seals and
// opens envelopes. It never holds the KEK.
//
// A Keyring is safe for concurrent use: Encrypt, Decrypt, Current and
// Wrapped may run at the same time as each other and as Rotate, and see
// the keyring either before or after a rotation.
type Keyring struct {
	// rand supplies nonces; set at construction and never changed. It must
	// be safe for concurrent use when Encrypt is called concurrently.
	rand io.Reader

	mu      sync.RWMutex // guards the fields below
	cluster cipher.AEAD  // the cluster key; wraps data keys
	keys    map[KeyID]cipher.AEAD
	current KeyID
	wrapped WrappedKeyring // the persisted form of the fields above
}

// NewKeyring creates a keyring for a new cluster: a random cluster key,
// wrapped by kek, and a first data key with id 1. rand supplies the keys
// and, for the keyring's lifetime, every Encrypt nonce; pass
// crypto/rand.Reader outside tests (a reader that repeats its output would
// repeat nonces, which breaks AES-GCM). kek must be KeyBytes long and not
// all zero (ErrBadKEK). The keyring does not keep kek.
func NewKeyring(kek []byte, rand io.Reader) (*Keyring, error) {
	if rand == nil {
		return nil, errors.New("secrets: NewKeyring needs a random source, got nil")
	}
	kekAEAD, err := kekCipher(kek)
	if err != nil {
		return nil, err
	}
	clusterKey := make([]byte, KeyBytes)
	if _, err := io.ReadFull(rand, clusterKey); err != nil {
		return nil, fmt.Errorf("secrets: generate cluster key: %w", err)
	}
	wrappedCluster, err := seal(kekAEAD, rand, clusterKey, []byte(clusterKeyAD))
	if err != nil {
		return nil, fmt.Errorf("secrets: wrap cluster key: %w", err)
	}
	k := &Keyring{
		rand:    rand,
		cluster: mustGCM(clusterKey),
		keys:    make(map[KeyID]cipher.AEAD),
		wrapped: WrappedKeyring{Version: wrappedVersion, ClusterKey: wrappedCluster},
	}
	if err := k.addKey(1, rand); err != nil {
		return nil, err
	}
	return k, nil
}

// OpenKeyring unwraps w with kek. The keyring draws Encrypt nonces from
// crypto/rand.Reader.
//
// Errors: ErrBadKEK when kek is not a usable key; ErrWrongKEK when kek does
// not open the cluster key; ErrCorrupt when w is malformed (unknown
// version, no data keys, duplicate or zero ids, current id missing) or a
// data key does not open under the cluster key.
func OpenKeyring(kek []byte, w WrappedKeyring) (*Keyring, error) {
	kekAEAD, err := kekCipher(kek)
	if err != nil {
		return nil, err
	}
	if w.Version != wrappedVersion {
		return nil, fmt.Errorf("%w: wrapped keyring version %d, want %d", ErrCorrupt, w.Version, wrappedVersion)
	}
	clusterKey, err := open(kekAEAD, w.ClusterKey, []byte(clusterKeyAD))
	if err != nil || len(clusterKey) != KeyBytes {
		return nil, ErrWrongKEK
	}
	k := &Keyring{
		rand:    rand.Reader,
		cluster: mustGCM(clusterKey),
		keys:    make(map[KeyID]cipher.AEAD, len(w.DataKeys)),
		current: w.Current,
		wrapped: w.clone(),
	}
	if len(w.DataKeys) == 0 {
		return nil, fmt.Errorf("%w: wrapped keyring has no data keys", ErrCorrupt)
	}
	for _, dk := range w.DataKeys {
		if dk.ID == 0 {
			return nil, fmt.Errorf("%w: data key id 0", ErrCorrupt)
		}
		if _, dup := k.keys[dk.ID]; dup {
			return nil, fmt.Errorf("%w: data key id %d appears twice", ErrCorrupt, dk.ID)
		}
		key, err := open(k.cluster, dk.Key, dataKeyAAD(dk.ID))
		if err != nil || len(key) != KeyBytes {
			return nil, fmt.Errorf("%w: data key %d does not open under the cluster key", ErrCorrupt, dk.ID)
		}
		k.keys[dk.ID] = mustGCM(key)
	}
	if _, ok := k.keys[w.Current]; !ok {
		return nil, fmt.Errorf("%w: current data key %d is not in the keyring", ErrCorrupt, w.Current)
	}
	sort.Slice(k.wrapped.DataKeys, func(i, j int) bool { return k.wrapped.DataKeys[i].ID < k.wrapped.DataKeys[j].ID })
	return k, nil
}

// Wrapped returns the keyring's persisted form: the cluster key as wrapped
// by the KEK at NewKeyring, and every data key wrapped by the cluster key.
// Wrapping happens once per key, so successive calls return equal values
// until the next Rotate. The caller owns the returned slices.
func (k *Keyring) Wrapped() WrappedKeyring {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.wrapped.clone()
}

// Current returns the id of the data key Encrypt uses.
func (k *Keyring) Current() KeyID {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.current
}

// Rotate adds a data key, drawn from rand (crypto/rand.Reader outside
// tests), with the next id and makes it current; envelopes sealed under
// older keys still decrypt. It returns the new id.
//
// Rotate changes only this Keyring. To rotate a cluster, open the stored
// keyring, Rotate, and store Wrapped() with a compare-and-set on the stored
// revision: two rotations of the same stored keyring would each issue the
// same id for a different key. Other nodes then reopen the stored keyring;
// until they do, they fail envelopes under the new id with ErrUnknownKey.
func (k *Keyring) Rotate(rand io.Reader) (KeyID, error) {
	if rand == nil {
		return 0, errors.New("secrets: Rotate needs a random source, got nil")
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	var last KeyID
	for id := range k.keys {
		last = max(last, id)
	}
	if last == ^KeyID(0) {
		return 0, errors.New("secrets: rotate: data key ids exhausted")
	}
	if err := k.addKey(last+1, rand); err != nil {
		return 0, err
	}
	return k.current, nil
}

// addKey generates data key id, wraps it and makes it current. The caller
// holds k.mu or owns k exclusively.
func (k *Keyring) addKey(id KeyID, rand io.Reader) error {
	key := make([]byte, KeyBytes)
	if _, err := io.ReadFull(rand, key); err != nil {
		return fmt.Errorf("secrets: generate data key %d: %w", id, err)
	}
	w, err := seal(k.cluster, rand, key, dataKeyAAD(id))
	if err != nil {
		return fmt.Errorf("secrets: wrap data key %d: %w", id, err)
	}
	k.keys[id] = mustGCM(key)
	k.current = id
	k.wrapped.Current = id
	k.wrapped.DataKeys = append(k.wrapped.DataKeys, WrappedKey{ID: id, Key: w})
	return nil
}

// Encrypt seals plaintext under the current data key with a fresh random
// nonce and returns the envelope (layout above; EnvelopeOverhead bytes
// longer than plaintext). aad is authenticated but not stored: Decrypt
// needs the same aad, and the gateway passes the value's key. The
// envelope never contains plaintext, and neither does any error. It fails
// only when the random source does. The caller owns the result; Encrypt
// does not keep or modify plaintext or aad.
//
// Random nonces are safe for about 2^32 envelopes per data key; Rotate
// well before that.
func (k *Keyring) Encrypt(plaintext, aad []byte) ([]byte, error) {
	k.mu.RLock()
	id, aead := k.current, k.keys[k.current]
	k.mu.RUnlock()

	out := make([]byte, headerBytes+NonceBytes, EnvelopeOverhead+len(plaintext))
	copy(out, magic)
	out[len(magic)] = envelopeVersion
	binary.BigEndian.PutUint32(out[len(magic)+1:headerBytes], uint32(id))
	nonce := out[headerBytes:]
	if _, err := io.ReadFull(k.rand, nonce); err != nil {
		return nil, fmt.Errorf("secrets: read nonce: %w", err)
	}
	return aead.Seal(out, nonce, plaintext, additionalData(out[:headerBytes], aad)), nil
}

// Decrypt opens an envelope made by Encrypt with the same aad and returns
// the plaintext, which the caller owns.
//
// Errors: ErrUnknownKey when the envelope's data key is not in this
// keyring (reopen it from storage and retry); ErrCorrupt for anything that
// is not an intact envelope for aad: not an envelope at all, truncated,
// altered, or a different aad. Errors never contain envelope bytes.
func (k *Keyring) Decrypt(envelope, aad []byte) ([]byte, error) {
	if !IsEnvelope(envelope) {
		return nil, fmt.Errorf("%w: not a secrets envelope", ErrCorrupt)
	}
	id := KeyID(binary.BigEndian.Uint32(envelope[len(magic)+1 : headerBytes]))
	k.mu.RLock()
	aead, ok := k.keys[id]
	k.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: data key %d", ErrUnknownKey, id)
	}
	nonce := envelope[headerBytes : headerBytes+NonceBytes]
	pt, err := aead.Open(nil, nonce, envelope[headerBytes+NonceBytes:], additionalData(envelope[:headerBytes], aad))
	if err != nil {
		return nil, fmt.Errorf("%w: envelope under data key %d does not authenticate", ErrCorrupt, id)
	}
	return pt, nil
}

// IsEnvelope reports whether b has the shape of an envelope this package
// writes: the magic prefix, a known version and at least
// EnvelopeOverhead bytes. It does not authenticate b; only Decrypt does.
// No valid UTF-8 text is an envelope.
func IsEnvelope(b []byte) bool {
	return len(b) >= EnvelopeOverhead && string(b[:len(magic)]) == magic && b[len(magic)] == envelopeVersion
}

// additionalData is the GCM additional data of an envelope: its header,
// then the caller's aad. The header has a fixed length, so the split is
// unambiguous.
func additionalData(header, aad []byte) []byte {
	ad := make([]byte, 0, len(header)+len(aad))
	return append(append(ad, header...), aad...)
}

// dataKeyAAD binds a wrapped data key to its id.
func dataKeyAAD(id KeyID) []byte {
	return binary.BigEndian.AppendUint32([]byte(dataKeyAD), uint32(id))
}

// kekCipher checks kek and returns AES-256-GCM under it.
func kekCipher(kek []byte) (cipher.AEAD, error) {
	if err := checkKEK(kek); err != nil {
		return nil, err
	}
	return mustGCM(kek), nil
}

// checkKEK reports ErrBadKEK for a key of the wrong size or all zero bytes
// (an unfilled buffer or /dev/zero, never a real key).
func checkKEK(kek []byte) error {
	if len(kek) != KeyBytes {
		return fmt.Errorf("%w: must be %d bytes, got %d", ErrBadKEK, KeyBytes, len(kek))
	}
	if allZero(kek) {
		return fmt.Errorf("%w: all zero bytes", ErrBadKEK)
	}
	return nil
}

// allZero reports whether every byte of b is zero.
func allZero(b []byte) bool {
	var or byte
	for _, c := range b {
		or |= c
	}
	return or == 0
}

// mustGCM returns AES-GCM under a KeyBytes-long key. Both constructors fail
// only for other key sizes, which callers have ruled out.
func mustGCM(key []byte) cipher.AEAD {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(fmt.Sprintf("secrets: aes with a %d-byte key: %v", len(key), err))
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(fmt.Sprintf("secrets: gcm: %v", err))
	}
	return aead
}

// seal returns nonce || AEAD(plaintext) || tag with a nonce from rand.
func seal(aead cipher.AEAD, rand io.Reader, plaintext, ad []byte) ([]byte, error) {
	out := make([]byte, NonceBytes, NonceBytes+len(plaintext)+aead.Overhead())
	if _, err := io.ReadFull(rand, out); err != nil {
		return nil, err
	}
	return aead.Seal(out, out, plaintext, ad), nil
}

// open reverses seal.
func open(aead cipher.AEAD, sealed, ad []byte) ([]byte, error) {
	if len(sealed) < NonceBytes+aead.Overhead() {
		return nil, errors.New("sealed key too short")
	}
	return aead.Open(nil, sealed[:NonceBytes], sealed[NonceBytes:], ad)
}
