// Command kvctl is the command-line client of a cave cluster. It talks
// gRPC to any node (--endpoints), with mutual TLS (--cacert, --cert,
// --key) and a bearer token (--token) when the cluster requires them.
//
//	kvctl put app/greeting hello
//	kvctl get app/greeting
//	kvctl put --secret app/db-password - < password.txt
//	kvctl get --secret app/db-password
//	kvctl list app/
//	kvctl watch app/
//	kvctl -o json shards
//	kvctl secrets rotate
//	kvctl auth token issue --ttl 1h alice
//	kvctl bench put --clients 64 --duration 15s
//	kvctl status
//	kvctl node drain node-3
//
// Flags of a command come before its arguments.
//
// Every flag can also be set by its KVCTL_* variable (KVCTL_ENDPOINTS,
// KVCTL_TOKEN, ...). On error kvctl prints the server's status code and
// message to stderr and exits with status 1; a malformed command line
// (wrong arguments, a flag it cannot parse) exits with status 2.
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

// Set by the linker: -X main.version=... -X main.commit=... -X main.date=...
var (
	version = "dev"
	commit  = "unknown"
	date    = "unknown"
)

func main() {
	if err := newApp().Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "kvctl:", err)
		if errors.As(err, new(usageError)) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// usageError is a malformed command line: kvctl exits with status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// asUsageError is every command's OnUsageError: a flag that does not
// parse is a usage error.
func asUsageError(_ *cli.Context, err error, _ bool) error { return usageError{err.Error()} }

// withUsageErrors sets asUsageError on cmds and their subcommands.
func withUsageErrors(cmds []*cli.Command) []*cli.Command {
	for _, c := range cmds {
		c.OnUsageError = asUsageError
		withUsageErrors(c.Subcommands)
	}
	return cmds
}

// env returns the environment variable that sets flag name.
func env(name string) []string {
	return []string{"KVCTL_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))}
}

func newApp() *cli.App {
	app := &cli.App{
		Name:    "kvctl",
		Usage:   "command-line client of a cave cluster",
		Version: version,
		Flags: []cli.Flag{
			// A word in backquotes is the placeholder --help shows for the value.
			&cli.StringFlag{Name: "endpoints", Value: "127.0.0.1:8741", Usage: "gRPC `HOST:PORT` of cluster nodes, comma-separated; tried in order", EnvVars: env("endpoints")},
			&cli.StringFlag{Name: "cacert", Usage: "PEM `FILE` of the CA that signed the nodes' certificates; enables TLS", EnvVars: env("cacert")},
			&cli.StringFlag{Name: "cert", Usage: "PEM `FILE` of the client certificate (made by: cave certs client); enables TLS", EnvVars: env("cert")},
			&cli.StringFlag{Name: "key", Usage: "PEM `FILE` of the client certificate's private key", EnvVars: env("key")},
			&cli.StringFlag{Name: "token", Usage: "bearer `TOKEN` issued by the auth API, sent as authorization metadata; with TLS the gRPC port still needs a client certificate (--cert, --key)", EnvVars: env("token")},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "table", Usage: "output `FORMAT`: table or json", EnvVars: env("output")},
			&cli.DurationFlag{Name: "timeout", Value: 10 * time.Second, Usage: "deadline of each command, a positive `DURATION`", EnvVars: env("timeout")},
		},
		OnUsageError: asUsageError,
		Commands: withUsageErrors(append([]*cli.Command{
			{
				Name: "get", Usage: "print the value of a key", ArgsUsage: "KEY",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "secret", Usage: "decrypt a value written with --secret"},
					&cli.BoolFlag{Name: "stale", Usage: "read from any replica, possibly missing recent writes"},
				},
				Action: withClient(get),
			},
			{
				Name: "put", Usage: "write a key; VALUE - reads the value from stdin", ArgsUsage: "KEY VALUE",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "secret", Usage: "encrypt the value (AES-256-GCM) before it is stored"},
					&cli.Int64Flag{Name: "prev-revision", Usage: "write only if the key's mod_revision is N (0: only if absent)"},
				},
				Action: withClient(put),
			},
			{
				Name: "del", Usage: "delete a key", ArgsUsage: "KEY",
				Flags: []cli.Flag{
					&cli.Int64Flag{Name: "prev-revision", Usage: "delete only if the key's mod_revision is N"},
				},
				Action: withClient(del),
			},
			{
				Name: "list", Usage: "list the keys under a prefix (all pages)", ArgsUsage: "[PREFIX]",
				Flags: []cli.Flag{
					&cli.IntFlag{Name: "page-size", Usage: "keys per request; 0: the server's default"},
				},
				Action: withClient(list),
			},
			watchCommand(),
			{Name: "members", Usage: "list the cluster's nodes", Action: withClient(members)},
			{Name: "shards", Usage: "list the shards, their replicas and leaders", Action: withClient(shards)},
			{
				Name:  "secrets",
				Usage: "manage the keyring of secret values",
				Subcommands: []*cli.Command{
					{Name: "rotate", Usage: "make a new data key current for new secret writes", Action: withClient(secretsRotate)},
					{Name: "status", Usage: "print the current data key id and the number of keys", Action: withClient(secretsStatus)},
				},
			},
			authCommand(),
			benchCommand(),
			{
				Name:  "version",
				Usage: "print kvctl's version",
				Action: func(c *cli.Context) error {
					_, err := fmt.Fprintf(c.App.Writer, "kvctl %s (commit %s, built %s, %s)\n", version, commit, date, runtime.Version())
					return err
				},
			},
		}, adminCommands()...)),
	}
	refuseUnknownCommands(app.Commands)
	app.Action = unknownCommand
	return app
}

// refuseUnknownCommands makes every command of cmds that only groups
// subcommands (secrets, auth, ...) refuse an unknown one as the app does.
func refuseUnknownCommands(cmds []*cli.Command) {
	for _, cmd := range cmds {
		if len(cmd.Subcommands) > 0 {
			if cmd.Action == nil {
				cmd.Action = unknownCommand
			}
			refuseUnknownCommands(cmd.Subcommands)
		}
	}
}

// unknownCommand is the action of the app and of each group of
// subcommands: without an argument it shows the help (exit status 0);
// an argument that names no command is an error (exit status 1).
func unknownCommand(c *cli.Context) error {
	if !c.Args().Present() {
		return cli.ShowSubcommandHelp(c)
	}
	name := c.App.Name
	if c.Command != nil && c.Command.HelpName != "" {
		name = c.Command.HelpName
	}
	return fmt.Errorf("unknown command %q; see %s --help", c.Args().First(), name)
}
