// Package peer is the node-to-node gRPC protocol: the Data service (the
// router's forwarding hop to a replica of a shard) and the Control service
// (starting replicas, joining), their server side over the local node,
// their client side (Client) over a Pool of shared connections, and the
// interceptor that admits only cluster nodes. It sits beside node: node
// calls other nodes through an interface it defines (node.Peers), which
// Client implements, and the server side runs calls on the local *node.Node.
//
// The error mapping between node's sentinels and gRPC codes lives in one
// place (status.go), so a "not applied" error on one node stays "not
// applied" on the node that forwarded the call.
package peer

import (
	"errors"
	"sync"

	"google.golang.org/grpc"
)

// ErrClosed is returned by Conn after Close.
var ErrClosed = errors.New("peer: pool closed")

// Pool hands out shared gRPC connections to peers, one per address. It is
// safe for concurrent use. Connections are created lazily and reconnect on
// their own; a Pool never dials synchronously.
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
// It fails only when addr cannot be parsed as a target or after Close.
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

// Close closes every connection. Later calls to Conn fail with ErrClosed.
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
