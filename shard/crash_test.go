package shard

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cavedb/cave/ring"
)

var crashSeed = flag.Uint64("crash-seed", 0, "seed for TestCrashRecovery; 0 picks one from the clock")

// model is the naive reference for what a shard holds: a map replayed from
// the same commands.
type model map[string]KeyValue

// apply applies the ops of the entry at index to the model and returns their
// results.
func (md model) apply(index int64, ops []Op) []OpResult {
	rs := make([]OpResult, len(ops))
	for i, op := range ops {
		cur, found := md[string(op.Key)]
		if op.HasPrevRevision && cur.ModRevision != op.PrevRevision {
			rs[i] = OpResult{Code: ResultConditionFailed, Revision: cur.ModRevision}
			continue
		}
		switch {
		case op.Kind == OpPut && found:
			md[string(op.Key)] = KeyValue{Key: op.Key, Value: op.Value, CreateRevision: cur.CreateRevision, ModRevision: index, Version: cur.Version + 1, Size: int64(len(op.Value))}
			rs[i] = ok(index)
		case op.Kind == OpPut:
			md[string(op.Key)] = KeyValue{Key: op.Key, Value: op.Value, CreateRevision: index, ModRevision: index, Version: 1, Size: int64(len(op.Value))}
			rs[i] = ok(index)
		case found:
			delete(md, string(op.Key))
			rs[i] = ok(index)
		default:
			rs[i] = OpResult{Code: ResultNotFound}
		}
	}
	return rs
}

// stats returns the Stats the model implies at index.
func (md model) stats(index uint64) Stats {
	st := Stats{AppliedIndex: index}
	for k, kv := range md {
		st.Keys++
		st.Bytes += int64(len(k)) + kv.Size
	}
	return st
}

// items returns the model's keys in order.
func (md model) items() []KeyValue {
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]KeyValue, len(keys))
	for i, k := range keys {
		kv := md[k]
		kv.Key = []byte(k)
		if kv.Value == nil {
			kv.Value = []byte{}
		}
		out[i] = kv
	}
	return out
}

// randomOps returns the command of entry index; the same seed and index give
// the same ops.
func randomOps(seed uint64, index uint64) []Op {
	rng := rand.New(rand.NewPCG(seed, index))
	ops := make([]Op, 1+rng.IntN(4))
	for i := range ops {
		key := []byte(fmt.Sprintf("k/%02d", rng.IntN(24)))
		switch r := rng.IntN(10); {
		case r < 6:
			// Values of up to 1 KiB fill WAL blocks, so a crash can keep
			// some unsynced blocks and lose others.
			ops[i] = Op{Kind: OpPut, Key: key, Value: fmt.Appendf(nil, "v%d-%d-%s", index, i, strings.Repeat("x", rng.IntN(1024)))}
		case r < 8:
			ops[i] = Op{Kind: OpDelete, Key: key}
		default:
			// Conditional on a recent revision: sometimes right, mostly not.
			ops[i] = Op{Kind: OpKind(1 + rng.IntN(2)), Key: key, Value: []byte("c"), HasPrevRevision: true, PrevRevision: int64(rng.Uint64N(index + 1))}
		}
	}
	return ops
}

// TestCrashRecovery applies random commands with NoSync and occasional
// Syncs, crashes Pebble's file system at a random point (losing a random part
// of the unsynced data), and checks that the shard comes back at some index
// no lower than the last Sync, with exactly the state the reference model
// has at that index; then replays the rest, as dragonboat would. It also
// checks every result against the model.
func TestCrashRecovery(t *testing.T) {
	t.Parallel()
	seed := *crashSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -crash-seed)", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	const entries = 300
	const shard ring.ShardID = 3

	// The model's state after each index.
	md := model{}
	results := make([][]OpResult, entries+1)
	for i := uint64(1); i <= entries; i++ {
		results[i] = md.apply(int64(i), randomOps(seed, i))
	}

	for round := 0; round < 8; round++ {
		fs := vfs.NewCrashableMem()
		cfg := testConfig(t)
		cfg.Expert.FS = fs
		s, err := Open("db", cfg)
		require.NoError(t, err)
		m, _ := openSM(t, s, shard)
		other, _ := openSM(t, s, shard+1) // a neighbour sharing the WAL
		crashAt := 1 + rng.Uint64N(entries)
		var synced uint64
		for i := uint64(1); i <= crashAt; {
			n := min(1+rng.Uint64N(5), crashAt-i+1)
			cmds := make([][]Op, n)
			for j := range cmds {
				cmds[j] = randomOps(seed, i+uint64(j))
			}
			got := update(t, m, i, cmds...)
			for j := range got {
				require.Equal(t, results[i+uint64(j)], got[j], "seed %d: results of entry %d", seed, i+uint64(j))
			}
			update(t, other, i, []Op{put("n", fmt.Sprint(i))})
			i += n
			if rng.IntN(10) == 0 {
				require.NoError(t, m.Sync())
				synced = i - 1
			}
		}
		// The clone gets its own generator: how much of it the clone
		// consumes depends on Pebble's background flushes.
		cloneRNG := rand.New(rand.NewPCG(seed, uint64(round)+1))
		crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: rng.IntN(101), RNG: cloneRNG})
		require.NoError(t, m.Close())
		require.NoError(t, other.Close())
		require.NoError(t, s.Close())

		cfg.Expert.FS = crashed
		s2 := openStore(t, "db", cfg)
		m2, idx := openSM(t, s2, shard)
		require.GreaterOrEqual(t, idx, synced, "seed %d round %d: synced entries lost", seed, round)
		require.LessOrEqual(t, idx, crashAt)
		t.Logf("round %d: crashed at %d, synced %d, recovered %d", round, crashAt, synced, idx)

		ref := model{}
		for i := uint64(1); i <= idx; i++ {
			ref.apply(int64(i), randomOps(seed, i))
		}
		assert.Equal(t, ref.items(), allKVs(t, m2), "seed %d round %d: state at index %d", seed, round, idx)
		assert.Equal(t, ref.stats(idx), stats(t, m2), "seed %d round %d", seed, round)

		// Dragonboat replays the entries after the reported index.
		for i := idx + 1; i <= entries; i++ {
			require.Equal(t, results[i], apply(t, m2, i, randomOps(seed, i)...), "seed %d: replayed entry %d", seed, i)
		}
		assert.Equal(t, md.items(), allKVs(t, m2), "seed %d round %d: final state", seed, round)
		assert.Equal(t, md.stats(entries), stats(t, m2), "seed %d round %d", seed, round)
	}
}
