package gateway

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxKeyBytes is the longest key accepted, in bytes.
const MaxKeyBytes = 1024

// validateKey checks key against the data model (docs/architecture.md,
// "Data model"): a UTF-8 path
// of 1..MaxKeyBytes bytes with no empty segment, no "." or ".." segment and
// no control characters. The error message is meant for people.
func validateKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("key must not be empty")
	case len(key) > MaxKeyBytes:
		return fmt.Errorf("key is %d bytes, the limit is %d", len(key), MaxKeyBytes)
	case !utf8.ValidString(key):
		return fmt.Errorf("key must be valid UTF-8")
	}
	for _, r := range key {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("key must not contain control characters")
		}
	}
	for _, seg := range strings.Split(key, "/") {
		switch seg {
		case "":
			return fmt.Errorf("key %q has an empty path segment (leading, trailing or double slash)", key)
		case ".", "..":
			return fmt.Errorf("key %q has a %q segment", key, seg)
		}
	}
	return nil
}

// validatePrefix checks a List prefix: empty, or a string that could start
// a valid key (it may end with a slash).
func validatePrefix(prefix string) error {
	switch {
	case prefix == "":
		return nil
	case len(prefix) > MaxKeyBytes:
		return fmt.Errorf("prefix is %d bytes, the limit is %d", len(prefix), MaxKeyBytes)
	case !utf8.ValidString(prefix):
		return fmt.Errorf("prefix must be valid UTF-8")
	}
	return nil
}
