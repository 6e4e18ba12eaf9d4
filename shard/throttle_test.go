package shard

import (
	"bytes"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	sm "github.com/lni/dragonboat/v4/statemachine"
)

// TestThrottle checks on a fake clock that a throttled snapshot stream
// keeps to its rate, and that closing done stops it.
func TestThrottle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out bytes.Buffer
		w := throttle(&out, 1<<20, nil) // 1 MiB/s
		start := time.Now()
		chunk := make([]byte, 256<<10)
		for range 8 {
			if _, err := w.Write(chunk); err != nil {
				t.Fatal(err)
			}
		}
		if took := time.Since(start); took != 2*time.Second {
			t.Errorf("8 x 256 KiB at 1 MiB/s took %s, want 2s", took)
		}
		if out.Len() != 2<<20 {
			t.Errorf("wrote %d bytes, want %d", out.Len(), 2<<20)
		}

		done := make(chan struct{})
		w = throttle(&out, 1, done) // one byte a second
		close(done)
		if _, err := w.Write(chunk); !errors.Is(err, sm.ErrSnapshotStopped) {
			t.Errorf("write after done = %v, want ErrSnapshotStopped", err)
		}
		if unlimited := throttle(&out, 0, nil); unlimited != &out {
			t.Error("rate 0 should not wrap the writer")
		}
	})
}
