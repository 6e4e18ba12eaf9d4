package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cavedb/cave/placement"
	"github.com/cavedb/cave/ring"
	"github.com/cavedb/cave/shard"
)

// The operator's placement operations (the admin API). Each reads the meta
// records linearizably, checks the request against them and gossip, and
// records one change in the meta shard; the reconcilers do the rest. A
// refused request changes nothing and fails with an error wrapping
// ErrBadRequest or ErrPrecondition whose message says why.

// adminError is a refusal of an operator's request: Error is the reason
// alone, for people; Unwrap is ErrBadRequest or ErrPrecondition.
type adminError struct {
	kind error
	msg  string
}

func (e *adminError) Error() string { return e.msg }
func (e *adminError) Unwrap() error { return e.kind }

func badRequest(format string, args ...any) error {
	return &adminError{kind: ErrBadRequest, msg: fmt.Sprintf(format, args...)}
}

func precondition(format string, args ...any) error {
	return &adminError{kind: ErrPrecondition, msg: fmt.Sprintf(format, args...)}
}

// operatorReason is the Reason of the moves an operator asks for.
const operatorReason = "operator"

// nodeStates returns the planner's state of every node the cluster knows:
// in gossip, holding a replica record, or with a node record.
func (n *Node) nodeStates(p *metaState) map[string]placement.NodeState {
	out := map[string]placement.NodeState{}
	for _, nd := range n.clusterView(p, time.Now()).Nodes {
		out[nd.Name] = nd.State
	}
	return out
}

// adminState reads the meta records linearizably and the node states.
func (n *Node) adminState(ctx context.Context) (*metaState, map[string]placement.NodeState, error) {
	p, err := n.readMetaState(ctx, false)
	if err != nil {
		return nil, nil, err
	}
	return p, n.nodeStates(p), nil
}

// checkTarget returns nil when the named node may receive a replica or a
// leadership: known, alive in gossip, not stopping, draining or removed.
func checkTarget(states map[string]placement.NodeState, name string) error {
	st, ok := states[name]
	switch {
	case !ok:
		return badRequest("node %q is not a member of the cluster", name)
	case st != placement.NodeAlive:
		return precondition("node %s is %s: only an alive node can take a replica or a leadership", name, st)
	}
	return nil
}

// checkNoMove returns nil unless a move of shard id is in flight.
func checkNoMove(p *metaState, id ring.ShardID) error {
	if _, busy := p.moves[id]; busy {
		return errMoveInFlight(id)
	}
	return nil
}

func errMoveInFlight(id ring.ShardID) error {
	return precondition("a move of shard %d is in flight", id)
}

// MoveReplica moves shard id's voter on node from to node to: it records
// a move that adds a new replica on to as a learner, promotes it once
// caught up and then removes the replica on from. It returns the new
// replica's id once the move is recorded; the shard's leader executes it.
// It fails with ErrBadRequest for an unknown shard or node, when from
// holds no voter of the shard or to already holds a replica of it, and
// with ErrPrecondition when to is not alive (or is draining or removed)
// or a move of the shard is in flight. The meta shard moves like any
// other.
func (n *Node) MoveReplica(ctx context.Context, id ring.ShardID, from, to string) (uint64, error) {
	p, states, err := n.adminState(ctx)
	if err != nil {
		return 0, err
	}
	rs, ok := p.byShard[id]
	if !ok {
		return 0, badRequest("shard %d does not exist", id)
	}
	if _, ok := states[from]; !ok {
		return 0, badRequest("node %q is not a member of the cluster", from)
	}
	i := slices.IndexFunc(rs, func(r ReplicaView) bool { return r.Node == from })
	switch {
	case i < 0:
		return 0, badRequest("node %s holds no replica of shard %d", from, id)
	case rs[i].Role != RoleVoter:
		return 0, badRequest("the replica of shard %d on %s is a learner: only voters move", id, from)
	case slices.ContainsFunc(rs, func(r ReplicaView) bool { return r.Node == to }):
		return 0, badRequest("node %s already holds a replica of shard %d", to, id)
	}
	if err := checkTarget(states, to); err != nil {
		return 0, err
	}
	if err := checkNoMove(p, id); err != nil {
		return 0, err
	}
	rid, err := n.allocReplicaID(ctx)
	if err != nil {
		return 0, err
	}
	m := move{Kind: moveAdd, Step: stepRecord, Replica: rid, Node: to, Promote: true, Then: rs[i].ID, Reason: operatorReason}
	created, err := n.recordMove(ctx, id, m, operatorReason)
	switch {
	case err != nil:
		return 0, err
	case !created:
		return 0, errMoveInFlight(id)
	}
	return rid, nil
}

// TransferLeader records a move that makes the voter of shard id on node
// to the shard's leader. It fails with ErrBadRequest for an unknown shard
// or node or when to holds no voter of the shard, and with
// ErrPrecondition when to is not alive or a move of the shard is in
// flight.
func (n *Node) TransferLeader(ctx context.Context, id ring.ShardID, to string) error {
	p, states, err := n.adminState(ctx)
	if err != nil {
		return err
	}
	rs, ok := p.byShard[id]
	if !ok {
		return badRequest("shard %d does not exist", id)
	}
	if _, ok := states[to]; !ok {
		return badRequest("node %q is not a member of the cluster", to)
	}
	i := slices.IndexFunc(rs, func(r ReplicaView) bool { return r.Node == to && r.Role == RoleVoter })
	if i < 0 {
		return badRequest("node %s holds no voter of shard %d", to, id)
	}
	if err := checkTarget(states, to); err != nil {
		return err
	}
	if err := checkNoMove(p, id); err != nil {
		return err
	}
	created, err := n.recordMove(ctx, id, move{Kind: moveTransfer, Step: stepTransfer, Replica: rs[i].ID, Node: to, Reason: operatorReason}, operatorReason)
	if err == nil && !created {
		return errMoveInFlight(id)
	}
	return err
}

// DrainNode marks the named node draining: the coordinator moves its
// replicas and leaderships to other nodes (while rebalancing is not
// paused). Draining a draining node again is a no-op. It fails with
// ErrBadRequest for an unknown node and with ErrPrecondition for a
// removed node or when fewer alive, non-draining nodes than the
// replication factor would be left.
func (n *Node) DrainNode(ctx context.Context, name string) error {
	_, states, err := n.adminState(ctx)
	if err != nil {
		return err
	}
	switch st, ok := states[name]; {
	case !ok:
		return badRequest("node %q is not a member of the cluster", name)
	case st == placement.NodeRemoved:
		return precondition("node %s is removed", name)
	case st == placement.NodeDraining:
		return nil
	}
	left := 0
	for other, st := range states {
		if other != name && st == placement.NodeAlive {
			left++
		}
	}
	if left < n.cfg.Replicas {
		return precondition("draining %s would leave %d nodes for %d replicas", name, left, n.cfg.Replicas)
	}
	return n.setNodeState(ctx, name, nodeDraining)
}

// RemoveNode marks the named node removed, for good: the cluster places
// nothing on it again, and a node started under that name runs no
// replica. Removing a removed node again is a no-op. It fails with
// ErrBadRequest for an unknown node and with ErrPrecondition while the
// node still holds a replica record (drain it first).
func (n *Node) RemoveNode(ctx context.Context, name string) error {
	p, states, err := n.adminState(ctx)
	if err != nil {
		return err
	}
	switch st, ok := states[name]; {
	case !ok:
		return badRequest("node %q is not a member of the cluster", name)
	case st == placement.NodeRemoved:
		return nil
	}
	if held := p.replicasOn(name); held > 0 {
		return precondition("node %s still holds %d replicas: drain it first", name, held)
	}
	return n.setNodeState(ctx, name, nodeRemoved)
}

// replicasOn returns how many replica records name the node.
func (p *metaState) replicasOn(name string) int {
	held := 0
	for _, rs := range p.byShard {
		for _, r := range rs {
			if r.Node == name {
				held++
			}
		}
	}
	return held
}

// idempotentWrite proposes op, an unconditional put or delete of a fixed
// value whose repetition changes nothing, to the meta shard, and retries
// it (at most three tries, within ctx) when the outcome is unknown or the
// shard was not ready: a leader change right after a drain must not fail
// the operator's call.
func (n *Node) idempotentWrite(ctx context.Context, op shard.Op) error {
	var err error
	for try := 0; try < 3 && ctx.Err() == nil; try++ {
		if _, err = n.metaWrite(ctx, op); !errors.Is(err, ErrUnknownOutcome) && !errors.Is(err, ErrNotReady) {
			return err
		}
	}
	return err
}

func (n *Node) setNodeState(ctx context.Context, name, state string) error {
	if err := n.idempotentWrite(ctx, shard.Op{Kind: shard.OpPut, Key: []byte(prefixNodes + name), Value: []byte(state)}); err != nil {
		return err
	}
	n.lg.Info("node state set by operator", "target", name, "state", state)
	return nil
}

// PauseRebalance stops the coordinator from planning new moves; moves in
// flight finish. It is idempotent.
func (n *Node) PauseRebalance(ctx context.Context) error {
	err := n.idempotentWrite(ctx, shard.Op{Kind: shard.OpPut, Key: []byte(keyPaused), Value: []byte("1")})
	if err == nil {
		n.lg.Info("automatic rebalancing paused")
	}
	return err
}

// ResumeRebalance lets the coordinator plan moves again. It is
// idempotent.
func (n *Node) ResumeRebalance(ctx context.Context) error {
	err := n.idempotentWrite(ctx, shard.Op{Kind: shard.OpDelete, Key: []byte(keyPaused)})
	if err == nil {
		n.lg.Info("automatic rebalancing resumed")
	}
	return err
}

// Plan returns the actions the coordinator would record now, from the
// meta records read linearizably, gossip and the shards' sizes, whether
// or not rebalancing is paused. It records nothing and works on any node
// with a meta replica. It fails with ErrPrecondition when the cluster's
// view is not plannable.
func (n *Node) Plan(ctx context.Context) ([]placement.Action, error) {
	p, err := n.readMetaState(ctx, false)
	if err != nil {
		return nil, err
	}
	n.sizes.refresh(ctx, n, p)
	c := n.clusterView(p, time.Now())
	if err := c.Validate(); err != nil {
		return nil, precondition("the cluster view is not plannable: %v", err)
	}
	return placement.Plan(c, n.cfg.Rebalance), nil
}

// RebalanceStatus is the state of placement for status views.
type RebalanceStatus struct {
	// Paused is true while automatic rebalancing is paused.
	Paused bool
	// Nodes are every node the cluster knows, sorted by name.
	Nodes []NodeStatus
	// Moves are the moves in flight, sorted by shard.
	Moves []MoveStatus
}

// NodeStatus is one node's placement state.
type NodeStatus struct {
	Name  string
	State placement.NodeState
}

// MoveStatus is one move in flight.
type MoveStatus struct {
	Shard ring.ShardID
	// Kind is "add", "promote", "remove" or "transfer".
	Kind string
	// Replica is the replica the move concerns; Node is its node.
	Replica uint64
	Node    string
	// Step is the next step to take.
	Step string
	// Started is when the move was recorded, by its recorder's clock.
	Started time.Time
	// Reason is the planner's reason or "operator".
	Reason string
}

// Moves returns the moves in flight, whether rebalancing is paused and
// the state of every node, from the meta records read linearizably.
func (n *Node) Moves(ctx context.Context) (RebalanceStatus, error) {
	p, states, err := n.adminState(ctx)
	if err != nil {
		return RebalanceStatus{}, err
	}
	out := RebalanceStatus{Paused: p.paused}
	for name, st := range states {
		out.Nodes = append(out.Nodes, NodeStatus{Name: name, State: st})
	}
	slices.SortFunc(out.Nodes, func(a, b NodeStatus) int { return strings.Compare(a.Name, b.Name) })
	for id, rm := range p.moves {
		out.Moves = append(out.Moves, MoveStatus{Shard: id, Kind: rm.Kind, Replica: rm.Replica, Node: rm.Node,
			Step: rm.Step, Started: time.Unix(0, rm.Started), Reason: rm.Reason})
	}
	slices.SortFunc(out.Moves, func(a, b MoveStatus) int { return int(a.Shard) - int(b.Shard) })
	return out, nil
}

// ApplyOptions configures Apply.
type ApplyOptions struct {
	// DryRun lists the plan's actions without recording them.
	DryRun bool
	// MaxConcurrent records at most this many of the plan's actions; 0:
	// all.
	MaxConcurrent int
}

// ApplyEvent is one progress event of Apply.
type ApplyEvent struct {
	// Kind is ApplyPlanned (Action is set), ApplyDone (Shard's move is no
	// longer in flight) or ApplyInFlight (InFlight moves are left).
	Kind     string
	Action   placement.Action
	Shard    ring.ShardID
	InFlight int
}

// ApplyEvent kinds.
const (
	ApplyPlanned  = "planned"
	ApplyDone     = "done"
	ApplyInFlight = "in-flight"
)

// Apply records the current plan's actions as moves, as the coordinator
// would, also while rebalancing is paused, and reports each to emit as
// ApplyPlanned. Then it polls the meta records every reconcile interval,
// reporting ApplyInFlight whenever the number of its shards with a move in
// flight changes and ApplyDone as each finishes, and returns nil once
// none is left. With DryRun it only reports the actions. It returns
// emit's error, ctx's when it ends first, or why the plan could not be
// read or recorded.
func (n *Node) Apply(ctx context.Context, opts ApplyOptions, emit func(ApplyEvent) error) error {
	if opts.MaxConcurrent < 0 {
		return badRequest("max_concurrent must be >= 0, got %d", opts.MaxConcurrent)
	}
	actions, err := n.Plan(ctx)
	if err != nil {
		return err
	}
	if opts.MaxConcurrent > 0 && len(actions) > opts.MaxConcurrent {
		actions = actions[:opts.MaxConcurrent]
	}
	watch := map[ring.ShardID]bool{}
	for _, a := range actions {
		if !opts.DryRun {
			if _, err := n.recordAction(ctx, a, operatorReason); err != nil {
				return err
			}
			watch[a.Shard] = true
		}
		if err := emit(ApplyEvent{Kind: ApplyPlanned, Action: a}); err != nil {
			return err
		}
	}
	last := -1
	t := time.NewTicker(n.cfg.ReconcileInterval)
	defer t.Stop()
	for {
		p, err := n.readMetaState(ctx, false)
		if err != nil {
			return err
		}
		done := make([]ring.ShardID, 0, len(watch))
		for id := range watch {
			if p.moves[id] == nil {
				done = append(done, id)
			}
		}
		slices.Sort(done)
		for _, id := range done {
			delete(watch, id)
			if err := emit(ApplyEvent{Kind: ApplyDone, Shard: id}); err != nil {
				return err
			}
		}
		if len(watch) == 0 {
			return nil
		}
		if len(watch) != last {
			last = len(watch)
			if err := emit(ApplyEvent{Kind: ApplyInFlight, InFlight: last}); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
