package gateway

import (
	"bytes"
	"context"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// panicking is a health service whose Check panics, as a bug reached by
// one request would.
type panicking struct {
	healthpb.UnimplementedHealthServer
}

func (panicking) Check(context.Context, *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	panic("a bug reached by one request")
}

// TestRecovery checks that a panicking handler fails only its own call,
// with Internal and no detail, over the REST channel (localConn) and
// through the interceptor the gRPC server runs, and that the panic is
// logged with its stack.
func TestRecovery(t *testing.T) {
	var logs bytes.Buffer
	rec := recovery{lg: slog.New(slog.NewTextHandler(&logs, nil))}
	pass := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		return h(ctx, req)
	}
	c := &localConn{intercept: rec.then(pass), methods: map[string]localMethod{}}
	c.register(grpc.NewServer(), &healthpb.Health_ServiceDesc, panicking{})

	for i := range 2 { // the node keeps serving after the first panic
		_, err := healthpb.NewHealthClient(c).Check(context.Background(), &healthpb.HealthCheckRequest{})
		assert.Equal(t, codes.Internal, status.Code(err), "call %d: %v", i, err)
		assert.Equal(t, "internal error", status.Convert(err).Message(), "the client learns nothing of the panic")
	}
	_, err := rec.unary(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/x/Y"},
		func(context.Context, any) (any, error) { panic("boom") })
	assert.Equal(t, codes.Internal, status.Code(err))
	assert.Contains(t, logs.String(), "panic in a request handler")
	assert.Contains(t, logs.String(), "method=/grpc.health.v1.Health/Check")
	assert.Contains(t, logs.String(), "goroutine", "the stack is logged")
}
