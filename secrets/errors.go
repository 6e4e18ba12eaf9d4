package secrets

import "errors"

var (
	// ErrWrongKEK is returned by OpenKeyring when the key-encryption key
	// does not open the stored cluster key: the operator passed another
	// --kek-file than the one the cluster was bootstrapped with (or the
	// wrapped cluster key was altered, which cannot be told apart).
	ErrWrongKEK = errors.New("secrets: wrong key-encryption key")

	// ErrBadKEK is returned by NewKeyring, OpenKeyring and LoadKEKFile for a
	// key-encryption key that is not usable at all: not 32 bytes, all zero,
	// a file in none of the accepted encodings, or a file that group or
	// others may access. The message never contains key material.
	ErrBadKEK = errors.New("secrets: bad key-encryption key")

	// ErrCorrupt is returned by Decrypt for an envelope that is malformed,
	// was altered, or is presented with another aad than it was sealed
	// with (the three cannot be told apart), and by OpenKeyring and
	// UnmarshalWrapped for a wrapped keyring that is malformed or whose data
	// keys do not open under its cluster key.
	ErrCorrupt = errors.New("secrets: corrupt data")

	// ErrUnknownKey is returned by Decrypt for a well-formed envelope sealed
	// under a data key id this Keyring does not hold. It usually means the
	// keyring was rotated elsewhere after this one was opened: reopen it
	// from the stored WrappedKeyring and retry.
	ErrUnknownKey = errors.New("secrets: unknown data key")

	// ErrBadKeyring is returned by Manager methods when the stored keyring
	// is malformed or its data keys do not open under its cluster key; the
	// error also matches ErrCorrupt. Only an operator can repair it.
	ErrBadKeyring = errors.New("secrets: stored keyring is corrupt")

	// ErrConflict is returned by Manager.Rotate when the stored keyring
	// kept changing under it (other rotations at the same time) for all
	// of its attempts. This call rotated nothing; retry.
	ErrConflict = errors.New("secrets: keyring changed concurrently")
)
