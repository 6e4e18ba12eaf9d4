package ring

import (
	"fmt"
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
				start := 0
				for s := 1; s <= Slots; s++ {
					if s == Slots || tbl.Owner(Slot(s)) != tbl.Owner(Slot(start)) {
						fmt.Fprintf(&out, "shard=%d slots=[%d,%d] count=%d\n", tbl.Owner(Slot(start)), start, s-1, s-start)
						start = s
					}
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
