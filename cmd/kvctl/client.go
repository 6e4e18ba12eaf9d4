package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/urfave/cli/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	kvclient "github.com/cavedb/cave/client"
)

// maxMessageBytes bounds the messages kvctl sends and receives: the
// server's largest --max-value-bytes (64 MiB) with room for the envelope.
const maxMessageBytes = 64<<20 + 64<<10

// client serves the commands. The key commands (get, put, del, list) use
// the shard-aware client of package client, created at their first call:
// it sends each request to the node that leads the key's shard. The other
// commands hold one connection per endpoint; their calls go to the first
// endpoint and move to the next only when one answers Unavailable, which
// the API defines as "not applied", so moving on never repeats a write.
type client struct {
	conns  []*grpc.ClientConn
	output string
	cfg    kvclient.Config  // of kv
	kv     *kvclient.Client // nil until kvClient is first called
}

// action is a command body run with a connected client under the
// --timeout deadline.
type action func(ctx context.Context, c *cli.Context, cl *client) error

// withClient connects to --endpoints, runs a under --timeout and closes
// the connections.
func withClient(a action) cli.ActionFunc {
	return func(c *cli.Context) error {
		cl, err := dial(c)
		if err != nil {
			return err
		}
		defer cl.close()
		ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
		defer cancel()
		return a(ctx, c, cl)
	}
}

// dial validates the global flags and creates the connections; gRPC
// connects lazily, at the first call.
func dial(c *cli.Context) (*client, error) {
	out := c.String("output")
	if out != "table" && out != "json" {
		return nil, usageError{fmt.Sprintf("-o must be table or json, got %q", out)}
	}
	if d := c.Duration("timeout"); d <= 0 {
		return nil, fmt.Errorf("--timeout must be positive, got %s", d)
	}
	endpoints, err := splitList(c.String("endpoints"))
	if err != nil {
		return nil, fmt.Errorf("--endpoints: %w", err)
	}
	for _, e := range endpoints {
		if err := checkHostPort(e); err != nil {
			return nil, fmt.Errorf("--endpoints: %w", err)
		}
	}
	tlsCfg, err := tlsConfig(c.String("cacert"), c.String("cert"), c.String("key"))
	if err != nil {
		return nil, err
	}
	opts := dialOptions(c, tlsCfg)
	cl := &client{output: out, cfg: kvclient.DefaultConfig()}
	cl.cfg.Endpoints, cl.cfg.TLS, cl.cfg.Token, cl.cfg.MaxMessageBytes = endpoints, tlsCfg, c.String("token"), maxMessageBytes
	for _, e := range endpoints {
		conn, err := grpc.NewClient(e, opts...)
		if err != nil {
			cl.close()
			return nil, fmt.Errorf("--endpoints %q: %w", e, err)
		}
		cl.conns = append(cl.conns, conn)
	}
	return cl, nil
}

// errNoHostPort is returned by splitList for a list without any entry.
var errNoHostPort = errors.New("must name at least one HOST:PORT")

// splitList returns the non-empty, trimmed entries of a comma-separated
// list, or errNoHostPort when there are none.
func splitList(s string) ([]string, error) {
	var out []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		return nil, errNoHostPort
	}
	return out, nil
}

// checkHostPort returns an error unless e is HOST:PORT with a host and a
// port in [1, 65535].
func checkHostPort(e string) error {
	host, port, err := net.SplitHostPort(e)
	n, perr := strconv.Atoi(port)
	if err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q is not HOST:PORT (a host and a port in [1, 65535])", e)
	}
	return nil
}

// dialOptions returns the gRPC options every kvctl connection uses: TLS
// with tlsCfg (the TLS flags' tlsConfig; nil dials in plaintext, as dev
// mode serves), the message size limits and, with --token, the bearer
// token on every call.
func dialOptions(c *cli.Context, tlsCfg *tls.Config) []grpc.DialOption {
	creds := insecure.NewCredentials()
	if tlsCfg != nil {
		creds = credentials.NewTLS(tlsCfg)
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessageBytes), grpc.MaxCallSendMsgSize(maxMessageBytes)),
	}
	if tok := c.String("token"); tok != "" {
		opts = append(opts, grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			return invoker(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok), method, req, reply, cc, opts...)
		}))
	}
	return opts
}

// tlsConfig returns the client TLS configuration of the TLS flags, or nil
// when none is set: the server is verified against --cacert (the system
// roots without it), and --cert and --key, which go together, are the
// client certificate.
func tlsConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	if caFile == "" && certFile == "" && keyFile == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--cacert: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--cacert %s holds no PEM certificate", caFile)
		}
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("--cert and --key go together: give both or neither")
	}
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("--cert/--key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// call runs f on each endpoint's connection in turn until one does not
// answer Unavailable, and returns f's last error as a message with the
// status code, as the server sent it.
func (cl *client) call(ctx context.Context, f func(conn *grpc.ClientConn) error) error {
	var err error
	for _, conn := range cl.conns {
		if err = f(conn); status.Code(err) != codes.Unavailable {
			break
		}
	}
	return statusError(ctx, err)
}

// kvClient returns the shard-aware client, creating it under ctx on the
// first call: it learns the cluster's routing from --endpoints.
func (cl *client) kvClient(ctx context.Context) (*kvclient.Client, error) {
	if cl.kv == nil {
		kv, err := kvclient.New(ctx, cl.cfg)
		if err != nil {
			return nil, statusError(ctx, err)
		}
		cl.kv = kv
	}
	return cl.kv, nil
}

// statusError returns err, if any, as a message with the status code, as
// the server sent it, noting --timeout when the deadline ran out. Errors
// of the gRPC transport, not of cave, get cave's words: a request over
// the node's message limit (a value over --max-value-bytes), a connection
// that a TLS node closes on a plaintext client, and a host that does not
// resolve.
func statusError(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	st := status.Convert(err)
	msg := st.Message()
	var got, limit int
	switch {
	case ctx.Err() != nil && st.Code() == codes.DeadlineExceeded:
		msg += " (--timeout)"
	case st.Code() == codes.ResourceExhausted && tooLarge(msg, &got, &limit):
		msg = fmt.Sprintf("value is larger than the node's limit (--max-value-bytes): the request is %d bytes, the node takes requests of up to %d", got, limit)
	case st.Code() == codes.Unavailable && strings.Contains(msg, "error reading server preface"):
		msg += "; the node closed the connection before gRPC started: if it serves TLS, pass --cacert, --cert and --key"
	case st.Code() == codes.Unavailable && (strings.Contains(msg, "produced zero addresses") || strings.Contains(msg, "no such host")):
		msg += "; the host of an --endpoints entry has no address (DNS)"
	}
	return fmt.Errorf("%s: %s", st.Code(), msg)
}

// tooLarge reports whether msg is gRPC's refusal of a message over the
// receiver's limit, and sets got and limit to its sizes.
func tooLarge(msg string, got, limit *int) bool {
	n, err := fmt.Sscanf(msg, "grpc: received message larger than max (%d vs. %d)", got, limit)
	return err == nil && n == 2
}

// checkUTF8 refuses, as the server would, a key or prefix (what) that
// is not valid UTF-8, which gRPC could not even encode.
func checkUTF8(what, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s: %s must be valid UTF-8", codes.InvalidArgument, what)
	}
	return nil
}

func (cl *client) close() {
	for _, c := range cl.conns {
		c.Close()
	}
	if cl.kv != nil {
		cl.kv.Close()
	}
}
