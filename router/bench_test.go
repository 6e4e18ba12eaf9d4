package router_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/cavedb/cave/internal/nodetest"
)

// BenchmarkRouter measures the router on a three-node cluster: puts and
// linearizable gets of 128-byte values through node 0, so that about two
// thirds of them take the forwarding hop to another node's leader, with 32
// requests in flight. It is the cost of routing plus Raft, not of an API.
func BenchmarkRouter(b *testing.B) {
	c := nodetest.NewCluster(b, 3, nodetest.WithShards(6))
	rt := c.Router(0)
	value := make([]byte, 128)
	var n atomic.Int64
	key := func() string { return fmt.Sprintf("bench/%d", n.Add(1)%4096) }
	for i := range 4096 {
		if _, err := rt.Put(b.Context(), fmt.Sprintf("bench/%d", i), value, nil); err != nil {
			b.Fatal(err)
		}
	}
	for _, bc := range []struct {
		name string
		op   func() error
	}{
		{"put", func() error { _, err := rt.Put(b.Context(), key(), value, nil); return err }},
		{"get", func() error { _, err := rt.Get(b.Context(), key(), false); return err }},
		{"stale-get", func() error { _, err := rt.Get(b.Context(), key(), true); return err }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetParallelism(16)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := bc.op(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
