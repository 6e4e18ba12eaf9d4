package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/encoding/protojson"

	kvclient "github.com/cavedb/cave/client"
	kvv1 "github.com/cavedb/cave/proto/cave/kv/v1"
)

func watchCommand() *cli.Command {
	return &cli.Command{
		Name: "watch",
		Usage: "print the changes of the keys under PREFIX (\"\": every key) as they happen, until interrupted; " +
			"on exit the last resume token goes to stderr",
		ArgsUsage: "[PREFIX]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "from", Usage: "resume after the change that printed `TOKEN` (the token kvctl watch printed on exit); default: from now"},
			&cli.BoolFlag{Name: "exact", Usage: "watch the key PREFIX alone, not the keys under it"},
			&cli.BoolFlag{Name: "keys-only", Usage: "leave the values out"},
			&cli.BoolFlag{Name: "secret", Usage: "show the plaintext of values written with --secret"},
			&cli.DurationFlag{Name: "duration", Usage: "stop after this long; 0: until interrupted (Ctrl-C)"},
		},
		// Not withClient: --timeout bounds a request, and a watch runs on.
		Action: watch,
	}
}

// watch prints the watch's events, one line each (table) or one
// WatchResponse per line (json, progress notifications included), until
// SIGINT or SIGTERM, --duration or an error that ends the watch; the
// client resumes broken streams by itself. On exit it prints the last
// resume token it received to stderr.
func watch(c *cli.Context) error {
	a, err := args(c, 0, 1)
	if err != nil {
		return err
	}
	d := c.Duration("duration")
	if d < 0 {
		return usageError{fmt.Sprintf("--duration must be >= 0, got %s", d)}
	}
	target := ""
	if len(a) == 1 {
		target = a[0]
	}
	var opts []kvclient.WatchOption
	if c.Bool("exact") {
		if target == "" {
			return usageError{"--exact needs the KEY to watch"}
		}
		opts = append(opts, kvclient.Key())
	}
	if tok := c.String("from"); tok != "" {
		opts = append(opts, kvclient.FromToken(tok))
	}
	if c.Bool("keys-only") {
		opts = append(opts, kvclient.KeysOnly())
	}
	if c.Bool("secret") {
		opts = append(opts, kvclient.Secret())
	}
	cl, err := dial(c)
	if err != nil {
		return err
	}
	defer cl.close()
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	kv, err := cl.kvClient(ctx)
	if err != nil {
		return err
	}
	last := ""
	defer func() {
		if last != "" {
			fmt.Fprintf(c.App.ErrWriter, "resume token: %s\n", last)
		}
	}()
	for resp := range kv.Watch(ctx, target, opts...) {
		if err := resp.Err(); err != nil {
			return statusError(ctx, err)
		}
		if err := printWatch(c, cl.output, resp); err != nil {
			return err
		}
		last = resp.ResumeToken
	}
	return nil
}

// printWatch writes one response in the output format.
func printWatch(c *cli.Context, output string, resp kvclient.WatchResponse) error {
	w := c.App.Writer
	if output == "json" {
		m := &kvv1.WatchResponse{ResumeToken: resp.ResumeToken, ProgressNotify: resp.Progress}
		for _, e := range resp.Events {
			t := kvv1.EventType_EVENT_TYPE_PUT
			if e.Type == kvclient.EventDelete {
				t = kvv1.EventType_EVENT_TYPE_DELETE
			}
			m.Events = append(m.Events, &kvv1.Event{Type: t, Key: e.Key, Value: e.Value, ModRevision: e.ModRevision,
				CreateRevision: e.CreateRevision, PrevModRevision: e.PrevModRevision})
		}
		b, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(m)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	for _, e := range resp.Events {
		line := fmt.Sprintf("%s %s rev=%d", e.Type, e.Key, e.ModRevision)
		if e.Type == kvclient.EventPut && !c.Bool("keys-only") {
			line += " " + strconv.Quote(string(e.Value))
		}
		if _, err := fmt.Fprintln(w, line); err != nil {
			return err
		}
	}
	return nil
}
