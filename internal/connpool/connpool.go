// Package connpool keeps one shared gRPC client connection per address,
// for the node-to-node client (peer) and the Go client (client).
package connpool

import (
	"errors"
	"sync"

	"google.golang.org/grpc"
)

// ErrClosed is returned by Conn after Close.
var ErrClosed = errors.New("connpool: closed")

// Pool hands out shared gRPC connections, one per address. It is safe for
// concurrent use. Connections are created lazily and reconnect on their
// own (gRPC does both), so a Pool never dials synchronously and a
// connection stays in it until Close; an idle one releases its transport
// after gRPC's idle timeout.
type Pool struct {
	opts []grpc.DialOption

	mu     sync.Mutex // guards conns and closed
	conns  map[string]*grpc.ClientConn
	closed bool
}

// New returns a pool whose connections use opts (transport credentials
// among them).
func New(opts ...grpc.DialOption) *Pool {
	return &Pool{opts: opts, conns: map[string]*grpc.ClientConn{}}
}

// Conn returns the connection to addr (HOST:PORT), creating it on first use.
// It fails only when addr cannot be parsed as a target or after Close
// (ErrClosed).
func (p *Pool) Conn(addr string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	if c, ok := p.conns[addr]; ok {
		return c, nil
	}
	c, err := grpc.NewClient("passthrough:///"+addr, p.opts...)
	if err != nil {
		return nil, err
	}
	p.conns[addr] = c
	return c, nil
}

// Close closes every connection; calls in flight fail with Canceled. Later
// calls to Conn fail with ErrClosed. Close is idempotent.
func (p *Pool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	var errs []error
	for _, c := range p.conns {
		errs = append(errs, c.Close())
	}
	p.conns = nil
	return errors.Join(errs...)
}
