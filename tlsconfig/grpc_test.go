package tlsconfig

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/cavedb/cave/pki"
)

// TestGRPC serves the health service with Credentials and checks, over
// real gRPC connections by IP address, that a client of the CA gets
// through with its subject visible to the server, that a foreign client is
// refused, and that a reload reaches new connections.
func TestGRPC(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	srv := f.load()

	var mu sync.Mutex
	var subjects []string
	record := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		// No require here: this runs on a server goroutine.
		subject := "<no TLS info>"
		if p, ok := peer.FromContext(ctx); ok {
			if info, ok := p.AuthInfo.(credentials.TLSInfo); ok {
				subject, _ = PeerSubject(info.State)
			}
		}
		mu.Lock()
		subjects = append(subjects, subject)
		mu.Unlock()
		return h(ctx, req)
	}
	gs := grpc.NewServer(grpc.Creds(srv.Credentials(tls.RequireAndVerifyClientCert)), grpc.UnaryInterceptor(record))
	healthpb.RegisterHealthServer(gs, health.NewServer())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Go(func() { _ = gs.Serve(ln) })
	t.Cleanup(func() {
		gs.Stop()
		wg.Wait()
	})

	// check makes one call on a new connection and returns the common name
	// of the server's certificate.
	check := func(creds credentials.TransportCredentials) (string, error) {
		conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(creds))
		require.NoError(t, err)
		defer conn.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		var p peer.Peer
		if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p)); err != nil {
			return "", err
		}
		return p.AuthInfo.(credentials.TLSInfo).State.PeerCertificates[0].Subject.CommonName, nil
	}

	alice := f.client(f.issue(pki.KindClient, "alice"))
	server, err := check(alice.Credentials(tls.RequireAndVerifyClientCert))
	require.NoError(t, err)
	assert.Equal(t, "n1", server)

	foreign := plainClient(t, f.pool(), issueBy(t, newCA(t, "other CA"), pki.KindClient, "mallory", time.Now(), time.Hour))
	_, err = check(credentials.NewTLS(foreign))
	assert.Equal(t, codes.Unavailable, status.Code(err), "foreign client: %v", err)

	f.writeNode(f.issue(pki.KindNode, "n2"))
	require.NoError(t, srv.Reload())
	server, err = check(alice.Credentials(tls.RequireAndVerifyClientCert))
	require.NoError(t, err)
	assert.Equal(t, "n2", server)

	creds := alice.Credentials(tls.RequireAndVerifyClientCert)
	//lint:ignore SA1019 the method is part of the interface under test
	require.NoError(t, creds.OverrideServerName("n9.example"))
	_, err = check(creds)
	assert.Equal(t, codes.Unavailable, status.Code(err), "name not in the server certificate: %v", err)

	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{"alice", "alice"}, subjects, "only accepted clients reach the handler")
}

// TestHTTP2 serves HTTPS with net/http, as the REST port does, and checks
// that HTTP/2 is negotiated when NextProtos is set as ServerConfig says,
// and that the handler sees the verified subject.
func TestHTTP2(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	cfg := f.load().ServerConfig(tls.VerifyClientCertIfGiven)
	cfg.NextProtos = []string{"h2", "http/1.1"}
	hs := &http.Server{
		TLSConfig:         cfg,
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			subject, ok := PeerSubject(*r.TLS)
			if !ok {
				subject = "-"
			}
			_, _ = io.WriteString(w, r.Proto+" "+subject)
		}),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Go(func() { _ = hs.ServeTLS(ln, "", "") })
	t.Cleanup(func() {
		_ = hs.Close()
		wg.Wait()
	})

	alice := f.client(f.issue(pki.KindClient, "alice"))
	client := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: alice.ClientConfig("127.0.0.1"), ForceAttemptHTTP2: true},
	}
	t.Cleanup(client.CloseIdleConnections)
	resp, err := client.Get("https://" + ln.Addr().String() + "/")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, "HTTP/2.0 alice", string(body))
}
