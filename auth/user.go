package auth

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxNameBytes is the longest user or role name, in bytes.
const MaxNameBytes = 64

// ValidateName checks a user or role name: 1..MaxNameBytes bytes of valid
// UTF-8 with no whitespace, control or invisible formatting characters
// (such as zero-width spaces and bidi overrides), slashes or commas (the
// rules for node names, made strict about Unicode). It returns nil or an
// error matching ErrInvalidName that quotes the name.
func ValidateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: must not be empty", ErrInvalidName)
	case len(name) > MaxNameBytes:
		return fmt.Errorf("%w: %d bytes, at most %d allowed", ErrInvalidName, len(name), MaxNameBytes)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: %q is not valid UTF-8", ErrInvalidName, name)
	case strings.ContainsAny(name, "/,"):
		return fmt.Errorf("%w: %q must not contain slashes or commas", ErrInvalidName, name)
	case strings.ContainsFunc(name, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }):
		return fmt.Errorf("%w: %q must not contain spaces, control or formatting characters", ErrInvalidName, name)
	}
	return nil
}

// User is a user account as the server stores it.
type User struct {
	// Name is the subject the access policy knows the user by.
	Name string `json:"name"`
	// PasswordHash is HashPassword's output, or empty for a user who
	// cannot log in with a password (certificate or token only).
	PasswordHash string `json:"password_hash,omitempty"`
	// Roles are the roles the user is bound to, each named once.
	Roles []string `json:"roles,omitempty"`
}

// Validate reports every problem with u at once; each matches
// ErrInvalidUser and, for names, ErrInvalidName, or ErrBadHash for a
// password hash that is set but malformed. It never changes u.
func (u User) Validate() error {
	var errs []error
	if err := ValidateName(u.Name); err != nil {
		errs = append(errs, fmt.Errorf("%w: user name: %w", ErrInvalidUser, err))
	}
	if u.PasswordHash != "" {
		if _, err := parseHash(u.PasswordHash); err != nil {
			errs = append(errs, fmt.Errorf("%w: user %q: %w", ErrInvalidUser, u.Name, err))
		}
	}
	seen := make(map[string]bool, len(u.Roles))
	for _, r := range u.Roles {
		if err := ValidateName(r); err != nil {
			errs = append(errs, fmt.Errorf("%w: user %q: role name: %w", ErrInvalidUser, u.Name, err))
			continue
		}
		if seen[r] {
			errs = append(errs, fmt.Errorf("%w: user %q: role %q listed twice", ErrInvalidUser, u.Name, r))
		}
		seen[r] = true
	}
	return errors.Join(errs...)
}
