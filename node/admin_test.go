package node_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cavedb/cave/internal/nodetest"
	"github.com/cavedb/cave/node"
	"github.com/cavedb/cave/placement"
	"github.com/cavedb/cave/ring"
)

// replicaNodes returns the nodes holding a replica of shard id and its
// leader, as nd sees them.
func replicaNodes(ctx context.Context, nd *node.Node, id ring.ShardID) ([]string, string, error) {
	ss, err := nd.Shards(ctx)
	if err != nil {
		return nil, "", err
	}
	for _, s := range ss {
		if s.ID == id {
			var out []string
			for _, r := range s.Replicas {
				out = append(out, r.Node)
			}
			slices.Sort(out)
			return out, s.Leader, nil
		}
	}
	return nil, "", fmt.Errorf("shard %d not listed", id)
}

// waitNoMoves waits until no move is in flight.
func waitNoMoves(t *testing.T, nd *node.Node) {
	t.Helper()
	nodetest.Eventually(t, time.Minute, "moves still in flight", func(ctx context.Context) string {
		st, err := nd.Moves(ctx)
		if err != nil {
			return err.Error()
		}
		if len(st.Moves) > 0 {
			return fmt.Sprintf("%d moves in flight: %+v", len(st.Moves), st.Moves)
		}
		return ""
	})
}

func stateOf(t *testing.T, ctx context.Context, nd *node.Node, name string) placement.NodeState {
	t.Helper()
	st, err := nd.Moves(ctx)
	require.NoError(t, err)
	for _, n := range st.Nodes {
		if n.Name == name {
			return n.State
		}
	}
	t.Fatalf("node %s not in status %+v", name, st.Nodes)
	return 0
}

// TestAdmin runs the operator's placement operations against a real
// cluster: bad requests are refused without a change, a replica moves by
// hand, a leadership moves by hand, Apply records and follows the plan,
// and a node is drained and removed for good.
func TestAdmin(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 4-node cluster")
	}
	c := nodetest.NewCluster(t, 3, nodetest.WithShards(2), nodetest.WithMetaVoters(3))
	c.WaitStable(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	n0 := c.Node(0)

	// A new node joins and gets its share; then rebalancing is paused, so
	// nothing moves until asked.
	c.AddNode()
	nodetest.Eventually(t, 2*time.Minute, "cluster not balanced", func(ctx context.Context) string {
		st, err := n0.Moves(ctx)
		if err != nil {
			return err.Error()
		}
		plan, err := n0.Plan(ctx)
		if err != nil {
			return err.Error()
		}
		if len(st.Moves)+len(plan) > 0 {
			return fmt.Sprintf("%d moves in flight, %d planned", len(st.Moves), len(plan))
		}
		return ""
	})
	require.NoError(t, n0.PauseRebalance(ctx))
	st, err := c.Node(1).Moves(ctx)
	require.NoError(t, err)
	require.True(t, st.Paused)
	waitNoMoves(t, n0)
	for _, n := range st.Nodes {
		require.Equal(t, placement.NodeAlive, n.State, n.Name)
	}
	// Shard 1 has 3 replicas on 4 nodes: spare is the one without.
	const shard = ring.ShardID(1)
	before, _, err := replicaNodes(ctx, n0, shard)
	require.NoError(t, err)
	require.Len(t, before, 3)
	spare := ""
	for i := range 4 {
		if !slices.Contains(before, c.Name(i)) {
			spare = c.Name(i)
		}
	}

	t.Run("refused", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			call func() error
			want error
			msg  string
		}{
			{"unknown shard", func() error { _, err := n0.MoveReplica(ctx, 99, before[0], spare); return err }, node.ErrBadRequest, "shard 99 does not exist"},
			{"from holds none", func() error { _, err := n0.MoveReplica(ctx, shard, spare, before[0]); return err }, node.ErrBadRequest, "holds no replica"},
			{"unknown target", func() error { _, err := n0.MoveReplica(ctx, shard, before[0], "nope"); return err }, node.ErrBadRequest, `node "nope" is not a member`},
			{"target holds one", func() error { _, err := n0.MoveReplica(ctx, shard, before[0], before[1]); return err }, node.ErrBadRequest, "already holds a replica"},
			{"transfer to non-voter", func() error { return n0.TransferLeader(ctx, shard, spare) }, node.ErrBadRequest, "holds no voter"},
			{"transfer to unknown", func() error { return n0.TransferLeader(ctx, 99, c.Name(1)) }, node.ErrBadRequest, "does not exist"},
			{"drain unknown", func() error { return n0.DrainNode(ctx, "nope") }, node.ErrBadRequest, "not a member"},
			{"remove unknown", func() error { return n0.RemoveNode(ctx, "nope") }, node.ErrBadRequest, "not a member"},
			{"remove holder", func() error { return n0.RemoveNode(ctx, before[0]) }, node.ErrPrecondition, "still holds"},
		} {
			err := tc.call()
			require.ErrorIs(t, err, tc.want, tc.name)
			assert.Contains(t, err.Error(), tc.msg, tc.name)
		}
		st, err := n0.Moves(ctx)
		require.NoError(t, err)
		assert.Empty(t, st.Moves, "a refused request recorded a move")
		for _, n := range st.Nodes {
			assert.Equal(t, placement.NodeAlive, n.State, n.Name)
		}
	})

	t.Run("move replica", func(t *testing.T) {
		from := before[0]
		rid, err := c.Node(2).MoveReplica(ctx, shard, from, spare)
		require.NoError(t, err)
		assert.NotZero(t, rid)
		err = n0.TransferLeader(ctx, shard, before[1])
		require.ErrorIs(t, err, node.ErrPrecondition)
		assert.Contains(t, err.Error(), fmt.Sprintf("a move of shard %d is in flight", shard))
		want := slices.Sorted(slices.Values(append(slices.DeleteFunc(slices.Clone(before), func(s string) bool { return s == from }), spare)))
		nodetest.Eventually(t, time.Minute, "replica not moved", func(ctx context.Context) string {
			got, _, err := replicaNodes(ctx, n0, shard)
			if err != nil {
				return err.Error()
			}
			if !slices.Equal(got, want) {
				return fmt.Sprintf("replicas on %v, want %v", got, want)
			}
			return ""
		})
		waitNoMoves(t, n0)
		c.WaitReplicas(t, shard, 3)
	})

	t.Run("transfer leader", func(t *testing.T) {
		require.NoError(t, n0.TransferLeader(ctx, shard, spare))
		nodetest.Eventually(t, time.Minute, "leadership not moved", func(ctx context.Context) string {
			if l := c.WaitLeader(ctx, shard); l != spare {
				return "leader is " + l
			}
			return ""
		})
		waitNoMoves(t, n0)
	})

	t.Run("drain and remove", func(t *testing.T) {
		// The drained node loses its meta replica too: ask another.
		n0 := c.Node(c.Index(before[1]))
		require.NoError(t, n0.DrainNode(ctx, spare))
		require.NoError(t, n0.DrainNode(ctx, spare), "draining twice")
		other := before[1]
		err := n0.DrainNode(ctx, other)
		require.ErrorIs(t, err, node.ErrPrecondition)
		assert.Contains(t, err.Error(), fmt.Sprintf("draining %s would leave 2 nodes for 3 replicas", other))
		err = n0.TransferLeader(ctx, shard, spare)
		require.ErrorIs(t, err, node.ErrPrecondition, "a leadership onto a draining node")
		assert.Contains(t, err.Error(), "is draining")

		// Paused, the drain waits for Apply: the plan moves off the node.
		plan, err := c.Node(1).Plan(ctx)
		require.NoError(t, err)
		require.NotEmpty(t, plan, "a paused cluster with a draining node plans nothing")
		var events []node.ApplyEvent
		record := func(e node.ApplyEvent) error { events = append(events, e); return nil }
		require.NoError(t, n0.Apply(ctx, node.ApplyOptions{DryRun: true}, record))
		require.NotEmpty(t, events)
		for _, e := range events {
			assert.Equal(t, node.ApplyPlanned, e.Kind)
		}
		st, err := n0.Moves(ctx)
		require.NoError(t, err)
		assert.Empty(t, st.Moves, "a dry run recorded moves")

		events = nil
		require.NoError(t, n0.Apply(ctx, node.ApplyOptions{MaxConcurrent: 1}, record))
		kinds := make([]string, len(events))
		for i, e := range events {
			kinds[i] = e.Kind
		}
		assert.Equal(t, []string{node.ApplyPlanned, node.ApplyInFlight, node.ApplyDone}, kinds, "%+v", events)
		require.ErrorIs(t, n0.Apply(ctx, node.ApplyOptions{MaxConcurrent: -1}, record), node.ErrBadRequest)

		require.NoError(t, n0.ResumeRebalance(ctx))
		nodetest.Eventually(t, 2*time.Minute, "node not drained", func(ctx context.Context) string {
			err := n0.RemoveNode(ctx, spare)
			if err != nil {
				return err.Error()
			}
			return ""
		})
		assert.Equal(t, placement.NodeRemoved, stateOf(t, ctx, c.Node(1), spare))
		require.NoError(t, n0.RemoveNode(ctx, spare), "removing twice")
		err = n0.DrainNode(ctx, spare)
		require.ErrorIs(t, err, node.ErrPrecondition)
		assert.Contains(t, err.Error(), "is removed")
		_, err = n0.MoveReplica(ctx, shard, before[1], spare)
		require.ErrorIs(t, err, node.ErrPrecondition, "a move onto a removed node")
		assert.Contains(t, err.Error(), "is removed")
	})
}
