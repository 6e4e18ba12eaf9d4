// Command benchcmp drives the same bounded gRPC load at a cave node and at
// an etcd member: puts of 128-byte values, then gets of the keys written,
// from concurrent clients, and prints throughput and latency percentiles.
// It is a measuring tool, not a test; scripts/bench-etcd.sh runs it. It is
// a separate module so that the etcd client stays out of cave's
// dependencies.
//
//	benchcmp -target cave -addr 127.0.0.1:8741 -c 16 -d 8s
//	benchcmp -target etcd -addr 127.0.0.1:2379 -c 16 -d 8s
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	kvv1 "github.com/cavedb/cave/proto/cave/kv/v1"
)

// store is one key-value operation pair of a system under test.
type store struct {
	put func(ctx context.Context, key string, value []byte) error
	get func(ctx context.Context, key string) error
}

func main() {
	target := flag.String("target", "cave", "cave or etcd")
	addr := flag.String("addr", "127.0.0.1:8741", "gRPC address of the node")
	conc := flag.Int("c", 16, "concurrent clients")
	dur := flag.Duration("d", 8*time.Second, "duration of each phase (put, then get)")
	keys := flag.Int("keys", 1000, "distinct keys")
	flag.Parse()
	if *conc < 1 || *keys < 1 || *dur <= 0 {
		fmt.Fprintln(os.Stderr, "benchcmp: -c, -keys and -d must be positive")
		os.Exit(2)
	}
	s, err := dial(*target, *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchcmp:", err)
		os.Exit(1)
	}
	value := make([]byte, 128)
	run(*target, "put", *conc, *keys, *dur, func(ctx context.Context, k string) error { return s.put(ctx, k, value) })
	run(*target, "get", *conc, *keys, *dur, s.get)
}

// dial connects to target at addr.
func dial(target, addr string) (store, error) {
	switch target {
	case "etcd":
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{addr}, DialTimeout: 5 * time.Second})
		if err != nil {
			return store{}, err
		}
		return store{
			put: func(ctx context.Context, k string, v []byte) error { _, err := cli.Put(ctx, k, string(v)); return err },
			get: func(ctx context.Context, k string) error { _, err := cli.Get(ctx, k); return err },
		}, nil
	case "cave":
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return store{}, err
		}
		kv := kvv1.NewKVClient(conn)
		return store{
			put: func(ctx context.Context, k string, v []byte) error {
				_, err := kv.Put(ctx, &kvv1.PutRequest{Key: k, Value: v})
				return err
			},
			get: func(ctx context.Context, k string) error { _, err := kv.Get(ctx, &kvv1.GetRequest{Key: k}); return err },
		}, nil
	}
	return store{}, fmt.Errorf("-target must be cave or etcd, got %q", target)
}

// run calls op from conc clients on keys bench/00000.. for dur and prints
// one line of results.
func run(target, name string, conc, keys int, dur time.Duration, op func(ctx context.Context, key string) error) {
	deadline := time.Now().Add(dur)
	var errs atomic.Int64
	lats := make([][]time.Duration, conc)
	var wg sync.WaitGroup
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				key := fmt.Sprintf("bench/%05d", (w*7919+i)%keys)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				t0 := time.Now()
				err := op(ctx, key)
				cancel()
				if err != nil {
					errs.Add(1)
					continue
				}
				lats[w] = append(lats[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	all := slices.Concat(lats...)
	slices.Sort(all)
	pct := func(q float64) time.Duration {
		if len(all) == 0 {
			return 0
		}
		return all[int(q*float64(len(all)-1))].Round(time.Microsecond)
	}
	fmt.Printf("%-4s %s clients=%d ok=%d errors=%d throughput=%.0f ops/s p50=%v p99=%v\n",
		target, name, conc, len(all), errs.Load(), float64(len(all))/dur.Seconds(), pct(0.5), pct(0.99))
}
