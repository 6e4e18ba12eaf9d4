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
	// malformed, unknown, or does not match its stored hash, and by
	// Manager.RevokeToken for a malformed token id.
	ErrInvalidToken = errors.New("auth: invalid token")

	// ErrExpiredToken is returned by Verify for a genuine token whose
	// record expired at or before now.
	ErrExpiredToken = errors.New("auth: token expired")

	// ErrRevokedToken is returned by Verify for a genuine token whose
	// record is revoked.
	ErrRevokedToken = errors.New("auth: token revoked")

	// ErrInvalidConfig is returned by LimiterConfig.Validate and NewLimiter,
	// by PasswordParams.Validate and HashPasswordWith, and by
	// ManagerConfig.Validate and NewManager, once per bad setting (the
	// problems are joined).
	ErrInvalidConfig = errors.New("auth: invalid config")

	// ErrInvalidGrant is returned by Manager.Grant and Manager.Revoke for
	// an action other than read, write and admin, or a prefix with '*'.
	// Nothing was changed.
	ErrInvalidGrant = errors.New("auth: invalid grant")

	// ErrInvalidTTL is returned by TokenTTL for a lifetime out of range.
	ErrInvalidTTL = errors.New("auth: invalid token lifetime")

	// ErrNotFound is returned by the Manager's changes when the user,
	// role, grant, binding or token they name does not exist. Nothing was
	// changed.
	ErrNotFound = errors.New("auth: not found")

	// ErrExists is returned by Manager.AddUser and Manager.AddRole for a
	// name that is taken. Nothing was changed.
	ErrExists = errors.New("auth: already exists")

	// ErrBuiltIn is returned by Manager.RemoveRole and Manager.Revoke for a
	// change that would remove AdminRole or its admin on every key.
	// Nothing was changed.
	ErrBuiltIn = errors.New("auth: built-in")

	// ErrPolicyMissing is returned by the Manager's changes before the
	// policy has been created (Bootstrap). Nothing was changed; retry once
	// the cluster has started.
	ErrPolicyMissing = errors.New("auth: the access policy is not created yet")

	// ErrPolicyConflict is returned by the Manager's changes when
	// concurrent changes kept winning the compare-and-swap of the policy.
	// Nothing was changed; retry.
	ErrPolicyConflict = errors.New("auth: the access policy kept changing concurrently")

	// ErrInvalidPolicy is returned by the Manager when the stored policy
	// does not decode or validate (corrupt storage), and when a change
	// would make it invalid, which is a bug: it never blames the caller's
	// input, which is checked first. Nothing was changed.
	ErrInvalidPolicy = errors.New("auth: invalid access policy")
)
