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
	"google.golang.org/grpc"

	"github.com/cavedb/cave/internal/connpool"
)

// Pool holds the node's connections to other nodes, one per gRPC address.
type Pool = connpool.Pool

// New returns a pool whose connections use opts (TransportCredentials
// among them).
func New(opts ...grpc.DialOption) *Pool { return connpool.New(opts...) }
