package router

import (
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
	for _, k := range []string{"a", "users/42/name", "ключ/值"} {
		got, err := decodeToken(encodeToken(k))
		if err != nil || got != k {
			t.Fatalf("round trip of %q: got %q, %v", k, got, err)
		}
	}
	if got, err := decodeToken(""); err != nil || got != "" {
		t.Fatalf("empty token: %q, %v", got, err)
	}
	for _, bad := range []string{"!!!", "a b"} {
		if _, err := decodeToken(bad); !errors.Is(err, ErrBadPageToken) {
			t.Fatalf("decodeToken(%q) = %v, want ErrBadPageToken", bad, err)
		}
	}
}
