package placement

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/cavedb/cave/ring"
	"github.com/cockroachdb/datadriven"
)

// TestGolden runs the scripts in testdata/ (regenerate with -rewrite):
//
//	cluster           reset to the cluster in the input (see sim_test.go)
//	update            change nodes or shards as the input says
//	plan [CONFIG]     print the plan
//	apply             apply the last plan, print the shards that changed
//	converge [CONFIG] [brief]
//	                  plan and apply until nothing is left to do, print each
//	                  round (brief: its action count by kind) and the balance
//	show, balance     print the cluster, or each node's load
//
// CONFIG is max-actions=N max-moves-per-node=N min-byte-gap=SIZE over
// DefaultConfig. Every plan is checked against Plan's promises and for
// determinism under shuffled input, every step for lost voters, quorum and
// duplicates.
func TestGolden(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		var s *sim
		var last []Action
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			switch d.Cmd {
			case "cluster":
				s = newSim(Cluster{})
				last = nil
				fallthrough
			case "update":
				if err := s.update(d.Input); err != nil {
					return err.Error() + "\n"
				}
				return s.formatBalance()
			case "plan":
				last = plan(t, s, config(t, d))
				return formatPlan(last)
			case "apply":
				changed, err := step(t, s, last)
				if err != nil {
					return err.Error() + "\n"
				}
				last = nil
				var out strings.Builder
				for _, id := range changed {
					out.WriteString(formatShard(*s.shard(id)))
				}
				return out.String()
			case "converge":
				return converge(t, s, config(t, d), d.HasArg("brief"))
			case "show":
				return s.show()
			case "balance":
				return s.formatBalance()
			}
			t.Fatalf("unknown command %q", d.Cmd)
			return ""
		})
	})
}

func config(t *testing.T, d *datadriven.TestData) Config {
	t.Helper()
	cfg := DefaultConfig()
	for _, a := range d.CmdArgs {
		switch a.Key {
		case "max-actions":
			d.ScanArgs(t, a.Key, &cfg.MaxActions)
		case "max-moves-per-node":
			d.ScanArgs(t, a.Key, &cfg.MaxMovesPerNode)
		case "min-byte-gap":
			var v string
			d.ScanArgs(t, a.Key, &v)
			n, err := parseSize(v)
			if err != nil {
				t.Fatal(err)
			}
			cfg.MinByteGapBytes = n
		case "brief":
		default:
			t.Fatalf("unknown argument %q", a.Key)
		}
	}
	return cfg
}

// plan plans for s, checks the plan, and checks that shuffling the input
// changes nothing.
func plan(t *testing.T, s *sim, cfg Config) []Action {
	t.Helper()
	acts := Plan(s.c, cfg)
	if err := s.checkPlan(acts); err != nil {
		t.Errorf("plan breaks a promise:\n%v\n%s", err, formatPlan(acts))
	}
	if err := cfg.Validate(); err == nil && cfg.MaxActions > 0 && len(acts) > cfg.MaxActions {
		t.Errorf("%d actions, MaxActions is %d", len(acts), cfg.MaxActions)
	}
	sh := shuffled(s.c, rand.New(rand.NewPCG(uint64(len(acts)), 7)))
	if again := Plan(sh, cfg); !reflect.DeepEqual(again, acts) {
		t.Errorf("plan of shuffled input differs:\n%s\nwant:\n%s", formatPlan(again), formatPlan(acts))
	}
	return acts
}

// step applies acts to s and checks the step.
func step(t *testing.T, s *sim, acts []Action) ([]ring.ShardID, error) {
	t.Helper()
	before := s.clone()
	changed, err := s.apply(acts)
	if err != nil {
		return nil, err
	}
	if err := checkStep(before, s); err != nil {
		t.Errorf("step breaks a promise:\n%v\n%s", err, formatPlan(acts))
	}
	return changed, nil
}

// shuffled returns a copy of c with its nodes, shards and replicas in a
// random order.
func shuffled(c Cluster, rng *rand.Rand) Cluster {
	out := Cluster{Nodes: slices.Clone(c.Nodes), Shards: slices.Clone(c.Shards)}
	rng.Shuffle(len(out.Nodes), func(i, j int) { out.Nodes[i], out.Nodes[j] = out.Nodes[j], out.Nodes[i] })
	rng.Shuffle(len(out.Shards), func(i, j int) { out.Shards[i], out.Shards[j] = out.Shards[j], out.Shards[i] })
	for i := range out.Shards {
		rs := slices.Clone(out.Shards[i].Replicas)
		rng.Shuffle(len(rs), func(i, j int) { rs[i], rs[j] = rs[j], rs[i] })
		out.Shards[i].Replicas = rs
	}
	return out
}

func formatPlan(acts []Action) string {
	if len(acts) == 0 {
		return "no actions\n"
	}
	var out strings.Builder
	for _, a := range acts {
		out.WriteString(a.String() + "\n")
	}
	return out.String()
}

// undoes returns the actions of acts that undo one of prev: a leadership
// handed back, a replica added back where one was removed, a replica
// removed right after its promotion.
func undoes(prev, acts []Action) []Action {
	var out []Action
	for _, a := range acts {
		for _, b := range prev {
			if a.Shard == b.Shard && (a.Kind == TransferLeader && b.Kind == TransferLeader ||
				a.Kind == AddLearner && b.Kind == RemoveReplica && a.Node == b.Node ||
				a.Kind == RemoveReplica && b.Kind == Promote && a.Replica == b.Replica) {
				out = append(out, a)
			}
		}
	}
	return out
}

// rounds bounds converge: enough for every shard to make a few moves.
func rounds(c Cluster) int { return 50 + 10*len(c.Shards) }

// converge plans and applies until a plan is empty and no learner is
// catching up, and prints the rounds and the final balance. A step that
// undoes the previous plan fails the test.
func converge(t *testing.T, s *sim, cfg Config, brief bool) string {
	t.Helper()
	var out strings.Builder
	total := 0
	var prev []Action
	for round := 1; ; round++ {
		acts := plan(t, s, cfg)
		if u := undoes(prev, acts); len(u) > 0 {
			t.Errorf("round %d undoes the previous plan:\n%s", round, formatPlan(u))
		}
		prev = acts
		if len(acts) == 0 && !s.catching() {
			fmt.Fprintf(&out, "converged: %d actions in %d rounds\n", total, round-1)
			break
		}
		if round > rounds(s.c) {
			t.Errorf("no convergence after %d rounds", round-1)
			fmt.Fprintf(&out, "no convergence after %d rounds\n", round-1)
			break
		}
		total += len(acts)
		fmt.Fprintf(&out, "round %d:", round)
		switch {
		case len(acts) == 0:
			out.WriteString(" learners catching up\n")
		case brief:
			kinds := map[ActionKind]int{}
			for _, a := range acts {
				kinds[a.Kind]++
			}
			for k := AddLearner; k <= TransferLeader; k++ {
				if kinds[k] > 0 {
					fmt.Fprintf(&out, " %s=%d", k, kinds[k])
				}
			}
			out.WriteString("\n")
		default:
			out.WriteString("\n")
			for _, a := range acts {
				out.WriteString("  " + a.String() + "\n")
			}
		}
		if _, err := step(t, s, acts); err != nil {
			t.Fatal(err)
		}
	}
	out.WriteString(s.formatBalance())
	return out.String()
}
