package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// recovery turns a panic in a handler into an Internal error for that one
// caller, logged with its stack, so that a bug reached by one request
// cannot take the node down. Clients see "internal error" and nothing of
// the panic. It is the outermost interceptor of every gRPC call and of
// every REST call (through localConn or kvHTTP).
type recovery struct{ lg *slog.Logger }

// unary is the grpc.UnaryServerInterceptor.
func (r recovery) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	defer r.recover(info.FullMethod, &err)
	return handler(ctx, req)
}

// stream is the grpc.StreamServerInterceptor.
func (r recovery) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	defer r.recover(info.FullMethod, &err)
	return handler(srv, ss)
}

// recover, deferred, replaces *err with Internal after a panic.
func (r recovery) recover(method string, err *error) {
	if p := recover(); p != nil {
		r.lg.Error("panic in a request handler; the request failed, the node keeps serving",
			"method", method, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		*err = status.Error(codes.Internal, "internal error")
	}
}

// then returns an interceptor that runs r around next.
func (r recovery) then(next grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		return r.unary(ctx, req, info, func(ctx context.Context, req any) (any, error) {
			return next(ctx, req, info, handler)
		})
	}
}
