package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/cavedb/cave/acl/action"
	"github.com/cavedb/cave/auth"
	"github.com/cavedb/cave/internal/metatest"
	kvv1 "github.com/cavedb/cave/proto/cave/kv/v1"
)

// testAuthz returns an enabled authz over an in-memory meta store whose
// policy is the bootstrap policy plus alice, a reader of app/, set up
// through the policy's own operations. Its clock stands at *now, which
// the test may move.
func testAuthz(t *testing.T, now *atomic.Int64) *authz {
	t.Helper()
	ctx := t.Context()
	now.Store(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	cfg := AuthConfig{Enabled: true, Meta: metatest.New(), Failures: auth.LimiterConfig{Burst: 2, Refill: time.Minute, MaxSources: 10},
		Now: func() time.Time { return time.Unix(0, now.Load()) }}
	require.NoError(t, cfg.Validate())
	z, err := newAuthz(cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	created, err := z.policy.Bootstrap(ctx)
	require.NoError(t, err)
	require.True(t, created)
	_, err = z.policy.AddRole(ctx, "reader")
	require.NoError(t, err)
	_, err = z.policy.Grant(ctx, "reader", auth.Grant{Prefix: "app/", Action: action.Read})
	require.NoError(t, err)
	_, err = z.policy.AddUser(ctx, "alice", []string{"reader"})
	require.NoError(t, err)
	return z
}

func TestRouteRule(t *testing.T) {
	t.Parallel()
	cases := []struct {
		path    string
		access  access
		gateway bool
	}{
		{"/api/v1/health", accessOpen, false},
		{"/api/v1/ready", accessOpen, false},
		{"/api/v1/healthz", accessAdmin, false},
		{"/api/v1/openapi.json", accessIdentified, false},
		{"/ui/", accessIdentified, false},
		{"/ui/app.js", accessIdentified, false},
		{"/api/v1/perf/metrics", accessIdentified, false},
		{"/api/v1/perf/dashboard", accessIdentified, false},
		{"/api/v1/perf/logs", accessAdmin, false},
		{"/api/v1/system/config", accessAdmin, false},
		{"/api/v1/kv/a/b", 0, true},
		{"/api/v1/kv", 0, true},
		{"/api/v1/keys", 0, true},
		{"/api/v1/cluster/members", 0, true},
		{"/api/v1/cluster/routing", 0, true},
		{"/api/v1/auth/users", 0, true},
		{"/api/v1/secrets/rotate", 0, true},
		{"/api/v1/nope", accessAdmin, false},
		{"/", accessAdmin, false},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			t.Parallel()
			r := routeRule(tc.path)
			assert.Equal(t, tc.gateway, r.gateway)
			if !tc.gateway {
				assert.Equal(t, tc.access, r.rule.access)
			}
		})
	}
}

func TestDecide(t *testing.T) {
	t.Parallel()
	z := testAuthz(t, new(atomic.Int64))
	alice := identity{subject: "alice", via: viaToken}
	root := identity{subject: "root", via: viaCertificate}
	nobody := identity{}
	cases := []struct {
		name   string
		id     identity
		method string
		req    any
		want   codes.Code
	}{
		{"alice reads app/x", alice, kvv1.KV_Get_FullMethodName, &kvv1.GetRequest{Key: "app/x"}, codes.OK},
		{"alice lists app/", alice, kvv1.KV_List_FullMethodName, &kvv1.ListRequest{Prefix: "app/"}, codes.OK},
		{"alice lists everything", alice, kvv1.KV_List_FullMethodName, &kvv1.ListRequest{Prefix: ""}, codes.PermissionDenied},
		{"alice writes app/x", alice, kvv1.KV_Put_FullMethodName, &kvv1.PutRequest{Key: "app/x"}, codes.PermissionDenied},
		{"alice deletes app/x", alice, kvv1.KV_Delete_FullMethodName, &kvv1.DeleteRequest{Key: "app/x"}, codes.PermissionDenied},
		{"alice reads other/y", alice, kvv1.KV_Get_FullMethodName, &kvv1.GetRequest{Key: "other/y"}, codes.PermissionDenied},
		{"alice reads the cluster", alice, "/cave.cluster.v1.Cluster/Members", nil, codes.PermissionDenied},
		{"alice adds a user", alice, "/cave.auth.v1.Auth/AddUser", nil, codes.PermissionDenied},
		{"alice asks who she is", alice, "/cave.auth.v1.Auth/WhoAmI", nil, codes.OK},
		{"root writes anything", root, kvv1.KV_Put_FullMethodName, &kvv1.PutRequest{Key: "other/y"}, codes.OK},
		{"root rotates secrets", root, "/cave.secrets.v1.Secrets/Rotate", nil, codes.OK},
		{"root reads the cluster", root, "/cave.cluster.v1.Cluster/Shards", nil, codes.OK},
		{"nobody reads", nobody, kvv1.KV_Get_FullMethodName, &kvv1.GetRequest{Key: "app/x"}, codes.Unauthenticated},
		{"nobody checks health", nobody, "/grpc.health.v1.Health/Check", nil, codes.OK},
		{"nobody calls the data service", nobody, "/cave.peer.v1.Data/Propose", nil, codes.OK},
		{"nobody calls the control service", nobody, "/cave.peer.v1.Control/StartReplica", nil, codes.OK},
		{"root calls an unlisted method", root, "/cave.kv.v1.KV/Compact", nil, codes.PermissionDenied},
		{"a certificate named like the admin role", identity{subject: "admin"}, kvv1.KV_Get_FullMethodName, &kvv1.GetRequest{Key: "app/x"}, codes.PermissionDenied},
		{"a certificate named like the reader role", identity{subject: "reader"}, kvv1.KV_Get_FullMethodName, &kvv1.GetRequest{Key: "app/x"}, codes.PermissionDenied},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, _, st := z.check(tc.id, tc.method, tc.req)
			assert.Equal(t, tc.want, st.Code(), "%v", st)
			if tc.want == codes.PermissionDenied && tc.req != nil {
				assert.Contains(t, st.Message(), tc.id.subject, "the refusal names the subject")
			}
		})
	}

	open := testAuthz(t, new(atomic.Int64))
	open.enabled = false
	_, _, st := open.check(nobody, kvv1.KV_Put_FullMethodName, &kvv1.PutRequest{Key: "x"})
	assert.Nil(t, st, "with the ACL off every listed method is allowed")
	_, _, st = open.check(root, "/cave.kv.v1.KV/Compact", nil)
	assert.Equal(t, codes.PermissionDenied, st.Code(), "an unlisted method is refused even with the ACL off")
}

// verifiedState returns a TLS state whose verified chain's leaf has
// common name cn, as crypto/tls leaves it after verifying a client.
func verifiedState(cn string) *tls.ConnectionState {
	leaf := &x509.Certificate{Subject: pkix.Name{CommonName: cn}}
	return &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{leaf}}}
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	var now atomic.Int64
	z := testAuthz(t, &now)
	good, _, err := z.policy.IssueToken(ctx, "alice", 2*time.Hour)
	require.NoError(t, err)
	expired, _, err := z.policy.IssueToken(ctx, "alice", time.Hour)
	require.NoError(t, err)
	revoked, rec, err := z.policy.IssueToken(ctx, "alice", 2*time.Hour)
	require.NoError(t, err)
	require.NoError(t, z.policy.RevokeToken(ctx, rec.ID))
	now.Add(int64(time.Hour)) // expired's lifetime; the policy's clock

	cases := []struct {
		name     string
		source   string
		tls      *tls.ConnectionState
		header   []string
		subject  string
		via      string
		code     codes.Code
		mentions string
	}{
		{"nothing", "10.0.0.1:1", nil, nil, "", "", codes.OK, ""},
		{"certificate", "10.0.0.1:1", verifiedState("root"), nil, "root", viaCertificate, codes.OK, ""},
		{"unverified certificate", "10.0.0.1:1", &tls.ConnectionState{}, nil, "", "", codes.OK, ""},
		{"token", "10.0.0.1:1", nil, []string{"Bearer " + good}, "alice", viaToken, codes.OK, ""},
		{"lower-case scheme", "10.0.0.1:1", nil, []string{"bearer " + good}, "alice", viaToken, codes.OK, ""},
		{"token wins over certificate", "10.0.0.1:1", verifiedState("root"), []string{"Bearer " + good}, "alice", viaToken, codes.OK, ""},
		{"expired", "10.0.0.2:1", nil, []string{"Bearer " + expired}, "", "", codes.Unauthenticated, "expired"},
		{"revoked", "10.0.0.3:1", nil, []string{"Bearer " + revoked}, "", "", codes.Unauthenticated, "revoked"},
		{"basic scheme", "10.0.0.4:1", nil, []string{"Basic YWxpY2U6eA=="}, "", "", codes.Unauthenticated, "Bearer"},
		{"no scheme", "10.0.0.5:1", nil, []string{good}, "", "", codes.Unauthenticated, "Bearer"},
		{"two headers", "10.0.0.6:1", nil, []string{"Bearer " + good, "Bearer " + good}, "", "", codes.Unauthenticated, "one"},
		{"malformed token", "10.0.0.7:1", nil, []string{"Bearer cave_x"}, "", "", codes.Unauthenticated, "not valid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			id := z.authenticate(context.Background(), tc.source, tc.tls, tc.header)
			assert.Equal(t, tc.subject, id.subject)
			assert.Equal(t, tc.via, id.via)
			assert.Equal(t, tc.source, id.source)
			assert.Equal(t, tc.code, id.err.Code(), "%v", id.err)
			if tc.mentions != "" {
				assert.Contains(t, id.err.Message(), tc.mentions)
				assert.NotContains(t, id.err.Message(), strings.TrimPrefix(good, auth.TokenPrefix)[auth.TokenIDChars:], "errors never show a token")
			}
		})
	}

	t.Run("failures are rate limited per host", func(t *testing.T) {
		t.Parallel()
		bad := []string{"Bearer " + expired}
		for range 2 {
			assert.Equal(t, codes.Unauthenticated, z.authenticate(context.Background(), "10.9.9.9:1", nil, bad).err.Code())
		}
		// The same host on another port is the same source, and even a
		// good token waits.
		id := z.authenticate(context.Background(), "10.9.9.9:2", nil, []string{"Bearer " + good})
		assert.Equal(t, codes.ResourceExhausted, id.err.Code())
		assert.Positive(t, id.retryAfter)
		// A certificate needs no check and is not limited.
		assert.Equal(t, "root", z.authenticate(context.Background(), "10.9.9.9:3", verifiedState("root"), nil).subject)
		// Other hosts are not affected.
		assert.Equal(t, "alice", z.authenticate(context.Background(), "10.9.9.8:1", nil, []string{"Bearer " + good}).subject)
	})
}

// metadataProbe is a health service that records the metadata its handler
// sees.
type metadataProbe struct {
	healthpb.UnimplementedHealthServer
	incoming, outgoing metadata.MD
}

func (p *metadataProbe) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	p.incoming, _ = metadata.FromIncomingContext(ctx)
	p.outgoing, _ = metadata.FromOutgoingContext(ctx)
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

// TestLocalConnMetadata checks that a REST call through localConn hands the
// client's metadata to the handler as incoming metadata only: a handler
// that calls another node with its context must not pass the client's
// credentials on (the other node would check them again).
func TestLocalConnMetadata(t *testing.T) {
	probe := &metadataProbe{}
	pass := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		return h(ctx, req)
	}
	c := &localConn{intercept: pass, methods: map[string]localMethod{}}
	gs := grpc.NewServer()
	c.register(gs, &healthpb.Health_ServiceDesc, probe)

	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer cave_x")
	_, err := healthpb.NewHealthClient(c).Check(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	assert.Equal(t, []string{"Bearer cave_x"}, probe.incoming.Get("authorization"))
	assert.Empty(t, probe.outgoing, "the handler's outgoing metadata")
}
