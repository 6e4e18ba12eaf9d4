package ring

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestGolden runs the scripts in testdata/: "table shards=N" builds a table,
// "route key=K" prints the slot and owner, "ranges" prints each shard's slot
// ranges.
func TestGolden(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		var tbl *Table
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			switch d.Cmd {
			case "table":
				var n int
				d.ScanArgs(t, "shards", &n)
				var err error
				if tbl, err = NewTable(n); err != nil {
					return err.Error()
				}
				return fmt.Sprintf("shards=%v", tbl.Shards())
			case "route":
				var out strings.Builder
				for _, line := range strings.Split(strings.TrimSpace(d.Input), "\n") {
					s, id := tbl.Route(line)
					fmt.Fprintf(&out, "%s slot=%d shard=%d\n", line, s, id)
				}
				return out.String()
			case "ranges":
				var out strings.Builder
				for _, r := range tbl.Ranges() {
					fmt.Fprintf(&out, "shard=%d slots=[%d,%d] count=%d\n", r.Shard, r.Start, r.End-1, r.End-r.Start)
				}
				return out.String()
			default:
				t.Fatalf("unknown command %q", d.Cmd)
				return ""
			}
		})
	})
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 2, 3, 7, 64, MaxShards} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			t.Parallel()
			a, err := NewTable(n)
			if err != nil {
				t.Fatal(err)
			}
			b, err := Decode(a.Encode())
			if err != nil {
				t.Fatal(err)
			}
			if a.owner != b.owner || fmt.Sprint(a.Shards()) != fmt.Sprint(b.Shards()) {
				t.Fatalf("round trip changed the table for n=%d", n)
			}
			if len(a.Shards()) != n {
				t.Fatalf("got %d shards, want %d", len(a.Shards()), n)
			}
		})
	}
}

// TestRangesRoundTrip checks that FromRanges inverts Ranges, in any order
// of the ranges, and that Ranges are maximal runs covering the ring.
func TestRangesRoundTrip(t *testing.T) {
	t.Parallel()
	mixed := &Table{}
	for s := range mixed.owner {
		mixed.owner[s] = ShardID(1 + (s/7)%5) // runs of 7 slots, shards repeating
	}
	mixed.index()
	tables := map[string]*Table{"mixed": mixed}
	for _, n := range []int{1, 3, 7, MaxShards} {
		tables[strconv.Itoa(n)], _ = NewTable(n)
	}
	for name, a := range tables {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rs := a.Ranges()
			next := Slot(0)
			for i, r := range rs {
				if r.Start != next || r.End <= r.Start || (i > 0 && rs[i-1].Shard == r.Shard) {
					t.Fatalf("range %d = %+v after %d: not a maximal run", i, r, next)
				}
				next = r.End
			}
			if next != Slots {
				t.Fatalf("ranges end at %d, want %d", next, Slots)
			}
			slices.Reverse(rs)
			b, err := FromRanges(rs)
			if err != nil {
				t.Fatal(err)
			}
			if a.owner != b.owner || fmt.Sprint(a.Shards()) != fmt.Sprint(b.Shards()) {
				t.Fatalf("round trip changed the table")
			}
		})
	}
}

func TestFromRangesBadInput(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		rs   []Range
	}{
		{"none", nil},
		{"gap", []Range{{0, 100, 1}, {101, Slots, 2}}},
		{"overlap", []Range{{0, 101, 1}, {100, Slots, 2}}},
		{"empty", []Range{{0, 0, 1}, {0, Slots, 1}}},
		{"past the ring", []Range{{0, Slots + 1, 1}}},
		{"meta shard", []Range{{0, Slots, MetaShard}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := FromRanges(tc.rs); !errors.Is(err, ErrBadTable) {
				t.Fatalf("FromRanges(%v) = %v, want ErrBadTable", tc.rs, err)
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	for _, n := range []int{-1, 0, MaxShards + 1} {
		if _, err := NewTable(n); err == nil {
			t.Errorf("NewTable(%d): want error", n)
		}
	}
	if _, err := Decode([]byte{1, 2, 3}); err == nil {
		t.Error("Decode(short): want error")
	}
	if _, err := Decode(make([]byte, 4*Slots)); err == nil {
		t.Error("Decode(all meta): want error")
	}
}

// TestSlotsBalanced checks the property that every shard of an n-shard table
// owns Slots/n slots, give or take one, for every n.
func TestSlotsBalanced(t *testing.T) {
	t.Parallel()
	for n := 1; n <= 300; n++ {
		tbl, _ := NewTable(n)
		count := map[ShardID]int{}
		for s := 0; s < Slots; s++ {
			count[tbl.Owner(Slot(s))]++
		}
		for id, c := range count {
			if c < Slots/n || c > Slots/n+1 {
				t.Fatalf("n=%d: shard %d owns %d slots", n, id, c)
			}
		}
	}
}
