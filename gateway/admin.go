package gateway

import (
	"context"
	"fmt"
	"log/slog"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cavedb/cave/node"
	"github.com/cavedb/cave/placement"
	adminv1 "github.com/cavedb/cave/proto/cave/admin/v1"
	"github.com/cavedb/cave/ring"
)

// Admin is the placement control the admin API serves; *node.Node
// implements it (node/admin.go states each method's contract).
type Admin interface {
	MoveReplica(ctx context.Context, id ring.ShardID, from, to string) (uint64, error)
	TransferLeader(ctx context.Context, id ring.ShardID, to string) error
	DrainNode(ctx context.Context, name string) error
	RemoveNode(ctx context.Context, name string) error
	PauseRebalance(ctx context.Context) error
	ResumeRebalance(ctx context.Context) error
	Plan(ctx context.Context) ([]placement.Action, error)
	Apply(ctx context.Context, opts node.ApplyOptions, emit func(node.ApplyEvent) error) error
	Moves(ctx context.Context) (node.RebalanceStatus, error)
}

var _ Admin = (*node.Node)(nil)

// adminService implements cave.admin.v1.Admin over an Admin.
type adminService struct {
	adminv1.UnimplementedAdminServer
	admin Admin
	lg    *slog.Logger
}

// MoveReplica implements adminv1.AdminServer.
func (s *adminService) MoveReplica(ctx context.Context, req *adminv1.MoveReplicaRequest) (*adminv1.MoveReplicaResponse, error) {
	rid, err := s.admin.MoveReplica(ctx, ring.ShardID(req.GetShardId()), req.GetFrom(), req.GetTo())
	if err != nil {
		return nil, toStatus(s.lg, err)
	}
	return &adminv1.MoveReplicaResponse{ReplicaId: rid}, nil
}

// TransferLeader implements adminv1.AdminServer.
func (s *adminService) TransferLeader(ctx context.Context, req *adminv1.TransferLeaderRequest) (*adminv1.TransferLeaderResponse, error) {
	if err := s.admin.TransferLeader(ctx, ring.ShardID(req.GetShardId()), req.GetTo()); err != nil {
		return nil, toStatus(s.lg, err)
	}
	return &adminv1.TransferLeaderResponse{}, nil
}

// DrainNode implements adminv1.AdminServer.
func (s *adminService) DrainNode(ctx context.Context, req *adminv1.DrainNodeRequest) (*adminv1.DrainNodeResponse, error) {
	if err := s.admin.DrainNode(ctx, req.GetNode()); err != nil {
		return nil, toStatus(s.lg, err)
	}
	return &adminv1.DrainNodeResponse{}, nil
}

// RemoveNode implements adminv1.AdminServer.
func (s *adminService) RemoveNode(ctx context.Context, req *adminv1.RemoveNodeRequest) (*adminv1.RemoveNodeResponse, error) {
	if err := s.admin.RemoveNode(ctx, req.GetNode()); err != nil {
		return nil, toStatus(s.lg, err)
	}
	return &adminv1.RemoveNodeResponse{}, nil
}

// Plan implements adminv1.AdminServer.
func (s *adminService) Plan(ctx context.Context, _ *adminv1.PlanRequest) (*adminv1.PlanResponse, error) {
	actions, err := s.admin.Plan(ctx)
	if err != nil {
		return nil, toStatus(s.lg, err)
	}
	out := &adminv1.PlanResponse{}
	for _, a := range actions {
		out.Actions = append(out.Actions, actionProto(a))
	}
	return out, nil
}

// Apply implements adminv1.AdminServer: one message per node.ApplyEvent.
func (s *adminService) Apply(req *adminv1.ApplyRequest, stream adminv1.Admin_ApplyServer) error {
	opts := node.ApplyOptions{DryRun: req.GetDryRun(), MaxConcurrent: int(req.GetMaxConcurrent())}
	err := s.admin.Apply(stream.Context(), opts, func(e node.ApplyEvent) error {
		return stream.Send(applyEventProto(e))
	})
	return toStatus(s.lg, err)
}

// applyEventProto returns e as an ApplyResponse with its one-line message.
func applyEventProto(e node.ApplyEvent) *adminv1.ApplyResponse {
	out := &adminv1.ApplyResponse{Event: e.Kind}
	switch e.Kind {
	case node.ApplyPlanned:
		out.Action = actionProto(e.Action)
		out.Message = "planned " + e.Action.String()
	case node.ApplyDone:
		out.ShardId = uint64(e.Shard)
		out.Message = fmt.Sprintf("done shard %d", e.Shard)
	case node.ApplyInFlight:
		out.InFlight = uint32(e.InFlight)
		out.Message = fmt.Sprintf("in flight %d", e.InFlight)
	}
	return out
}

func actionProto(a placement.Action) *adminv1.Action {
	return &adminv1.Action{Kind: a.Kind.String(), ShardId: uint64(a.Shard), ReplicaId: a.Replica, Node: a.Node, Reason: a.Reason}
}

// Pause implements adminv1.AdminServer.
func (s *adminService) Pause(ctx context.Context, _ *adminv1.PauseRequest) (*adminv1.PauseResponse, error) {
	if err := s.admin.PauseRebalance(ctx); err != nil {
		return nil, toStatus(s.lg, err)
	}
	return &adminv1.PauseResponse{}, nil
}

// Resume implements adminv1.AdminServer.
func (s *adminService) Resume(ctx context.Context, _ *adminv1.ResumeRequest) (*adminv1.ResumeResponse, error) {
	if err := s.admin.ResumeRebalance(ctx); err != nil {
		return nil, toStatus(s.lg, err)
	}
	return &adminv1.ResumeResponse{}, nil
}

// Status implements adminv1.AdminServer.
func (s *adminService) Status(ctx context.Context, _ *adminv1.StatusRequest) (*adminv1.StatusResponse, error) {
	st, err := s.admin.Moves(ctx)
	if err != nil {
		return nil, toStatus(s.lg, err)
	}
	out := &adminv1.StatusResponse{Paused: st.Paused}
	for _, n := range st.Nodes {
		out.Nodes = append(out.Nodes, &adminv1.NodeState{Name: n.Name, State: n.State.String()})
	}
	for _, m := range st.Moves {
		out.Moves = append(out.Moves, &adminv1.Move{ShardId: uint64(m.Shard), Kind: m.Kind, ReplicaId: m.Replica, Node: m.Node,
			Step: m.Step, Started: timestamppb.New(m.Started), Reason: m.Reason})
	}
	return out, nil
}
