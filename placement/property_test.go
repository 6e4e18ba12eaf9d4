package placement

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/cavedb/cave/ring"
)

var (
	propSeed = flag.Uint64("placement.seed", 0, "run only the random cluster with this seed")
	propRuns = flag.Int("placement.runs", 2000, "random clusters to run (seeds 1..N)")
)

// TestConverges plans and applies on random clusters until nothing is left
// to do, checking Plan's promises at every step and the balance at the end.
// An action that undoes one of the previous plan is counted, and fails the
// run when it happens a fourth time to one shard: from these messy starts,
// repairs that share a node with a move can shift its load between the
// move's start and its end (see the package documentation).
// Seeds are 1..-placement.runs; -placement.seed reruns one.
func TestConverges(t *testing.T) {
	seeds := []uint64{*propSeed}
	if *propSeed == 0 {
		seeds = seeds[:0]
		for s := range *propRuns {
			seeds = append(seeds, uint64(s+1))
		}
	}
	var most, sum, balanced, evacuated, undos, undoRuns int
	var mostSeed uint64
	undoKinds := map[ActionKind]int{}
	for _, seed := range seeds {
		r := runRandom(t, seed)
		if t.Failed() {
			t.Fatalf("seed %d failed: rerun with -placement.seed=%d", seed, seed)
		}
		sum += r.rounds
		if r.rounds > most {
			most, mostSeed = r.rounds, seed
		}
		undos += r.undos
		for k, n := range r.undoKinds {
			undoKinds[k] += n
		}
		if r.undos > 0 {
			undoRuns++
		}
		if r.balanced {
			balanced++
		}
		if r.evacuated {
			evacuated++
		}
	}
	t.Logf("%d clusters: rounds to converge mean %.1f, most %d (seed %d); %d checked for even replicas and leaders, %d for empty leaving nodes; %d actions undid the previous plan (by kind %v), in %d runs",
		len(seeds), float64(sum)/float64(len(seeds)), most, mostSeed, balanced, evacuated, undos, undoKinds, undoRuns)
}

type runResult struct {
	rounds, undos       int
	undoKinds           map[ActionKind]int
	balanced, evacuated bool
}

func runRandom(t *testing.T, seed uint64) runResult {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b9))
	s := newSim(randomCluster(rng))
	for i := range s.c.Shards {
		s.elect(&s.c.Shards[i]) // as Raft would before anyone plans
	}
	cfg := Config{}
	if rng.IntN(2) == 0 {
		cfg = Config{MaxActions: 1 + rng.IntN(4), MaxMovesPerNode: 1 + rng.IntN(3), MinByteGapBytes: 1 << 20}
	}
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf("seed %d, %+v: %s\n%s", seed, cfg, fmt.Sprintf(format, args...), s.show())
	}
	var prev []Action
	undone := map[ring.ShardID]int{}
	res := runResult{undoKinds: map[ActionKind]int{}}
	for round := 1; ; round++ {
		acts := Plan(s.c, cfg)
		if err := s.checkPlan(acts); err != nil {
			fail("round %d: %v", round, err)
			return res
		}
		if cfg.MaxActions > 0 && len(acts) > cfg.MaxActions {
			fail("round %d: %d actions, MaxActions %d", round, len(acts), cfg.MaxActions)
		}
		if again := Plan(shuffled(s.c, rng), cfg); !reflect.DeepEqual(again, acts) {
			fail("round %d: shuffled input plans\n%s\nwant\n%s", round, formatPlan(again), formatPlan(acts))
			return res
		}
		if *propSeed != 0 {
			t.Logf("round %d:\n%s%s", round, s.formatBalance(), formatPlan(acts))
		}
		if len(acts) == 0 && !s.catching() {
			res.rounds = round - 1
			break
		}
		if round > rounds(s.c) {
			fail("no convergence after %d rounds; last plan:\n%s", round-1, formatPlan(acts))
			return res
		}
		for _, a := range undoes(prev, acts) {
			res.undos++
			res.undoKinds[a.Kind]++
			if undone[a.Shard]++; undone[a.Shard] > 3 {
				fail("round %d: %s undoes the previous plan again:\n%s", round, a, formatPlan(prev))
			}
		}
		prev = acts
		before := s.clone()
		if _, err := s.apply(acts); err != nil {
			fail("round %d: %v", round, err)
			return res
		}
		if err := checkStep(before, s); err != nil {
			fail("round %d: %v\nplan:\n%s", round, err, formatPlan(acts))
			return res
		}
	}
	if _, err := s.apply(nil); err != nil {
		t.Fatal(err)
	}
	if acts := Plan(s.c, cfg); len(acts) > 0 {
		fail("converged cluster plans again:\n%s", formatPlan(acts))
	}
	res.balanced, res.evacuated = checkFinal(t, s, func(format string, args ...any) { fail(format, args...) })
	return res
}

// checkFinal checks a converged cluster where every shard is healthy (a
// leader, a quorum without a removed node, not busy): nothing left on
// leaving nodes when there are enough alive nodes for every shard (but in
// shards with a voter on a down node); replica counts of alive nodes within
// one; no leader whose node leads two more shards than another alive voter
// node of its shard. It reports which checks applied.
func checkFinal(t *testing.T, s *sim, fail func(string, ...any)) (balanced, evacuated bool) {
	t.Helper()
	var alive []string
	for _, n := range s.c.Nodes {
		if n.State == NodeAlive {
			alive = append(alive, n.Name)
		}
	}
	need := 0
	for _, sh := range s.c.Shards {
		if sh.Busy || !s.stats(sh).solid {
			return false, false
		}
		need = max(need, sh.Voters)
	}
	b := s.balance()
	if len(alive) >= need {
		evacuated = true
		for _, sh := range s.c.Shards {
			if slices.ContainsFunc(sh.Replicas, func(r Replica) bool { return r.Role == RoleVoter && s.state(r.Node) == NodeDown }) {
				continue // its leaving voter may wait for the down node (package doc, Limits)
			}
			for _, r := range sh.Replicas {
				if st := s.state(r.Node); st != NodeAlive && st != NodeDown {
					fail("shard %d keeps replica %d on %s node %s", sh.ID, r.ID, st, r.Node)
				}
			}
		}
	}
	if len(alive) == 0 {
		return false, evacuated
	}
	lo, hi := b[alive[0]].replicas, b[alive[0]].replicas
	for _, n := range alive {
		lo, hi = min(lo, b[n].replicas), max(hi, b[n].replicas)
	}
	if hi-lo > 1 {
		fail("replicas on alive nodes range from %d to %d", lo, hi)
	}
	for _, sh := range s.c.Shards {
		i := slices.IndexFunc(sh.Replicas, func(r Replica) bool { return r.ID == sh.Leader })
		leader := sh.Replicas[i].Node
		if s.state(leader) != NodeAlive {
			if len(alive) >= need {
				fail("shard %d: leader on %s node %s", sh.ID, s.state(leader), leader)
			}
			continue
		}
		for _, r := range sh.Replicas {
			if r.Role == RoleVoter && s.state(r.Node) == NodeAlive && b[leader].leaders-b[r.Node].leaders >= 2 {
				fail("shard %d: leader's node %s leads %d, voter's node %s leads %d", sh.ID, leader, b[leader].leaders, r.Node, b[r.Node].leaders)
			}
		}
	}
	return true, evacuated
}

// randomCluster returns a valid cluster of 1 to 9 nodes in random states
// and 1 to 12 shards (sometimes a meta shard too) with random replicas,
// roles, leaders, sizes and busy flags, duplicates and unlisted nodes now
// and then.
func randomCluster(rng *rand.Rand) Cluster {
	var c Cluster
	states := []NodeState{NodeAlive, NodeAlive, NodeAlive, NodeAlive, NodeAlive, NodeAlive, NodeDown, NodeDead, NodeDraining, NodeRemoved}
	for i := range 1 + rng.IntN(9) {
		c.Nodes = append(c.Nodes, Node{Name: fmt.Sprintf("n%d", i+1), State: states[rng.IntN(len(states))]})
	}
	names := func() []string {
		var ns []string
		for _, n := range c.Nodes {
			ns = append(ns, n.Name)
		}
		return append(ns, "gone") // a node the cluster no longer lists
	}()
	shard := func(id ring.ShardID, voters int, rest bool) Shard {
		sh := Shard{ID: id, Voters: voters, LearnersOnRest: rest, Busy: rng.IntN(20) == 0}
		pool := slices.Clone(names)
		rng.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
		n := min(1+rng.IntN(voters+2), len(pool))
		id64 := uint64(0)
		for i := range n {
			node := pool[i]
			if i > 0 && rng.IntN(15) == 0 {
				node = pool[rng.IntN(i)] // a second replica on one node
			} else if node == "gone" && rng.IntN(3) != 0 {
				node = pool[(i+1)%len(pool)]
			}
			id64 += 1 + uint64(rng.IntN(3))
			r := Replica{ID: id64, Node: node, Bytes: rng.Int64N(2 << 30)}
			if rng.IntN(5) == 0 {
				r.Role, r.CaughtUp = RoleLearner, rng.IntN(2) == 0
			}
			sh.Replicas = append(sh.Replicas, r)
		}
		var vs []uint64
		for _, r := range sh.Replicas {
			if r.Role == RoleVoter {
				vs = append(vs, r.ID)
			}
		}
		switch {
		case len(vs) > 0 && rng.IntN(10) != 0:
			sh.Leader = vs[rng.IntN(len(vs))]
		case rng.IntN(2) == 0:
			sh.Leader = sh.Replicas[rng.IntN(len(sh.Replicas))].ID
		}
		return sh
	}
	if rng.IntN(3) == 0 {
		c.Shards = append(c.Shards, shard(ring.MetaShard, 3+2*rng.IntN(2), true))
	}
	for i := range 1 + rng.IntN(12) {
		voters := 3
		if rng.IntN(2) == 0 {
			voters = 1 + rng.IntN(5)
		}
		c.Shards = append(c.Shards, shard(ring.ShardID(i+1), voters, false))
	}
	return c
}
