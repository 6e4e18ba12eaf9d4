package placement

import (
	"errors"
	"strings"
	"testing"
)

func TestFormatBytes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		n    int64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1 KiB"}, {1536, "1.5 KiB"},
		{64 << 20, "64 MiB"}, {3 << 30, "3 GiB"}, {-2048, "-2 KiB"},
	} {
		if got := formatBytes(tc.n); got != tc.want {
			t.Errorf("formatBytes(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

func TestQuorum(t *testing.T) {
	t.Parallel()
	for n, want := range []int{1, 1, 2, 2, 3, 3, 4} {
		if got := quorum(n); got != want {
			t.Errorf("quorum(%d) = %d, want %d", n, got, want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig: %v", err)
	}
	err := Config{MaxActions: -1, MaxMovesPerNode: -2, MinByteGapBytes: -3}.Validate()
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("got %v, want ErrInvalidConfig", err)
	}
	for _, want := range []string{"MaxActions must be >= 0, got -1", "MaxMovesPerNode must be >= 0, got -2", "MinByteGapBytes must be >= 0, got -3"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
	if Plan(Cluster{Nodes: []Node{{Name: "n1"}}}, Config{MaxActions: -1}) != nil {
		t.Error("Plan with a bad config planned")
	}
}

func TestClusterValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		c    Cluster
		want string
	}{
		{"empty node name", Cluster{Nodes: []Node{{}}}, "node with an empty name"},
		{"node twice", Cluster{Nodes: []Node{{Name: "n1"}, {Name: "n1"}}}, "node n1 listed twice"},
		{"bad state", Cluster{Nodes: []Node{{Name: "n1", State: 9}}}, "node n1: unknown state 9"},
		{"shard twice", Cluster{Shards: []Shard{{ID: 1, Voters: 1}, {ID: 1, Voters: 1}}}, "shard 1 listed twice"},
		{"voters", Cluster{Shards: []Shard{{ID: 1}}}, "shard 1: voters must be >= 1, got 0"},
		{"replica id 0", Cluster{Shards: []Shard{{ID: 1, Voters: 1, Replicas: []Replica{{Node: "n1"}}}}}, "shard 1: replica id 0"},
		{"replica twice", Cluster{Shards: []Shard{{ID: 1, Voters: 1, Replicas: []Replica{{ID: 1, Node: "n1"}, {ID: 1, Node: "n2"}}}}}, "shard 1: replica id 1 listed twice"},
		{"no node", Cluster{Shards: []Shard{{ID: 1, Voters: 1, Replicas: []Replica{{ID: 1}}}}}, "shard 1: replica 1 has no node"},
		{"bad role", Cluster{Shards: []Shard{{ID: 1, Voters: 1, Replicas: []Replica{{ID: 1, Node: "n1", Role: 5}}}}}, "shard 1: replica 1: unknown role 5"},
		{"negative size", Cluster{Shards: []Shard{{ID: 1, Voters: 1, Replicas: []Replica{{ID: 1, Node: "n1", Bytes: -1}}}}}, "shard 1: replica 1: negative size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.c.Validate()
			if !errors.Is(err, ErrInvalidCluster) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrInvalidCluster with %q", err, tc.want)
			}
		})
	}
}

func TestStrings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ got, want string }{
		{NodeAlive.String(), "alive"}, {NodeDown.String(), "down"}, {NodeDead.String(), "dead"},
		{NodeDraining.String(), "draining"}, {NodeRemoved.String(), "removed"}, {NodeState(9).String(), "NodeState(9)"},
		{RoleVoter.String(), "voter"}, {RoleLearner.String(), "learner"}, {Role(7).String(), "Role(7)"},
		{AddLearner.String(), "add-learner"}, {Promote.String(), "promote"}, {RemoveReplica.String(), "remove-replica"},
		{TransferLeader.String(), "transfer-leader"}, {ActionKind(0).String(), "ActionKind(0)"},
		{Action{Kind: AddLearner, Shard: 3, Node: "n4", Reason: "r"}.String(), "add-learner shard=3 node=n4: r"},
		{Action{Kind: Promote, Shard: 3, Replica: 7, Node: "n4", Reason: "r"}.String(), "promote shard=3 replica=7 node=n4: r"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
