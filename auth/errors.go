package auth

import "errors"

var (
	// ErrInvalidName is returned by ValidateName, and through
	// User.Validate, for a user or role name that breaks the naming rules.
	ErrInvalidName = errors.New("auth: invalid name")

	// ErrInvalidUser is returned by User.Validate, joined with the specific
	// problems, for a user that must not be stored.
	ErrInvalidUser = errors.New("auth: invalid user")

	// ErrInvalidPassword is returned by HashPassword and HashPasswordWith
	// for a password outside MinPasswordBytes..MaxPasswordBytes. Nothing
	// was hashed.
	ErrInvalidPassword = errors.New("auth: invalid password")

	// ErrWrongPassword is returned by CheckPassword when the password does
	// not match the hash, including for the empty hash of an unknown user.
	ErrWrongPassword = errors.New("auth: wrong password")

	// ErrBadHash is returned by CheckPassword and User.Validate for a
	// stored password hash that this package cannot parse or whose
	// parameters are out of range. It points at corrupt storage, not at
	// the client.
	ErrBadHash = errors.New("auth: malformed password hash")

	// ErrInvalidToken is returned by Verify for a bearer token that is
	// malformed, unknown, or does not match its stored hash.
	ErrInvalidToken = errors.New("auth: invalid token")

	// ErrExpiredToken is returned by Verify for a genuine token whose
	// record expired at or before now.
	ErrExpiredToken = errors.New("auth: token expired")

	// ErrRevokedToken is returned by Verify for a genuine token whose
	// record is revoked.
	ErrRevokedToken = errors.New("auth: token revoked")

	// ErrInvalidConfig is returned by LimiterConfig.Validate and NewLimiter,
	// and by PasswordParams.Validate and HashPasswordWith, once per bad
	// setting (the problems are joined).
	ErrInvalidConfig = errors.New("auth: invalid config")
)
