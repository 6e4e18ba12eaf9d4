package router

import (
	"encoding/base64"
	"errors"
	"fmt"
	"testing"
)

func items(keys ...string) []ListItem {
	out := make([]ListItem, len(keys))
	for i, k := range keys {
		out[i] = ListItem{Key: k}
	}
	return out
}

func TestMergePages(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		pages     [][]ListItem
		limit     int
		want      string
		truncated bool
	}{
		{"empty", nil, 10, "[]", false},
		{"interleaved", [][]ListItem{items("a", "d"), items("b", "c"), items("e")}, 10, "[a b c d e]", false},
		{"cut at limit", [][]ListItem{items("a", "d"), items("b", "c")}, 3, "[a b c]", true},
		{"exact limit", [][]ListItem{items("a"), items("b")}, 2, "[a b]", false},
		{"one empty shard", [][]ListItem{nil, items("x", "y")}, 1, "[x]", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, trunc := mergePages(tc.pages, tc.limit)
			keys := make([]string, len(got))
			for i, it := range got {
				keys[i] = it.Key
			}
			if s := fmt.Sprint(keys); s != tc.want || trunc != tc.truncated {
				t.Fatalf("mergePages = %s truncated=%v, want %s truncated=%v", s, trunc, tc.want, tc.truncated)
			}
		})
	}
}

func TestPageToken(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ prefix, key string }{{"", "a"}, {"users/", "users/42/name"}, {"ключ", "ключ/值"}} {
		got, err := decodeToken(tc.prefix, encodeToken(tc.prefix, tc.key))
		if err != nil || got != tc.key {
			t.Fatalf("round trip of %q under %q: got %q, %v", tc.key, tc.prefix, got, err)
		}
	}
	if got, err := decodeToken("p/", ""); err != nil || got != "" {
		t.Fatalf("empty token: %q, %v", got, err)
	}
	good := encodeToken("users/", "users/42")
	flipped := []byte(good)
	flipped[3] ^= 1
	bad := []struct{ name, prefix, tok string }{
		{"not base64", "", "!!!"},
		{"space", "", "a b"},
		// Valid base64 of a key after any prefix: the old form of a token,
		// which once read as the end of the list (200, empty page).
		{"bare key", "", base64.RawURLEncoding.EncodeToString([]byte("zzzz"))},
		{"bare key with prefix", "users/", base64.RawURLEncoding.EncodeToString([]byte("users/zz"))},
		{"another prefix's token", "items/", good},
		{"altered", "users/", string(flipped)},
		{"truncated", "users/", good[:len(good)-2]},
		{"version only", "", base64.RawURLEncoding.EncodeToString([]byte{tokenVersion})},
	}
	for _, tc := range bad {
		if _, err := decodeToken(tc.prefix, tc.tok); !errors.Is(err, ErrBadPageToken) {
			t.Errorf("%s: decodeToken(%q, %q) = %v, want ErrBadPageToken", tc.name, tc.prefix, tc.tok, err)
		}
	}
}
