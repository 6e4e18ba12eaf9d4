package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"

	adminv1 "github.com/cavedb/cave/proto/cave/admin/v1"
	clusterv1 "github.com/cavedb/cave/proto/cave/cluster/v1"
)

// The placement commands: status, rebalance, shard move, leader transfer,
// node drain and node remove, over cave.admin.v1.Admin.

// longTimeout is the default --timeout of the commands that wait for
// moves: a replica's catch-up takes as long as its snapshot.
const longTimeout = 10 * time.Minute

// adminCommands returns the placement commands.
func adminCommands() []*cli.Command {
	waitTimeout := &cli.DurationFlag{Name: "timeout", Value: longTimeout, Usage: "deadline of the command, waiting included"}
	return []*cli.Command{
		{Name: "status", Usage: "one screen of the cluster's placement: nodes, shards, moves, balance", Action: withClient(clusterStatus)},
		{
			Name:  "rebalance",
			Usage: "inspect, apply, pause and resume the automatic rebalancing",
			Subcommands: []*cli.Command{
				{Name: "plan", Usage: "print what the rebalancer would do now", Action: withClient(rebalancePlan)},
				{
					Name: "apply", Usage: "record the plan's moves (also while paused) and follow them until done",
					Flags: []cli.Flag{
						&cli.IntFlag{Name: "max-concurrent", Usage: "record at most N of the plan's actions; 0: all"},
						&cli.BoolFlag{Name: "dry-run", Usage: "only print the plan's actions"},
						waitTimeout,
					},
					Action: withClient(rebalanceApply),
				},
				{Name: "pause", Usage: "stop planning new moves; moves in flight finish", Action: withClient(rebalancePause)},
				{Name: "resume", Usage: "plan moves again", Action: withClient(rebalanceResume)},
			},
		},
		{
			Name:  "shard",
			Usage: "move shard replicas",
			Subcommands: []*cli.Command{{
				Name: "move", Usage: "move a shard's replica from one node to another", ArgsUsage: "SHARD",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "from", Usage: "the node whose replica moves"},
					&cli.StringFlag{Name: "to", Usage: "the alive node that gets it"},
				},
				Action: withClient(shardMove),
			}},
		},
		{
			Name:  "leader",
			Usage: "move shard leaderships",
			Subcommands: []*cli.Command{{
				Name: "transfer", Usage: "make a shard's voter on a node its leader", ArgsUsage: "SHARD",
				Flags:  []cli.Flag{&cli.StringFlag{Name: "to", Usage: "the node whose voter leads"}},
				Action: withClient(leaderTransfer),
			}},
		},
		{
			Name:  "node",
			Usage: "drain and remove nodes",
			Subcommands: []*cli.Command{
				{
					Name: "drain", Usage: "move every replica and leadership off a node", ArgsUsage: "NODE",
					Flags: []cli.Flag{
						&cli.BoolFlag{Name: "wait", Value: true, Usage: "wait until the node holds nothing, showing progress"},
						waitTimeout,
					},
					Action: withClient(nodeDrain),
				},
				{Name: "remove", Usage: "remove a drained node for good", ArgsUsage: "NODE", Action: withClient(nodeRemove)},
			},
		},
	}
}

// shardArg parses the SHARD argument.
func shardArg(s string) (uint64, error) {
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, usageError{fmt.Sprintf("SHARD must be a shard id (0 is the meta shard), got %q", s)}
	}
	return id, nil
}

// requiredFlag returns the value of flag name, or a usage error when it
// is empty.
func requiredFlag(c *cli.Context, name string) (string, error) {
	v := c.String(name)
	if v == "" {
		return "", usageError{fmt.Sprintf("--%s is required; usage: %s", name, usage(c))}
	}
	return v, nil
}

// adminCall runs f with an Admin client over cl.call.
func adminCall(ctx context.Context, cl *client, f func(adminv1.AdminClient) error) error {
	return cl.call(ctx, func(conn *grpc.ClientConn) error { return f(adminv1.NewAdminClient(conn)) })
}

// done prints msg in table mode, or an empty JSON object.
func done(c *cli.Context, cl *client, msg string) error {
	if cl.output == "json" {
		_, err := fmt.Fprintln(c.App.Writer, "{}")
		return err
	}
	_, err := fmt.Fprintln(c.App.Writer, msg)
	return err
}

func shardMove(ctx context.Context, c *cli.Context, cl *client) error {
	a, err := args(c, 1, 1)
	if err != nil {
		return err
	}
	id, err := shardArg(a[0])
	if err != nil {
		return err
	}
	from, err := requiredFlag(c, "from")
	if err != nil {
		return err
	}
	to, err := requiredFlag(c, "to")
	if err != nil {
		return err
	}
	var resp *adminv1.MoveReplicaResponse
	if err := adminCall(ctx, cl, func(ac adminv1.AdminClient) (err error) {
		resp, err = ac.MoveReplica(ctx, &adminv1.MoveReplicaRequest{ShardId: id, From: from, To: to})
		return err
	}); err != nil {
		return err
	}
	if cl.output == "json" {
		return printJSON(c.App.Writer, resp)
	}
	_, err = fmt.Fprintf(c.App.Writer, "moving shard %d from %s to %s (new replica %d); follow it with kvctl status\n", id, from, to, resp.ReplicaId)
	return err
}

func leaderTransfer(ctx context.Context, c *cli.Context, cl *client) error {
	a, err := args(c, 1, 1)
	if err != nil {
		return err
	}
	id, err := shardArg(a[0])
	if err != nil {
		return err
	}
	to, err := requiredFlag(c, "to")
	if err != nil {
		return err
	}
	if err := adminCall(ctx, cl, func(ac adminv1.AdminClient) error {
		_, err := ac.TransferLeader(ctx, &adminv1.TransferLeaderRequest{ShardId: id, To: to})
		return err
	}); err != nil {
		return err
	}
	return done(c, cl, fmt.Sprintf("leadership of shard %d is moving to %s", id, to))
}

func rebalancePause(ctx context.Context, c *cli.Context, cl *client) error {
	return rebalanceSwitch(ctx, c, cl, "rebalancing paused", func(ac adminv1.AdminClient) error {
		_, err := ac.Pause(ctx, &adminv1.PauseRequest{})
		return err
	})
}

func rebalanceResume(ctx context.Context, c *cli.Context, cl *client) error {
	return rebalanceSwitch(ctx, c, cl, "rebalancing resumed", func(ac adminv1.AdminClient) error {
		_, err := ac.Resume(ctx, &adminv1.ResumeRequest{})
		return err
	})
}

// rebalanceSwitch runs the argument-less admin call flip and reports msg.
func rebalanceSwitch(ctx context.Context, c *cli.Context, cl *client, msg string, flip func(adminv1.AdminClient) error) error {
	if _, err := args(c, 0, 0); err != nil {
		return err
	}
	if err := adminCall(ctx, cl, flip); err != nil {
		return err
	}
	return done(c, cl, msg)
}

func rebalancePlan(ctx context.Context, c *cli.Context, cl *client) error {
	if _, err := args(c, 0, 0); err != nil {
		return err
	}
	var resp *adminv1.PlanResponse
	if err := adminCall(ctx, cl, func(ac adminv1.AdminClient) (err error) {
		resp, err = ac.Plan(ctx, &adminv1.PlanRequest{})
		return err
	}); err != nil {
		return err
	}
	if cl.output == "json" {
		return printJSON(c.App.Writer, resp)
	}
	if len(resp.Actions) == 0 {
		_, err := fmt.Fprintln(c.App.Writer, "nothing to do: the cluster is balanced")
		return err
	}
	rows := [][]string{{"KIND", "SHARD", "REPLICA", "NODE", "REASON"}}
	for _, a := range resp.Actions {
		rows = append(rows, []string{a.Kind, fmt.Sprint(a.ShardId), dash(a.ReplicaId), a.Node, a.Reason})
	}
	return table(c.App.Writer, rows...)
}

// dash formats a replica id, "-" for none.
func dash(id uint64) string {
	if id == 0 {
		return "-"
	}
	return fmt.Sprint(id)
}

func rebalanceApply(ctx context.Context, c *cli.Context, cl *client) error {
	if _, err := args(c, 0, 0); err != nil {
		return err
	}
	limit := c.Int("max-concurrent")
	if limit < 0 || limit > 1<<16 {
		return usageError{fmt.Sprintf("--max-concurrent must be in [0, %d], got %d", 1<<16, limit)}
	}
	req := &adminv1.ApplyRequest{DryRun: c.Bool("dry-run"), MaxConcurrent: uint32(limit)}
	events := 0
	err := adminCall(ctx, cl, func(ac adminv1.AdminClient) error {
		stream, err := ac.Apply(ctx, req)
		if err != nil {
			return err
		}
		for {
			ev, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			events++
			if cl.output == "json" {
				err = printJSON(c.App.Writer, ev)
			} else {
				_, err = fmt.Fprintln(c.App.Writer, ev.Message)
			}
			if err != nil {
				return err
			}
		}
	})
	if err == nil && events == 0 && cl.output != "json" {
		_, err = fmt.Fprintln(c.App.Writer, "nothing to do: the cluster is balanced")
	}
	return err
}

func nodeRemove(ctx context.Context, c *cli.Context, cl *client) error {
	a, err := args(c, 1, 1)
	if err != nil {
		return err
	}
	if err := adminCall(ctx, cl, func(ac adminv1.AdminClient) error {
		_, err := ac.RemoveNode(ctx, &adminv1.RemoveNodeRequest{Node: a[0]})
		return err
	}); err != nil {
		return err
	}
	return done(c, cl, a[0]+" removed")
}

// drainPoll is how often node drain --wait reads the shards.
const drainPoll = time.Second

func nodeDrain(ctx context.Context, c *cli.Context, cl *client) error {
	a, err := args(c, 1, 1)
	if err != nil {
		return err
	}
	name := a[0]
	if err := adminCall(ctx, cl, func(ac adminv1.AdminClient) error {
		_, err := ac.DrainNode(ctx, &adminv1.DrainNodeRequest{Node: name})
		return err
	}); err != nil {
		return err
	}
	if !c.Bool("wait") {
		return done(c, cl, name+" draining; follow it with kvctl status")
	}
	last := ""
	for {
		shards, err := clusterShards(ctx, cl)
		if err != nil {
			return err
		}
		replicas, leaders := 0, 0
		for _, s := range shards.Shards {
			for _, r := range s.Replicas {
				if r.Node == name {
					replicas++
				}
			}
			if s.Leader == name {
				leaders++
			}
		}
		if replicas == 0 {
			return done(c, cl, fmt.Sprintf("%s: drained; remove it with kvctl node remove %s", name, name))
		}
		if line := fmt.Sprintf("%s: %d replicas, %d leaders left", name, replicas, leaders); line != last && cl.output != "json" {
			last = line
			if _, err := fmt.Fprintln(c.App.Writer, line); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s still holds %d replicas (--timeout); it keeps draining", name, replicas)
		case <-time.After(drainPoll):
		}
	}
}

func clusterShards(ctx context.Context, cl *client) (*clusterv1.ShardsResponse, error) {
	var resp *clusterv1.ShardsResponse
	err := cl.call(ctx, func(conn *grpc.ClientConn) (err error) {
		resp, err = clusterv1.NewClusterClient(conn).Shards(ctx, &clusterv1.ShardsRequest{})
		return err
	})
	return resp, err
}

// nodeCounts is what one node holds.
type nodeCounts struct{ replicas, leaders int }

// statusSummary is what kvctl status derives from the Admin and Cluster
// views.
type statusSummary struct {
	counts map[string]nodeCounts
	// underReplicated are the shards with fewer voters than the most any
	// data shard has, or with a replica on a node that is down, dead or
	// removed.
	underReplicated []uint64
	// replicaSpread and leaderSpread are max-min of the data replicas
	// and of the leaders per alive node.
	replicaSpread, leaderSpread int
}

// summarizeStatus computes the derived parts of kvctl status.
func summarizeStatus(st *adminv1.StatusResponse, sh *clusterv1.ShardsResponse) statusSummary {
	out := statusSummary{counts: map[string]nodeCounts{}}
	state := map[string]string{}
	for _, n := range st.Nodes {
		state[n.Name] = n.State
	}
	want := 0
	voters := func(s *clusterv1.Shard) int {
		v := 0
		for _, r := range s.Replicas {
			if r.Role == "voter" {
				v++
			}
		}
		return v
	}
	for _, s := range sh.Shards {
		if s.Id != 0 {
			want = max(want, voters(s))
		}
	}
	for _, s := range sh.Shards {
		under := s.Id != 0 && voters(s) < want
		for _, r := range s.Replicas {
			nc := out.counts[r.Node]
			if s.Id != 0 {
				nc.replicas++
			}
			if s.Leader == r.Node {
				nc.leaders++
			}
			out.counts[r.Node] = nc
			if ns := state[r.Node]; ns != "alive" && ns != "draining" {
				under = true
			}
		}
		if under {
			out.underReplicated = append(out.underReplicated, s.Id)
		}
	}
	var reps, leads []int
	for _, n := range st.Nodes {
		if n.State == "alive" {
			reps = append(reps, out.counts[n.Name].replicas)
			leads = append(leads, out.counts[n.Name].leaders)
		}
	}
	if len(reps) > 0 {
		out.replicaSpread = slices.Max(reps) - slices.Min(reps)
		out.leaderSpread = slices.Max(leads) - slices.Min(leads)
	}
	return out
}

func clusterStatus(ctx context.Context, c *cli.Context, cl *client) error {
	if _, err := args(c, 0, 0); err != nil {
		return err
	}
	var st *adminv1.StatusResponse
	if err := adminCall(ctx, cl, func(ac adminv1.AdminClient) (err error) {
		st, err = ac.Status(ctx, &adminv1.StatusRequest{})
		return err
	}); err != nil {
		return err
	}
	sh, err := clusterShards(ctx, cl)
	if err != nil {
		return err
	}
	if cl.output == "json" {
		return printStatusJSON(c.App.Writer, st, sh)
	}
	sum := summarizeStatus(st, sh)
	w := c.App.Writer
	rows := [][]string{{"NODE", "STATE", "REPLICAS", "LEADERS"}}
	for _, n := range st.Nodes {
		rows = append(rows, []string{n.Name, n.State, fmt.Sprint(sum.counts[n.Name].replicas), fmt.Sprint(sum.counts[n.Name].leaders)})
	}
	if err := table(w, rows...); err != nil {
		return err
	}
	rows = [][]string{{"", "SHARD", "LEADER", "REPLICAS"}}
	for _, s := range sh.Shards {
		reps := make([]string, len(s.Replicas))
		for i, r := range s.Replicas {
			reps[i] = r.Node
			if r.Role != "voter" {
				reps[i] += "(" + r.Role + ")"
			}
		}
		leader := s.Leader
		if leader == "" {
			leader = "-"
		}
		rows = append(rows, []string{"", fmt.Sprint(s.Id), leader, strings.Join(reps, " ")})
	}
	fmt.Fprintln(w)
	if err := table(w, rows...); err != nil {
		return err
	}
	fmt.Fprintln(w)
	under := "none"
	if len(sum.underReplicated) > 0 {
		ids := make([]string, len(sum.underReplicated))
		for i, id := range sum.underReplicated {
			ids[i] = fmt.Sprint(id)
		}
		under = strings.Join(ids, " ")
	}
	rebalancing := "on"
	if st.Paused {
		rebalancing = "paused"
	}
	fmt.Fprintf(w, "under-replicated shards: %s\n", under)
	fmt.Fprintf(w, "imbalance (max-min per alive node): replicas %d, leaders %d\n", sum.replicaSpread, sum.leaderSpread)
	fmt.Fprintf(w, "rebalancing: %s\n", rebalancing)
	fmt.Fprintf(w, "moves in flight: %d\n", len(st.Moves))
	if len(st.Moves) == 0 {
		return nil
	}
	rows = [][]string{{"", "SHARD", "KIND", "REPLICA", "NODE", "STEP", "AGE", "REASON"}}
	for _, m := range st.Moves {
		age := time.Since(m.Started.AsTime()).Round(time.Second)
		rows = append(rows, []string{"", fmt.Sprint(m.ShardId), m.Kind, fmt.Sprint(m.ReplicaId), m.Node, m.Step, age.String(), m.Reason})
	}
	return table(w, rows...)
}

// printStatusJSON writes {"status": StatusResponse, "shards":
// ShardsResponse.shards} with the proto field names.
func printStatusJSON(w io.Writer, st *adminv1.StatusResponse, sh *clusterv1.ShardsResponse) error {
	opts := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}
	a, err := opts.Marshal(st)
	if err != nil {
		return err
	}
	b, err := opts.Marshal(sh)
	if err != nil {
		return err
	}
	out, err := json.MarshalIndent(map[string]json.RawMessage{"status": a, "shards": b}, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", out)
	return err
}
