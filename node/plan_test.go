package node

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPlan(t *testing.T) {
	t.Parallel()
	alive := func(names ...string) []NodeView {
		var out []NodeView
		for _, n := range names {
			out = append(out, NodeView{Name: n, Alive: true})
		}
		return out
	}
	down := func(name string, d time.Duration) NodeView { return NodeView{Name: name, DownFor: d} }
	member := func(id uint64, node string) ReplicaView {
		return ReplicaView{ID: id, Node: node, Member: true}
	}
	cases := []struct {
		name string
		in   PlanInput
		want string
	}{
		{
			name: "full shard needs nothing",
			in:   PlanInput{Voters: 3, Replicas: []ReplicaView{member(1, "a"), member(2, "b"), member(3, "c")}, Nodes: alive("a", "b", "c", "d")},
			want: "",
		},
		{
			name: "one node joined: add a voter on it",
			in:   PlanInput{Voters: 3, Replicas: []ReplicaView{member(1, "a")}, Nodes: alive("a", "b")},
			want: "create replica=0 node=b role=voter: 1 of 3 voters",
		},
		{
			name: "least loaded spare first",
			in: PlanInput{Voters: 3, Replicas: []ReplicaView{member(1, "a")}, Nodes: alive("a", "b", "c"),
				Load: map[string]int{"b": 5, "c": 1}},
			want: "create replica=0 node=c role=voter: 1 of 3 voters",
		},
		{
			name: "pending record on a live node is retried",
			in:   PlanInput{Voters: 3, Replicas: []ReplicaView{member(1, "a"), {ID: 2, Node: "b"}}, Nodes: alive("a", "b")},
			want: "add replica=2 node=b role=voter: recorded replica is not a member yet",
		},
		{
			name: "pending record on a dead node is dropped",
			in: PlanInput{Voters: 3, DeadAfter: time.Minute, Replicas: []ReplicaView{member(1, "a"), {ID: 2, Node: "b"}},
				Nodes: append(alive("a"), down("b", time.Hour))},
			want: "drop-record replica=2 node=b role=voter: pending replica on a dead node",
		},
		{
			name: "dead node replaced only when a spare exists",
			in: PlanInput{Voters: 3, DeadAfter: time.Minute, Replicas: []ReplicaView{member(1, "a"), member(2, "b"), member(3, "c")},
				Nodes: append(alive("a", "b"), down("c", time.Hour))},
			want: "",
		},
		{
			name: "dead voter of four removed without a spare",
			in: PlanInput{Voters: 5, LearnersOnRest: true, DeadAfter: time.Minute,
				Replicas: []ReplicaView{member(1, "a"), member(2, "b"), member(3, "c"), member(4, "d")},
				Nodes:    append(alive("a", "b", "c"), down("d", time.Hour))},
			want: "remove replica=4 node=d role=voter: node down for at least 1m0s; 3 members without it keep a better quorum",
		},
		{
			name: "dead learner removed without a spare",
			in: PlanInput{Voters: 1, LearnersOnRest: true, DeadAfter: time.Minute,
				Replicas: []ReplicaView{member(1, "a"), {ID: 2, Node: "b", Role: RoleLearner, Member: true}},
				Nodes:    append(alive("a"), down("b", time.Hour))},
			want: "remove replica=2 node=b role=learner: node down for at least 1m0s; 1 members without it keep a better quorum",
		},
		{
			name: "dead node with a spare is removed first",
			in: PlanInput{Voters: 3, DeadAfter: time.Minute, Replicas: []ReplicaView{member(1, "a"), member(2, "b"), member(3, "c")},
				Nodes: append(alive("a", "b", "d"), down("c", time.Hour))},
			want: "remove replica=3 node=c role=voter: node down for at least 1m0s and d can replace it",
		},
		{
			name: "node down less than the grace period is kept",
			in: PlanInput{Voters: 3, DeadAfter: time.Minute, Replicas: []ReplicaView{member(1, "a"), member(2, "b"), member(3, "c")},
				Nodes: append(alive("a", "b", "d"), down("c", time.Second))},
			want: "",
		},
		{
			name: "unknown node counts as dead",
			in: PlanInput{Voters: 2, DeadAfter: time.Minute, Replicas: []ReplicaView{member(1, "a"), member(2, "gone")},
				Nodes: alive("a", "b")},
			want: "remove replica=2 node=gone role=voter: node down for at least 1m0s and b can replace it",
		},
		{
			name: "meta shard puts learners on the rest",
			in: PlanInput{Voters: 1, LearnersOnRest: true, Replicas: []ReplicaView{member(1, "a")},
				Nodes: alive("a", "b")},
			want: "create replica=0 node=b role=learner: every node keeps a copy of this shard",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got []string
			for _, a := range Plan(tc.in) {
				got = append(got, a.String())
			}
			if g := strings.Join(got, "\n"); g != tc.want {
				t.Errorf("Plan:\n got: %s\nwant: %s", g, tc.want)
			}
		})
	}
}

// TestPlanInvariants drives Plan to a fixed point on many random clusters
// and checks that it never places two replicas of a shard on one node and
// never removes the replica of a live node.
func TestPlanInvariants(t *testing.T) {
	t.Parallel()
	for seed := 0; seed < 200; seed++ {
		nNodes := 1 + seed%6
		var nodes []NodeView
		for i := 0; i < nNodes; i++ {
			nv := NodeView{Name: fmt.Sprintf("n%d", i), Alive: (seed>>i)%3 != 0}
			if !nv.Alive {
				nv.DownFor = time.Hour
			}
			nodes = append(nodes, nv)
		}
		in := PlanInput{Voters: 3, DeadAfter: time.Minute, Nodes: nodes, Replicas: []ReplicaView{{ID: 1, Node: "n0", Member: true}}}
		next := uint64(2)
		converged := false
		for step := 0; step < 20; step++ {
			acts := Plan(in)
			if len(acts) == 0 {
				converged = true
				break
			}
			for _, a := range acts {
				switch a.Kind {
				case ActCreate:
					in.Replicas = append(in.Replicas, ReplicaView{ID: next, Node: a.Node, Role: a.Role, Member: true})
					next++
				case ActRemove, ActDropRecord:
					for _, nv := range nodes {
						if nv.Name == a.Node && nv.Alive {
							t.Fatalf("seed %d: removed replica of live node %s", seed, a.Node)
						}
					}
					in.Replicas = slicesDelete(in.Replicas, a.Replica)
				}
			}
			seen := map[string]bool{}
			for _, r := range in.Replicas {
				if seen[r.Node] {
					t.Fatalf("seed %d: two replicas on %s", seed, r.Node)
				}
				seen[r.Node] = true
			}
		}
		if !converged {
			t.Fatalf("seed %d: no fixed point after 20 rounds: %+v", seed, in.Replicas)
		}
		alive := map[string]bool{}
		for _, nv := range nodes {
			alive[nv.Name] = nv.Alive
		}
		voters := 0
		for _, r := range in.Replicas {
			if r.Role == RoleVoter && alive[r.Node] {
				voters++
			}
		}
		if want := min(in.Voters, len(slices.DeleteFunc(slices.Clone(nodes), func(nv NodeView) bool { return !nv.Alive }))); voters != want {
			t.Fatalf("seed %d: fixed point has %d voters on live nodes, want %d: %+v", seed, voters, want, in.Replicas)
		}
	}
}

func slicesDelete(rs []ReplicaView, id uint64) []ReplicaView {
	out := rs[:0]
	for _, r := range rs {
		if r.ID != id {
			out = append(out, r)
		}
	}
	return out
}
