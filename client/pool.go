package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"
)

// pool holds one shared gRPC connection per node address. gRPC connects
// lazily and reconnects on its own, so a connection stays in the pool for
// the client's lifetime; an idle one releases its transport after gRPC's
// idle timeout.
type pool struct {
	opts []grpc.DialOption

	mu     sync.Mutex // guards conns and closed
	conns  map[string]*grpc.ClientConn
	closed bool
}

func newPool(opts []grpc.DialOption) *pool {
	return &pool{opts: append(opts, grpc.WithStatsHandler(sentHandler{})), conns: map[string]*grpc.ClientConn{}}
}

// get returns the connection to addr, creating it on first use. It fails
// with ErrClosed after close, and when addr is not a valid target.
func (p *pool) get(addr string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	if c, ok := p.conns[addr]; ok {
		return c, nil
	}
	c, err := grpc.NewClient(addr, p.opts...)
	if err != nil {
		return nil, fmt.Errorf("client: connect to %q: %w", addr, err)
	}
	p.conns[addr] = c
	return c, nil
}

// close closes every connection; calls in flight fail with Canceled.
func (p *pool) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	var errs []error
	for _, c := range p.conns {
		errs = append(errs, c.Close())
	}
	p.conns = nil
	return errors.Join(errs...)
}

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
