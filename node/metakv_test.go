package node

import (
	"errors"
	"testing"
)

func TestCheckMetaKey(t *testing.T) {
	for key, ok := range map[string]bool{
		"auth/users/alice":   true,
		"secrets/keyring":    true,
		"auth/":              false,
		"cluster/id":         false,
		"replicas/1/2":       false,
		"":                   false,
		"authx/users":        false,
		"secretskeyring":     false,
		"secrets/a/b/c/d/ef": true,
	} {
		err := checkMetaKey(key)
		if ok != (err == nil) {
			t.Errorf("checkMetaKey(%q) = %v, want ok=%v", key, err, ok)
		}
		if err != nil && !errors.Is(err, ErrBadMetaKey) {
			t.Errorf("checkMetaKey(%q) = %v, want ErrBadMetaKey", key, err)
		}
	}
}
