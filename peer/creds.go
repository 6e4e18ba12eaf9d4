package peer

import (
	"crypto/tls"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/cavedb/cave/tlsconfig"
)

// TransportCredentials returns the dial option of a node's pool. With src
// (the node's --tls-* material) every connection presents the node's
// certificate and accepts a peer only if its certificate chains to the
// cluster CA and names the dialled host; both follow src.Reload at the next
// handshake. With nil it dials in plaintext (--insecure, dev mode).
func TransportCredentials(src *tlsconfig.Source) grpc.DialOption {
	if src == nil {
		return grpc.WithTransportCredentials(insecure.NewCredentials())
	}
	return grpc.WithTransportCredentials(src.Credentials(tls.RequireAndVerifyClientCert))
}
