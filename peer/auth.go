package peer

import (
	"context"
	"crypto/x509"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	peerv1 "github.com/cavedb/cave/proto/cave/peer/v1"
)

// nodeOnly reports whether the full gRPC method name belongs to the Data
// or the Control service.
func nodeOnly(method string) bool {
	return strings.HasPrefix(method, "/"+peerv1.Data_ServiceDesc.ServiceName+"/") ||
		strings.HasPrefix(method, "/"+peerv1.Control_ServiceDesc.ServiceName+"/")
}

// NodeOnlyUnary returns a unary server interceptor that admits calls to the
// Data and Control services only from other nodes, and passes every other call through.
// Install it on a gRPC server that verifies client certificates against
// the cluster CA (tls.RequireAndVerifyClientCert).
//
// A node certificate is told apart from a client certificate by its
// extended key usage: `cave certs node` (pki.KindNode) issues certificates
// for server and client authentication, because nodes serve every port and
// dial each other, while client certificates (pki.KindClient) allow client
// authentication only. A Data or Control call whose verified certificate does not allow
// server authentication, or that comes without a verified certificate, fails
// with PermissionDenied before it reaches the service.
func NodeOnlyUnary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if nodeOnly(info.FullMethod) {
			if err := checkNodeCaller(ctx); err != nil {
				return nil, err
			}
		}
		return handler(ctx, req)
	}
}

// NodeOnlyStream is NodeOnlyUnary for streaming calls.
func NodeOnlyStream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if nodeOnly(info.FullMethod) {
			if err := checkNodeCaller(ss.Context()); err != nil {
				return err
			}
		}
		return handler(srv, ss)
	}
}

// checkNodeCaller returns nil when the caller on ctx presented a verified
// node certificate, and a PermissionDenied status otherwise.
func checkNodeCaller(ctx context.Context) error {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return status.Error(codes.PermissionDenied, "the node-to-node services are for cluster nodes only: no connection information")
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return status.Error(codes.PermissionDenied, "the node-to-node services are for cluster nodes only: no verified certificate")
	}
	leaf := ti.State.VerifiedChains[0][0]
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		return status.Errorf(codes.PermissionDenied, "the node-to-node services are for cluster nodes only: %q has a client certificate, not a node certificate", leaf.Subject.CommonName)
	}
	return nil
}
