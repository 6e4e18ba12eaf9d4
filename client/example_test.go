package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/cavedb/cave/client"
)

// ExampleNew connects to a cluster through two of its nodes. The client
// learns the other nodes and the shard leaders from them.
func ExampleNew() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := client.DefaultConfig()
	cfg.Endpoints = []string{"10.0.0.1:8741", "10.0.0.2:8741"}
	cl, err := client.New(ctx, cfg)
	if err != nil {
		log.Fatal(err) // only a bad Config fails New
	}
	defer cl.Close()

	kv, err := cl.Get(ctx, "app/greeting")
	switch {
	case errors.Is(err, client.ErrNotFound):
		fmt.Println("no greeting yet")
	case err != nil:
		log.Fatal(err)
	default:
		fmt.Printf("%s (revision %d)\n", kv.Value, kv.ModRevision)
	}
}

// ExampleClient_Put increments a counter with compare-and-swap: the write
// applies only if nobody wrote the key since it was read.
func ExampleClient_Put() {
	ctx := context.Background()
	cfg := client.DefaultConfig()
	cfg.Endpoints = []string{"127.0.0.1:8741"}
	cl, err := client.New(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()

	for {
		n, rev := 0, int64(0) // revision 0: create only
		kv, err := cl.Get(ctx, "counters/visits")
		if err == nil {
			fmt.Sscan(string(kv.Value), &n)
			rev = kv.ModRevision
		} else if !errors.Is(err, client.ErrNotFound) {
			log.Fatal(err)
		}
		_, err = cl.Put(ctx, "counters/visits", []byte(fmt.Sprint(n+1)), client.PrevRevision(rev))
		switch {
		case err == nil:
			fmt.Println("visits:", n+1)
			return
		case errors.Is(err, client.ErrConditionFailed), errors.Is(err, client.ErrNotApplied):
			continue // another writer won, or nothing was applied: read again
		default:
			log.Fatal(err) // ErrOutcomeUnknown too: the increment may have applied
		}
	}
}

// ExampleClient_ListAll prints every key under a prefix.
func ExampleClient_ListAll() {
	ctx := context.Background()
	cfg := client.DefaultConfig()
	cfg.Endpoints = []string{"127.0.0.1:8741"}
	cl, err := client.New(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()

	items, err := cl.ListAll(ctx, "users/", client.Limit(500), client.Stale())
	if err != nil {
		log.Fatal(err)
	}
	for _, it := range items {
		fmt.Println(it.Key, it.Size)
	}
}

// ExampleClient_Watch keeps a cache of the keys under a prefix, resuming
// after a restart of the program from the last token it saw. The client
// resumes broken streams by itself; only a compacted token ends the loop.
func ExampleClient_Watch() {
	ctx := context.Background()
	cfg := client.DefaultConfig()
	cfg.Endpoints = []string{"127.0.0.1:8741"}
	cl, err := client.New(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()

	cache := map[string][]byte{}
	token := "" // kept across runs of the program; "" starts from now
	for resp := range cl.Watch(ctx, "app/", client.FromToken(token)) {
		if err := resp.Err(); err != nil {
			if errors.Is(err, client.ErrCompacted) {
				log.Fatal("the token is too old: read app/ again and watch from now")
			}
			log.Fatal(err)
		}
		for _, e := range resp.Events {
			if e.Type == client.EventDelete {
				delete(cache, e.Key)
			} else {
				cache[e.Key] = e.Value
			}
		}
		token = resp.ResumeToken
	}
}
