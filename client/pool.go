package client

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"

	"github.com/cavedb/cave/internal/connpool"
)

// pool holds one shared gRPC connection per node address
// (connpool.Pool), each with sentHandler installed.
type pool struct{ conns *connpool.Pool }

func newPool(opts []grpc.DialOption) *pool {
	return &pool{conns: connpool.New(append(opts, grpc.WithStatsHandler(sentHandler{}))...)}
}

// get returns the connection to addr, creating it on first use. It fails
// with ErrClosed after close, and when addr is not a valid target.
func (p *pool) get(addr string) (*grpc.ClientConn, error) {
	c, err := p.conns.Conn(addr)
	switch {
	case errors.Is(err, connpool.ErrClosed):
		return nil, ErrClosed
	case err != nil:
		return nil, fmt.Errorf("client: connect to %q: %w", addr, err)
	}
	return c, nil
}

// close closes every connection; calls in flight fail with Canceled.
func (p *pool) close() error { return p.conns.Close() }

// sentFlag records whether an attempt's request reached a connection. An
// attempt whose request never did cannot have been applied anywhere.
type sentFlag struct{ sent atomic.Bool }

type sentKey struct{}

// withSentFlag returns ctx carrying a new flag for sentHandler to set.
func withSentFlag(ctx context.Context) (context.Context, *sentFlag) {
	f := &sentFlag{}
	return context.WithValue(ctx, sentKey{}, f), f
}

// sentHandler is a stats.Handler that sets the call's sentFlag when gRPC
// hands the request's headers to a connection (stats.OutHeader): from then
// on the server may have received it.
type sentHandler struct{}

var _ stats.Handler = sentHandler{}

func (sentHandler) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }

func (sentHandler) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if _, ok := s.(*stats.OutHeader); ok {
		if f, ok := ctx.Value(sentKey{}).(*sentFlag); ok {
			f.sent.Store(true)
		}
	}
}

func (sentHandler) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }

func (sentHandler) HandleConn(context.Context, stats.ConnStats) {}
