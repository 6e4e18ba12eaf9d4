package gateway

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// localConn is the channel through which the REST API calls this node's
// gRPC services in process (the key routes call kvService through the same
// interceptor, kvhttp.go): grpc-gateway's client handlers
// (RegisterXHandlerClient) call Invoke, which runs the service's method
// handler with the same access-control interceptor the gRPC server runs.
// A service reachable over REST is therefore checked exactly like over
// gRPC, and there is no REST path around the check. Every service is
// registered through register, which adds it to the gRPC server and to
// this channel at once.
//
// Only unary methods are served. The map is filled while the Server is
// built and only read afterwards.
type localConn struct {
	intercept grpc.UnaryServerInterceptor
	methods   map[string]localMethod
}

// localMethod is one registered unary method and its implementation.
type localMethod struct {
	srv     any
	handler grpc.MethodHandler
}

var _ grpc.ClientConnInterface = (*localConn)(nil)

// register serves impl, which implements desc's service, on gs and on c.
func (c *localConn) register(gs *grpc.Server, desc *grpc.ServiceDesc, impl any) {
	gs.RegisterService(desc, impl)
	for _, m := range desc.Methods {
		c.methods["/"+desc.ServiceName+"/"+m.MethodName] = localMethod{srv: impl, handler: m.Handler}
	}
}

// Invoke calls method with args and fills reply. The call's metadata (the
// authorization header, which grpc-gateway forwards) becomes the
// handler's incoming metadata and leaves its outgoing metadata empty; headers and trailers the handler sets are
// handed to grpc.Header and grpc.Trailer call options.
func (c *localConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	m, ok := c.methods[method]
	if !ok {
		return status.Errorf(codes.Unimplemented, "method %s is not served", method)
	}
	in, ok1 := args.(proto.Message)
	out, ok2 := reply.(proto.Message)
	if !ok1 || !ok2 {
		return status.Errorf(codes.Internal, "method %s: arguments are not protobuf messages", method)
	}
	// As on a gRPC server, the handler sees the caller's metadata as
	// incoming and carries none out: calls it makes to other nodes must
	// not forward the client's credentials.
	md, _ := metadata.FromOutgoingContext(ctx)
	ctx = metadata.NewOutgoingContext(metadata.NewIncomingContext(ctx, md), nil)
	st := &localStream{method: method}
	ctx = grpc.NewContextWithServerTransportStream(ctx, st)
	dec := func(v any) error {
		msg, ok := v.(proto.Message)
		if !ok {
			return fmt.Errorf("gateway: %s: request is %T, not a protobuf message", method, v)
		}
		proto.Merge(msg, in)
		return nil
	}
	resp, err := m.handler(m.srv, ctx, dec, c.intercept)
	for _, o := range opts {
		switch o := o.(type) {
		case grpc.HeaderCallOption:
			*o.HeaderAddr = st.header
		case grpc.TrailerCallOption:
			*o.TrailerAddr = st.trailer
		}
	}
	if err != nil {
		return err
	}
	r, ok := resp.(proto.Message)
	if !ok {
		return status.Errorf(codes.Internal, "method %s: response is not a protobuf message", method)
	}
	proto.Merge(out, r)
	return nil
}

// NewStream refuses: no streaming method is served over REST.
func (c *localConn) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, status.Error(codes.Unimplemented, "streaming methods are not served over REST")
}

// localStream collects the headers and trailers a handler sets.
type localStream struct {
	method          string
	header, trailer metadata.MD
}

func (s *localStream) Method() string { return s.method }

func (s *localStream) SetHeader(md metadata.MD) error {
	s.header = metadata.Join(s.header, md)
	return nil
}

func (s *localStream) SendHeader(md metadata.MD) error { return s.SetHeader(md) }

func (s *localStream) SetTrailer(md metadata.MD) error {
	s.trailer = metadata.Join(s.trailer, md)
	return nil
}
