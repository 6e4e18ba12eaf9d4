package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	kvclient "github.com/cavedb/cave/client"
	clusterv1 "github.com/cavedb/cave/proto/cave/cluster/v1"
	kvv1 "github.com/cavedb/cave/proto/cave/kv/v1"
	secretsv1 "github.com/cavedb/cave/proto/cave/secrets/v1"
)

// args returns the command's lo to hi positional arguments, or a usage
// error.
func args(c *cli.Context, lo, hi int) ([]string, error) {
	a := c.Args().Slice()
	if len(a) < lo || len(a) > hi {
		return nil, usageError{"usage: " + usage(c)}
	}
	return a, nil
}

// usage returns the command line of c's command, "kvctl auth grant ROLE
// PREFIX ACTION", with "[options]" before the arguments when the command
// has flags of its own: they must come before the arguments.
func usage(c *cli.Context) string {
	parts := []string{c.Command.HelpName}
	for _, f := range c.Command.Flags {
		if f != cli.HelpFlag {
			parts = append(parts, "[options]")
			break
		}
	}
	if c.Command.ArgsUsage != "" {
		parts = append(parts, c.Command.ArgsUsage)
	}
	return strings.Join(parts, " ")
}

// printJSON writes m as indented JSON with the proto field names, the form
// the REST API uses. protojson's own layout varies on purpose, so the
// output is re-indented to stay stable.
func printJSON(w io.Writer, m proto.Message) error {
	b, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(m)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err = out.WriteTo(w)
	return err
}

// table writes rows of tab-separated cells as aligned columns.
func table(w io.Writer, rows ...[]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// get prints the value as its raw bytes (table) or the GetResponse (json).
func get(ctx context.Context, c *cli.Context, cl *client) error {
	a, err := args(c, 1, 1)
	if err != nil {
		return err
	}
	if err := checkUTF8("key", a[0]); err != nil {
		return err
	}
	var opts []kvclient.GetOption
	if c.Bool("secret") {
		opts = append(opts, kvclient.Secret())
	}
	if c.Bool("stale") {
		opts = append(opts, kvclient.Stale())
	}
	kv, err := cl.kvClient(ctx)
	if err != nil {
		return err
	}
	got, err := kv.Get(ctx, a[0], opts...)
	if err != nil {
		return statusError(ctx, err)
	}
	resp := &kvv1.GetResponse{Key: got.Key, Value: got.Value, CreateRevision: got.CreateRevision,
		ModRevision: got.ModRevision, Version: got.Version}
	if cl.output == "json" {
		return printJSON(c.App.Writer, resp)
	}
	_, err = c.App.Writer.Write(resp.Value)
	return err
}

// maxStdinBytes bounds a value read from stdin; the server's limit is
// lower unless raised.
const maxStdinBytes = 64 << 20

// put writes KEY=VALUE; VALUE "-" is read from stdin.
func put(ctx context.Context, c *cli.Context, cl *client) error {
	a, err := args(c, 2, 2)
	if err != nil {
		return err
	}
	if err := checkUTF8("key", a[0]); err != nil {
		return err
	}
	value := []byte(a[1])
	if a[1] == "-" {
		if value, err = io.ReadAll(io.LimitReader(c.App.Reader, maxStdinBytes+1)); err != nil {
			return fmt.Errorf("reading the value from stdin: %w", err)
		}
		if len(value) > maxStdinBytes {
			return fmt.Errorf("the value on stdin is larger than %d bytes", maxStdinBytes)
		}
	}
	var opts []kvclient.PutOption
	if c.Bool("secret") {
		opts = append(opts, kvclient.Secret())
	}
	if c.IsSet("prev-revision") {
		opts = append(opts, kvclient.PrevRevision(c.Int64("prev-revision")))
	}
	kv, err := cl.kvClient(ctx)
	if err != nil {
		return err
	}
	rev, err := kv.Put(ctx, a[0], value, opts...)
	if err != nil {
		return statusError(ctx, err)
	}
	resp := &kvv1.PutResponse{Key: a[0], Revision: rev}
	if cl.output == "json" {
		return printJSON(c.App.Writer, resp)
	}
	_, err = fmt.Fprintf(c.App.Writer, "OK revision %d\n", resp.Revision)
	return err
}

// del deletes a key; a missing key is NotFound.
func del(ctx context.Context, c *cli.Context, cl *client) error {
	a, err := args(c, 1, 1)
	if err != nil {
		return err
	}
	if err := checkUTF8("key", a[0]); err != nil {
		return err
	}
	var opts []kvclient.DeleteOption
	if c.IsSet("prev-revision") {
		opts = append(opts, kvclient.PrevRevision(c.Int64("prev-revision")))
	}
	kv, err := cl.kvClient(ctx)
	if err != nil {
		return err
	}
	rev, err := kv.Delete(ctx, a[0], opts...)
	if err != nil {
		return statusError(ctx, err)
	}
	resp := &kvv1.DeleteResponse{Deleted: true, Revision: rev}
	if cl.output == "json" {
		return printJSON(c.App.Writer, resp)
	}
	_, err = fmt.Fprintf(c.App.Writer, "deleted at revision %d\n", resp.Revision)
	return err
}

// list prints every key under the prefix, following next_page_token.
func list(ctx context.Context, c *cli.Context, cl *client) error {
	a, err := args(c, 0, 1)
	if err != nil {
		return err
	}
	size := c.Int("page-size")
	if size < 0 || size > math.MaxInt32 {
		return fmt.Errorf("--page-size must be in [0, %d], got %d", math.MaxInt32, size)
	}
	prefix := ""
	if len(a) == 1 {
		prefix = a[0]
	}
	if err := checkUTF8("prefix", prefix); err != nil {
		return err
	}
	kv, err := cl.kvClient(ctx)
	if err != nil {
		return err
	}
	all := &kvv1.ListResponse{}
	token := ""
	for {
		page, err := kv.List(ctx, prefix, kvclient.Limit(int32(size)), kvclient.PageToken(token))
		if err != nil {
			return statusError(ctx, err)
		}
		for _, it := range page.Items {
			all.Items = append(all.Items, &kvv1.ListItem{Key: it.Key, ModRevision: it.ModRevision, Size: it.Size})
		}
		if page.NextPageToken == "" {
			break
		}
		if page.NextPageToken == token {
			return errors.New("the server returned the same page token twice")
		}
		token = page.NextPageToken
	}
	if cl.output == "json" {
		return printJSON(c.App.Writer, all)
	}
	rows := [][]string{{"KEY", "MOD_REVISION", "SIZE"}}
	for _, it := range all.Items {
		rows = append(rows, []string{it.Key, fmt.Sprint(it.ModRevision), fmt.Sprint(it.Size)})
	}
	return table(c.App.Writer, rows...)
}

// members prints the cluster's nodes.
func members(ctx context.Context, c *cli.Context, cl *client) error {
	var resp *clusterv1.MembersResponse
	if err := cl.call(ctx, func(conn *grpc.ClientConn) (err error) {
		resp, err = clusterv1.NewClusterClient(conn).Members(ctx, &clusterv1.MembersRequest{})
		return err
	}); err != nil {
		return err
	}
	if cl.output == "json" {
		return printJSON(c.App.Writer, resp)
	}
	rows := [][]string{{"NAME", "STATE", "HTTP", "GRPC", "RAFT", "GOSSIP"}}
	for _, m := range resp.Members {
		rows = append(rows, []string{m.Name, m.State, m.HttpAddr, m.GrpcAddr, m.RaftAddr, m.GossipAddr})
	}
	return table(c.App.Writer, rows...)
}

// shards prints every shard with its leader and replicas.
func shards(ctx context.Context, c *cli.Context, cl *client) error {
	var resp *clusterv1.ShardsResponse
	if err := cl.call(ctx, func(conn *grpc.ClientConn) (err error) {
		resp, err = clusterv1.NewClusterClient(conn).Shards(ctx, &clusterv1.ShardsRequest{})
		return err
	}); err != nil {
		return err
	}
	if cl.output == "json" {
		return printJSON(c.App.Writer, resp)
	}
	rows := [][]string{{"ID", "LEADER", "KEYS", "BYTES", "REPLICAS"}}
	for _, s := range resp.Shards {
		reps := make([]string, len(s.Replicas))
		for i, r := range s.Replicas {
			reps[i] = fmt.Sprintf("%s(%d,%s)", r.Node, r.ReplicaId, r.Role)
		}
		leader := s.Leader
		if leader == "" {
			leader = "-"
		}
		rows = append(rows, []string{fmt.Sprint(s.Id), leader, fmt.Sprint(s.Keys), fmt.Sprint(s.Bytes), strings.Join(reps, " ")})
	}
	return table(c.App.Writer, rows...)
}

// secretsRotate rotates the cluster keyring.
func secretsRotate(ctx context.Context, c *cli.Context, cl *client) error {
	var resp *secretsv1.RotateResponse
	if err := cl.call(ctx, func(conn *grpc.ClientConn) (err error) {
		resp, err = secretsv1.NewSecretsClient(conn).Rotate(ctx, &secretsv1.RotateRequest{})
		return err
	}); err != nil {
		return err
	}
	if cl.output == "json" {
		return printJSON(c.App.Writer, resp)
	}
	_, err := fmt.Fprintf(c.App.Writer, "rotated: new writes use data key %d (%d keys)\n", resp.KeyId, resp.KeyCount)
	return err
}

// secretsStatus prints the keyring's current key and key count.
func secretsStatus(ctx context.Context, c *cli.Context, cl *client) error {
	var resp *secretsv1.StatusResponse
	if err := cl.call(ctx, func(conn *grpc.ClientConn) (err error) {
		resp, err = secretsv1.NewSecretsClient(conn).Status(ctx, &secretsv1.StatusRequest{})
		return err
	}); err != nil {
		return err
	}
	if cl.output == "json" {
		return printJSON(c.App.Writer, resp)
	}
	return table(c.App.Writer, []string{"KEY_ID", "KEY_COUNT"}, []string{fmt.Sprint(resp.KeyId), fmt.Sprint(resp.KeyCount)})
}
