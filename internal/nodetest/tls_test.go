package nodetest

import (
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	kvv1 "github.com/cavedb/cave/proto/cave/kv/v1"
	peerv1 "github.com/cavedb/cave/proto/cave/peer/v1"
)

// TestWithTLS forms a two-node cluster whose second node joins over mutual
// TLS, and checks the ports: HTTPS with a client certificate, gRPC that
// refuses a client without one, and a Peer service closed to client
// certificates.
func TestWithTLS(t *testing.T) {
	c := NewCluster(t, 2, WithTLS(), WithShards(1), WithReplicas(2))
	ctx := t.Context()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: c.ClientTLS("alice")}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.HTTPURL(0)+"/api/v1/kv/tls/x", strings.NewReader("secret-free"))
	require.NoError(t, err)
	resp, err := hc.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp, err = hc.Get(c.HTTPURL(1) + "/api/v1/kv/tls/x")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "secret-free", string(body))

	resp, err = http.Get(strings.Replace(c.HTTPURL(0), "https://", "http://", 1) + "/api/v1/health")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "plain HTTP on the HTTPS port")

	dial := func(cfg *tls.Config) *grpc.ClientConn {
		conn, err := grpc.NewClient("passthrough:///"+c.GRPCAddr(1), grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		require.NoError(t, err)
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	got, err := kvv1.NewKVClient(dial(c.ClientTLS("alice"))).Get(ctx, &kvv1.GetRequest{Key: "tls/x"})
	require.NoError(t, err)
	assert.Equal(t, "secret-free", string(got.GetValue()))
	_, err = kvv1.NewKVClient(dial(c.ClientTLS(""))).Get(ctx, &kvv1.GetRequest{Key: "tls/x"})
	assert.Equal(t, codes.Unavailable, status.Code(err), "gRPC without a client certificate: %v", err)
	_, err = peerv1.NewControlClient(dial(c.ClientTLS("alice"))).JoinInfo(ctx, &peerv1.JoinInfoRequest{})
	assert.Equal(t, codes.PermissionDenied, status.Code(err), "Control.JoinInfo with a client certificate: %v", err)
}
