package tlsconfig

import (
	"context"
	"crypto/tls"
	"net"

	"google.golang.org/grpc/credentials"
)

// Credentials returns gRPC transport credentials for a node, which both
// serves and dials. Serving, they behave as credentials.NewTLS over
// ServerConfig(clientAuth). Dialling, each handshake uses
// ClientConfig(host), with host taken from the address being dialled, so one
// value serves a pool of connections to peers addressed by IP. Both sides
// follow Reload as the Configs do.
//
// On the server, the connection's credentials.TLSInfo (from
// peer.FromContext) carries the state PeerSubject reads.
func (s *Source) Credentials(clientAuth tls.ClientAuthType) credentials.TransportCredentials {
	return &grpcCreds{src: s, server: credentials.NewTLS(s.ServerConfig(clientAuth))}
}

// grpcCreds implements credentials.TransportCredentials; see Credentials.
type grpcCreds struct {
	src        *Source
	server     credentials.TransportCredentials
	serverName string // set only by OverrideServerName
}

var _ credentials.TransportCredentials = (*grpcCreds)(nil)

// ClientHandshake runs the TLS client handshake on raw against authority
// (host:port), checking the server's certificate for the host.
func (c *grpcCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	name := c.serverName
	if name == "" {
		host, _, err := net.SplitHostPort(authority)
		if err != nil {
			host = authority
		}
		name = host
	}
	return credentials.NewTLS(c.src.ClientConfig(name)).ClientHandshake(ctx, authority, raw)
}

// ServerHandshake runs the TLS server handshake on raw.
func (c *grpcCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return c.server.ServerHandshake(raw)
}

// Info describes the protocol.
func (c *grpcCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls"}
}

// Clone returns an independent copy.
func (c *grpcCreds) Clone() credentials.TransportCredentials {
	cp := *c
	return &cp
}

// OverrideServerName makes every client handshake check the server's
// certificate for name instead of the dialled host.
func (c *grpcCreds) OverrideServerName(name string) error {
	c.serverName = name
	return nil
}
