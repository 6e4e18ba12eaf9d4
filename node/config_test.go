package node

import "testing"

func TestDefaultEngineShards(t *testing.T) {
	for procs, want := range map[int]uint64{0: 1, 1: 1, 2: 1, 3: 1, 4: 2, 16: 8, 32: 16, 128: 16} {
		if got := defaultEngineShards(procs); got != want {
			t.Errorf("defaultEngineShards(%d) = %d, want %d", procs, got, want)
		}
	}
}
