package node

import (
	"errors"
	"testing"
)

func TestCheckMetaKey(t *testing.T) {
	n := &Node{cfg: Config{MetaNamespaces: []string{"auth/", "secrets/"}}}
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
		err := n.checkMetaKey(key)
		if ok != (err == nil) {
			t.Errorf("checkMetaKey(%q) = %v, want ok=%v", key, err, ok)
		}
		if err != nil && !errors.Is(err, ErrBadMetaKey) {
			t.Errorf("checkMetaKey(%q) = %v, want ErrBadMetaKey", key, err)
		}
	}
}

func TestCheckNamespace(t *testing.T) {
	for ns, ok := range map[string]bool{
		"auth/":         true,
		"secrets/":      true,
		"auth":          false,
		"/":             false,
		"":              false,
		"cluster/":      false,
		"cluster/x/":    false,
		"replicas/":     false,
		"replicas/abc/": false,
	} {
		if err := checkNamespace(ns); ok != (err == nil) {
			t.Errorf("checkNamespace(%q) = %v, want ok=%v", ns, err, ok)
		}
	}
}
