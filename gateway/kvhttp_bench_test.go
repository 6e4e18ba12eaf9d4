package gateway_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/cavedb/cave/gateway"
	"github.com/cavedb/cave/internal/nodetest"
)

// benchValue is the value the REST benchmarks write and read: a small
// record, the common case the REST path is tuned for.
var benchValue = bytes.Repeat([]byte("v"), 128)

// benchNode starts a one-node cluster and returns the handler of its HTTP
// port, called in process (no TCP, no HTTP client) so that the numbers
// are the server's.
func benchNode(b *testing.B) http.Handler {
	b.Helper()
	c := nodetest.NewCluster(b, 1, nodetest.WithShards(2))
	return gateway.HTTPHandler(c.Gateway(0))
}

// serve sends one request to h and reports whether it answered want; if
// not, it fails the benchmark. It may run on RunParallel's goroutines.
func serve(b *testing.B, h http.Handler, method, target string, body []byte, want int) bool {
	req := httptest.NewRequest(method, target, bytes.NewReader(body))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != want {
		b.Errorf("%s %s: status %d, want %d: %s", method, target, rec.Code, want, rec.Body.Bytes())
		return false
	}
	return true
}

// BenchmarkRESTPut measures PUT /api/v1/kv/{key} with a 128-byte body,
// 32 requests in flight (so that Raft batches them), each on its own key.
func BenchmarkRESTPut(b *testing.B) {
	h := benchNode(b)
	var n atomic.Int64
	b.SetBytes(int64(len(benchValue)))
	b.SetParallelism(16)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !serve(b, h, http.MethodPut, fmt.Sprintf("/api/v1/kv/bench/put/%d", n.Add(1)%1024), benchValue, http.StatusOK) {
				return
			}
		}
	})
}

// BenchmarkRESTGet measures GET /api/v1/kv/{key} of a 128-byte value,
// linearizable (a ReadIndex on the shard leader) and stale (local), 32
// requests in flight.
func BenchmarkRESTGet(b *testing.B) {
	h := benchNode(b)
	const keys = 64
	for i := range keys {
		if !serve(b, h, http.MethodPut, fmt.Sprintf("/api/v1/kv/bench/get/%d", i), benchValue, http.StatusOK) {
			b.FailNow()
		}
	}
	for _, query := range []string{"", "?consistency=stale"} {
		name := "linearizable"
		if query != "" {
			name = "stale"
		}
		b.Run(name, func(b *testing.B) {
			var n atomic.Int64
			b.SetBytes(int64(len(benchValue)))
			b.SetParallelism(16)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if !serve(b, h, http.MethodGet, fmt.Sprintf("/api/v1/kv/bench/get/%d%s", n.Add(1)%keys, query), nil, http.StatusOK) {
						return
					}
				}
			})
		})
	}
}
