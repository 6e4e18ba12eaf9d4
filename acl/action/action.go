// Package action names what a request does to keys: read, write or
// admin. It holds no policy and imports nothing, so that a client (kvctl)
// can check an action without linking the Casbin enforcer of package acl.
package action

import (
	"errors"
	"fmt"
)

// Action is what a request does.
type Action string

// The actions. Admin covers read and write, and the cluster and auth
// administration calls.
const (
	Read  Action = "read"
	Write Action = "write"
	Admin Action = "admin"
)

// ErrInvalid is returned by Parse for a string that names no action.
var ErrInvalid = errors.New("action must be read, write or admin")

// Valid reports whether a is one of the three actions.
func (a Action) Valid() bool { return a == Read || a == Write || a == Admin }

// Parse returns the action spelled s, or an error matching ErrInvalid that
// quotes s.
func Parse(s string) (Action, error) {
	if a := Action(s); a.Valid() {
		return a, nil
	}
	return "", fmt.Errorf("%w, got %q", ErrInvalid, s)
}
