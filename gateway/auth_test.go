package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/cavedb/cave/auth"
	"github.com/cavedb/cave/gateway"
	"github.com/cavedb/cave/internal/nodetest"
	authv1 "github.com/cavedb/cave/proto/cave/auth/v1"
	kvv1 "github.com/cavedb/cave/proto/cave/kv/v1"
)

// syncBuffer is a bytes.Buffer safe for the audit loggers of three nodes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// restCall is one REST request with an optional bearer token, sent by
// client (http.DefaultClient when nil).
type restCall struct {
	method, url, token, body string
	header                   http.Header
	client                   *http.Client
}

type restResult struct {
	status int
	body   string
	header http.Header
}

func (r restCall) do(t *testing.T, ctx context.Context) restResult {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, r.method, r.url, strings.NewReader(r.body))
	require.NoError(t, err)
	for k, vs := range r.header {
		req.Header[k] = vs
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	client := r.client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return restResult{status: resp.StatusCode, body: string(b), header: resp.Header}
}

// grpcConn dials node i's gRPC port without TLS.
func grpcConn(t *testing.T, c *nodetest.Cluster, i int) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(c.GRPCAddr(i), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { cc.Close() })
	return cc
}

// bearer returns ctx carrying token as gRPC authorization metadata.
func bearer(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// TestACL runs the access-control contract on a 3-node cluster with the
// ACL on and bearer tokens: an administrator sets up a reader of app/ over
// REST, the reader's rights are enforced alike over gRPC and REST on every
// node, policy changes and revocations reach every node within a second,
// the Auth API refuses bad input without changing anything, failures are
// rate-limited, and the audit log records allowed and refused calls
// without values.
func TestACL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	auditLog := &syncBuffer{}
	c := nodetest.NewCluster(t, 3, nodetest.WithShards(2), nodetest.WithACL(), nodetest.WithAuditLog(auditLog))
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	root := c.Token(0, auth.RootUser, time.Hour)
	api := func(i int) string { return c.HTTPURL(i) + "/api/v1" }

	// The administrator writes the data and sets up alice, a reader of app/.
	const secretValue = "value-that-must-never-be-logged"
	for _, key := range []string{"app/x", "other/y"} {
		r := restCall{method: http.MethodPut, url: api(0) + "/kv/" + key, token: root, body: secretValue}.do(t, ctx)
		require.Equal(t, http.StatusOK, r.status, r.body)
	}
	for _, call := range []restCall{
		{method: http.MethodPost, url: api(1) + "/auth/roles", body: `{"name":"reader"}`},
		{method: http.MethodPost, url: api(1) + "/auth/roles/reader/grants", body: `{"prefix":"app/","action":"read"}`},
		{method: http.MethodPost, url: api(1) + "/auth/users", body: `{"name":"alice","roles":["reader"]}`},
	} {
		call.token = root
		r := call.do(t, ctx)
		require.Equal(t, http.StatusOK, r.status, "%s %s: %s", call.method, call.url, r.body)
	}
	r := restCall{method: http.MethodPost, url: api(2) + "/auth/tokens", token: root, body: `{"user":"alice","ttl_seconds":600}`}.do(t, ctx)
	require.Equal(t, http.StatusOK, r.status, r.body)
	var issued struct{ Token, ID, ExpiresAt string }
	require.NoError(t, json.Unmarshal([]byte(r.body), &issued))
	alice := issued.Token
	require.True(t, strings.HasPrefix(alice, "cave_"), r.body)

	t.Run("matrix", func(t *testing.T) {
		for i := range 3 {
			// REST: alice's token is valid on every node, whichever issued it.
			get := restCall{method: http.MethodGet, url: api(i) + "/kv/app/x", token: alice}.do(t, ctx)
			assert.Equal(t, http.StatusOK, get.status, "node %d: alice reads app/x: %s", i, get.body)
			assert.Equal(t, secretValue, get.body)
			put := restCall{method: http.MethodPut, url: api(i) + "/kv/app/x", token: alice, body: "v2"}.do(t, ctx)
			assert.Equal(t, http.StatusForbidden, put.status, "node %d: alice writes app/x: %s", i, put.body)
			assert.Contains(t, put.body, `alice may not write \"app/x\"`)
			other := restCall{method: http.MethodGet, url: api(i) + "/kv/other/y", token: alice}.do(t, ctx)
			assert.Equal(t, http.StatusForbidden, other.status, "node %d: alice reads other/y: %s", i, other.body)
			list := restCall{method: http.MethodGet, url: api(i) + "/keys?prefix=app/", token: alice}.do(t, ctx)
			assert.Equal(t, http.StatusOK, list.status, "node %d: alice lists app/: %s", i, list.body)
			listAll := restCall{method: http.MethodGet, url: api(i) + "/keys?prefix=", token: alice}.do(t, ctx)
			assert.Equal(t, http.StatusForbidden, listAll.status, "node %d: alice lists everything: %s", i, listAll.body)
			anon := restCall{method: http.MethodGet, url: api(i) + "/kv/app/x"}.do(t, ctx)
			assert.Equal(t, http.StatusUnauthorized, anon.status, "node %d: no credential: %s", i, anon.body)
			assert.Equal(t, `Bearer realm="cave"`, anon.header.Get("WWW-Authenticate"))
			for _, open := range []string{"/health", "/ready"} {
				h := restCall{method: http.MethodGet, url: api(i) + open}.do(t, ctx)
				assert.Equal(t, http.StatusOK, h.status, "node %d: %s stays open: %s", i, open, h.body)
			}
			for _, adminOnly := range []string{"/system/config", "/perf/logs", "/auth/users"} {
				h := restCall{method: http.MethodGet, url: api(i) + adminOnly, token: alice}.do(t, ctx)
				assert.Equal(t, http.StatusForbidden, h.status, "node %d: alice gets %s: %s", i, adminOnly, h.body)
			}
			// Any identity may scrape metrics (they hold no keys); no one
			// without one.
			scrape := restCall{method: http.MethodGet, url: api(i) + "/perf/metrics", token: alice}.do(t, ctx)
			assert.Equal(t, http.StatusOK, scrape.status, "node %d: alice scrapes metrics", i)
			assert.Contains(t, scrape.body, "cave_build_info")
			anonScrape := restCall{method: http.MethodGet, url: api(i) + "/perf/metrics"}.do(t, ctx)
			assert.Equal(t, http.StatusUnauthorized, anonScrape.status, "node %d: metrics without a credential", i)

			// gRPC: the same decisions.
			kv := kvv1.NewKVClient(grpcConn(t, c, i))
			resp, err := kv.Get(bearer(ctx, alice), &kvv1.GetRequest{Key: "app/x"})
			if assert.NoError(t, err, "node %d: gRPC alice reads app/x", i) {
				assert.Equal(t, secretValue, string(resp.Value))
			}
			_, err = kv.Put(bearer(ctx, alice), &kvv1.PutRequest{Key: "app/x", Value: []byte("v2")})
			assert.Equal(t, codes.PermissionDenied, status.Code(err), "node %d: gRPC alice writes app/x: %v", i, err)
			_, err = kv.Get(bearer(ctx, alice), &kvv1.GetRequest{Key: "other/y"})
			assert.Equal(t, codes.PermissionDenied, status.Code(err), "node %d: gRPC alice reads other/y: %v", i, err)
			_, err = kv.Get(ctx, &kvv1.GetRequest{Key: "app/x"})
			assert.Equal(t, codes.Unauthenticated, status.Code(err), "node %d: gRPC without credential: %v", i, err)
			_, err = kv.Put(bearer(ctx, root), &kvv1.PutRequest{Key: "app/z", Value: []byte(secretValue)})
			assert.NoError(t, err, "node %d: gRPC root writes app/z", i)
			_, err = healthpb.NewHealthClient(grpcConn(t, c, i)).Check(ctx, &healthpb.HealthCheckRequest{})
			assert.NoError(t, err, "node %d: gRPC health stays open", i)
			who, err := authv1.NewAuthClient(grpcConn(t, c, i)).WhoAmI(bearer(ctx, alice), &authv1.WhoAmIRequest{})
			if assert.NoError(t, err) {
				assert.Equal(t, "alice", who.Subject)
				assert.Equal(t, "token", who.Method)
				assert.Equal(t, []string{"reader"}, who.Roles)
				assert.True(t, who.AclEnabled)
			}
		}
		// Nothing alice tried changed app/x.
		get := restCall{method: http.MethodGet, url: api(0) + "/kv/app/x", token: root}.do(t, ctx)
		assert.Equal(t, secretValue, get.body)
	})

	t.Run("policy change reaches every node within a second", func(t *testing.T) {
		grant := restCall{method: http.MethodPost, url: api(0) + "/auth/roles/reader/grants", token: root, body: `{"prefix":"other/","action":"read"}`}
		start := time.Now()
		require.Equal(t, http.StatusOK, grant.do(t, ctx).status)
		for i := range 3 {
			waitStatus(t, ctx, restCall{method: http.MethodGet, url: api(i) + "/kv/other/y", token: alice}, http.StatusOK, start, time.Second)
		}
		revoke := restCall{method: http.MethodDelete, url: api(0) + "/auth/roles/reader/grants?prefix=other/&action=read", token: root}
		start = time.Now()
		require.Equal(t, http.StatusOK, revoke.do(t, ctx).status)
		for i := range 3 {
			waitStatus(t, ctx, restCall{method: http.MethodGet, url: api(i) + "/kv/other/y", token: alice}, http.StatusForbidden, start, time.Second)
		}
	})

	t.Run("revoked and expired tokens", func(t *testing.T) {
		r := restCall{method: http.MethodPost, url: api(0) + "/auth/tokens", token: root, body: `{"user":"alice","ttl_seconds":600}`}.do(t, ctx)
		require.Equal(t, http.StatusOK, r.status, r.body)
		var tok struct{ Token, ID string }
		require.NoError(t, json.Unmarshal([]byte(r.body), &tok))
		start := time.Now()
		rv := restCall{method: http.MethodDelete, url: api(1) + "/auth/tokens/" + tok.ID, token: root}.do(t, ctx)
		require.Equal(t, http.StatusOK, rv.status, rv.body)
		for i := range 3 {
			waitStatus(t, ctx, restCall{method: http.MethodGet, url: api(i) + "/kv/app/x", token: tok.Token}, http.StatusUnauthorized, start, time.Second)
		}
		_, err := kvv1.NewKVClient(grpcConn(t, c, 1)).Get(bearer(ctx, tok.Token), &kvv1.GetRequest{Key: "app/x"})
		assert.Equal(t, codes.Unauthenticated, status.Code(err), "gRPC with a revoked token: %v", err)
		assert.Contains(t, status.Convert(err).Message(), "revoked")

		// A token works until its lifetime is over, then fails as expired
		// (auth's tests check the instant with a fake clock).
		short := c.Token(0, "alice", time.Second)
		require.Equal(t, http.StatusOK, restCall{method: http.MethodGet, url: api(0) + "/kv/app/x", token: short}.do(t, ctx).status)
		var exp restResult
		nodetest.Eventually(t, 5*time.Second, "the short token expires", func(ctx context.Context) string {
			if exp = (restCall{method: http.MethodGet, url: api(0) + "/kv/app/x", token: short}.do(t, ctx)); exp.status == http.StatusOK {
				return "still valid"
			}
			return ""
		})
		assert.Equal(t, http.StatusUnauthorized, exp.status, exp.body)
		assert.Contains(t, exp.body, "expired")
	})

	t.Run("auth API bad input", func(t *testing.T) {
		before := restCall{method: http.MethodGet, url: api(0) + "/auth/users", token: root}.do(t, ctx)
		beforeRoles := restCall{method: http.MethodGet, url: api(0) + "/auth/roles", token: root}.do(t, ctx)
		require.Equal(t, http.StatusOK, before.status)
		huge := http.Header{"X-Huge": {strings.Repeat("h", 100<<10)}}
		cases := []struct {
			name   string
			call   restCall
			status int
		}{
			{"malformed JSON", restCall{method: http.MethodPost, url: "/auth/users", body: `{"name":`}, 400},
			{"wrong type", restCall{method: http.MethodPost, url: "/auth/users", body: `{"name":42}`}, 400},
			{"wrong type of roles", restCall{method: http.MethodPost, url: "/auth/users", body: `{"name":"bob","roles":"reader"}`}, 400},
			{"unknown field", restCall{method: http.MethodPost, url: "/auth/users", body: `{"name":"bob","admin":true}`}, 400},
			{"bad user name", restCall{method: http.MethodPost, url: "/auth/users", body: `{"name":"a b"}`}, 400},
			{"empty user name", restCall{method: http.MethodPost, url: "/auth/users", body: `{}`}, 400},
			{"user with unknown role", restCall{method: http.MethodPost, url: "/auth/users", body: `{"name":"bob","roles":["nope"]}`}, 404},
			{"existing user", restCall{method: http.MethodPost, url: "/auth/users", body: `{"name":"alice"}`}, 409},
			{"bad role name", restCall{method: http.MethodPost, url: "/auth/roles", body: `{"name":"a/b"}`}, 400},
			{"grant bad action", restCall{method: http.MethodPost, url: "/auth/roles/reader/grants", body: `{"prefix":"x/","action":"fly"}`}, 400},
			{"grant bad prefix", restCall{method: http.MethodPost, url: "/auth/roles/reader/grants", body: `{"prefix":"a*","action":"read"}`}, 400},
			{"grant to unknown role", restCall{method: http.MethodPost, url: "/auth/roles/nope/grants", body: `{"prefix":"x/","action":"read"}`}, 404},
			{"revoke missing grant", restCall{method: http.MethodDelete, url: "/auth/roles/reader/grants?prefix=zzz/&action=read"}, 404},
			{"bind unknown user", restCall{method: http.MethodPost, url: "/auth/users/nobody/roles", body: `{"role":"reader"}`}, 404},
			{"remove unknown user", restCall{method: http.MethodDelete, url: "/auth/users/nobody"}, 404},
			{"remove admin role", restCall{method: http.MethodDelete, url: "/auth/roles/admin"}, 412},
			{"token for unknown user", restCall{method: http.MethodPost, url: "/auth/tokens", body: `{"user":"nobody"}`}, 404},
			{"token ttl negative", restCall{method: http.MethodPost, url: "/auth/tokens", body: `{"user":"alice","ttl_seconds":-1}`}, 400},
			{"token ttl wrong type", restCall{method: http.MethodPost, url: "/auth/tokens", body: `{"user":"alice","ttl_seconds":"soon"}`}, 400},
			{"revoke unknown token", restCall{method: http.MethodDelete, url: "/auth/tokens/AAAAAAAAAAAA"}, 404},
			{"revoke malformed token id", restCall{method: http.MethodDelete, url: "/auth/tokens/short"}, 400},
			{"oversize body", restCall{method: http.MethodPost, url: "/auth/users", body: `{"name":"` + strings.Repeat("a", 70<<10) + `"}`}, 413},
			{"huge header", restCall{method: http.MethodPost, url: "/auth/users", body: `{"name":"bob"}`, header: huge}, 431},
			{"not an admin", restCall{method: http.MethodPost, url: "/auth/users", token: alice, body: `{"name":"bob"}`}, 403},
			{"no credential", restCall{method: http.MethodPost, url: "/auth/users", token: "-", body: `{"name":"bob"}`}, 401},
			{"malformed token", restCall{method: http.MethodPost, url: "/auth/users", token: "cave_nope", body: `{"name":"bob"}`}, 401},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				call := tc.call
				call.url = api(1) + call.url
				switch call.token {
				case "":
					call.token = root
				case "-":
					call.token = ""
				}
				got := call.do(t, ctx)
				assert.Equal(t, tc.status, got.status, "body %s", got.body)
				if tc.status != 431 {
					var eb struct {
						Code    int    `json:"code"`
						Message string `json:"message"`
					}
					assert.NoError(t, json.Unmarshal([]byte(got.body), &eb), "error body %s", got.body)
					assert.NotEmpty(t, eb.Message)
				}
			})
		}
		after := restCall{method: http.MethodGet, url: api(0) + "/auth/users", token: root}.do(t, ctx)
		afterRoles := restCall{method: http.MethodGet, url: api(0) + "/auth/roles", token: root}.do(t, ctx)
		assert.JSONEq(t, before.body, after.body, "users changed")
		assert.JSONEq(t, beforeRoles.body, afterRoles.body, "roles changed")
	})

	t.Run("failed authentications are rate limited", func(t *testing.T) {
		var last restResult
		for range 10 {
			last = restCall{method: http.MethodGet, url: api(2) + "/kv/app/x", token: "cave_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}.do(t, ctx)
			if last.status == http.StatusTooManyRequests {
				break
			}
			require.Equal(t, http.StatusUnauthorized, last.status, last.body)
		}
		require.Equal(t, http.StatusTooManyRequests, last.status, last.body)
		assert.NotEmpty(t, last.header.Get("Retry-After"))
		assert.Contains(t, last.body, "too many failed authentications")
		_, err := kvv1.NewKVClient(grpcConn(t, c, 2)).Get(bearer(ctx, "cave_nope"), &kvv1.GetRequest{Key: "app/x"})
		assert.Equal(t, codes.ResourceExhausted, status.Code(err), "gRPC from the same address: %v", err)
		// Each node keeps its own count.
		ok := restCall{method: http.MethodGet, url: api(0) + "/kv/app/x", token: alice}.do(t, ctx)
		assert.Equal(t, http.StatusOK, ok.status, ok.body)
	})

	t.Run("audit log", func(t *testing.T) {
		// Writes are queued; wait until the last expected line is there.
		nodetest.Eventually(t, 5*time.Second, "audit lines", func(context.Context) string {
			if !strings.Contains(auditLog.String(), `"result":"ResourceExhausted"`) {
				return "no line for the rate-limited call yet"
			}
			return ""
		})
		type line struct {
			Time, Subject, Source, Method, Key, Result, Detail string
		}
		var lines []line
		for _, l := range strings.Split(strings.TrimSpace(auditLog.String()), "\n") {
			var e line
			require.NoError(t, json.Unmarshal([]byte(l), &e), "audit line %q", l)
			lines = append(lines, e)
		}
		has := func(subject, method, key, result string) bool {
			for _, e := range lines {
				if e.Subject == subject && e.Method == method && e.Key == key && e.Result == result && e.Source != "" && e.Time != "" {
					return true
				}
			}
			return false
		}
		assert.True(t, has("root", kvv1.KV_Put_FullMethodName, "app/x", "ok"), "allowed write")
		assert.True(t, has("alice", kvv1.KV_Put_FullMethodName, "app/x", "denied"), "denied write")
		assert.True(t, has("alice", kvv1.KV_Get_FullMethodName, "other/y", "denied"), "denied read")
		assert.True(t, has("root", authv1.Auth_AddUser_FullMethodName, "", "ok"), "admin call")
		assert.True(t, has("alice", authv1.Auth_AddUser_FullMethodName, "", "denied"), "denied admin call")
		assert.True(t, has("", kvv1.KV_Get_FullMethodName, "app/x", "Unauthenticated"), "unauthenticated gRPC call")
		assert.False(t, has("alice", kvv1.KV_Get_FullMethodName, "app/x", "ok"), "allowed reads are not audited")
		assert.NotContains(t, auditLog.String(), secretValue, "the audit log never holds a value")
		assert.NotContains(t, auditLog.String(), alice, "the audit log never holds a token")
		assert.NotContains(t, auditLog.String(), root, "the audit log never holds a token")
	})

	t.Run("every method has an access rule", func(t *testing.T) {
		assert.Empty(t, gateway.UncoveredMethods(c.Gateway(0)), "methods served without an entry in methodRules")
		paths, err := gateway.RESTPathsOutsideGateway()
		require.NoError(t, err)
		assert.Empty(t, paths, "REST paths of the API document that httpRoutes does not check by method")
	})
}

// waitStatus polls call until it answers want, and fails unless that
// happens within limit of start.
func waitStatus(t *testing.T, ctx context.Context, call restCall, want int, start time.Time, limit time.Duration) {
	t.Helper()
	var last restResult
	for time.Since(start) < 3*limit {
		if last = call.do(t, ctx); last.status == want {
			took := time.Since(start)
			t.Logf("%s %s: %d after %s", call.method, call.url, want, took.Round(time.Millisecond))
			assert.Less(t, took, limit, "%s %s took %s to answer %d", call.method, call.url, took, want)
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s %s: %v", call.method, call.url, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("%s %s: still %d after %s, want %d: %s", call.method, call.url, last.status, 3*limit, want, last.body)
}

// TestACLWithTLS checks identities from client certificates on a 3-node
// cluster with TLS on every port and the ACL on, as --mode=prod runs: the
// bootstrap policy makes a certificate named root an administrator; a
// certificate of a user bound to a role gets that role's grants over gRPC
// and REST; a certificate named like a role, or a node's certificate, gets
// nothing; REST without a certificate needs a token.
func TestACLWithTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := nodetest.NewCluster(t, 3, nodetest.WithShards(2), nodetest.WithTLS(), nodetest.WithACL())
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	https := func(cert string) *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: c.ClientTLS(cert)}}
	}
	grpcTLS := func(i int, cert string) *grpc.ClientConn {
		cc, err := grpc.NewClient(c.GRPCAddr(i), grpc.WithTransportCredentials(credentials.NewTLS(c.ClientTLS(cert))))
		require.NoError(t, err)
		t.Cleanup(func() { cc.Close() })
		return cc
	}
	api := func(i int) string { return c.HTTPURL(i) + "/api/v1" }
	root := https(auth.RootUser)

	// root sets up carol, a reader of app/, with REST and gRPC.
	var put restResult
	nodetest.Eventually(t, 10*time.Second, "root's first write", func(ctx context.Context) string {
		put = restCall{method: http.MethodPut, url: api(0) + "/kv/app/x", body: "v", client: root}.do(t, ctx)
		if put.status != http.StatusOK {
			return put.body
		}
		return ""
	})
	for _, call := range []restCall{
		{method: http.MethodPost, url: api(1) + "/auth/roles", body: `{"name":"reader"}`},
		{method: http.MethodPost, url: api(1) + "/auth/roles/reader/grants", body: `{"prefix":"app/","action":"read"}`},
	} {
		call.client = root
		r := call.do(t, ctx)
		require.Equal(t, http.StatusOK, r.status, "%s %s: %s", call.method, call.url, r.body)
	}
	_, err := authv1.NewAuthClient(grpcTLS(2, auth.RootUser)).AddUser(ctx, &authv1.AddUserRequest{Name: "carol", Roles: []string{"reader"}})
	require.NoError(t, err)

	for i := range 3 {
		carol := https("carol")
		get := restCall{method: http.MethodGet, url: api(i) + "/kv/app/x", client: carol}
		waitStatus(t, ctx, get, http.StatusOK, time.Now(), time.Second)
		r := restCall{method: http.MethodPut, url: api(i) + "/kv/app/x", body: "w", client: carol}.do(t, ctx)
		assert.Equal(t, http.StatusForbidden, r.status, "node %d: carol writes over REST: %s", i, r.body)

		kv := kvv1.NewKVClient(grpcTLS(i, "carol"))
		_, err := kv.Get(ctx, &kvv1.GetRequest{Key: "app/x"})
		assert.NoError(t, err, "node %d: carol reads over gRPC", i)
		_, err = kv.Put(ctx, &kvv1.PutRequest{Key: "app/x", Value: []byte("w")})
		assert.Equal(t, codes.PermissionDenied, status.Code(err), "node %d: carol writes over gRPC: %v", i, err)
		_, err = kv.Get(ctx, &kvv1.GetRequest{Key: "other/y"})
		assert.Equal(t, codes.PermissionDenied, status.Code(err), "node %d: carol reads other/y over gRPC: %v", i, err)
		who, err := authv1.NewAuthClient(grpcTLS(i, "carol")).WhoAmI(ctx, &authv1.WhoAmIRequest{})
		if assert.NoError(t, err) {
			assert.Equal(t, "carol", who.Subject)
			assert.Equal(t, "certificate", who.Method)
		}

		// A certificate named like the admin role is nobody.
		_, err = kvv1.NewKVClient(grpcTLS(i, auth.AdminRole)).Get(ctx, &kvv1.GetRequest{Key: "app/x"})
		assert.Equal(t, codes.PermissionDenied, status.Code(err), "node %d: a certificate named admin: %v", i, err)

		// HTTPS without a certificate needs a token.
		r = restCall{method: http.MethodGet, url: api(i) + "/kv/app/x", client: https("")}.do(t, ctx)
		assert.Equal(t, http.StatusUnauthorized, r.status, "node %d: no certificate, no token: %s", i, r.body)
	}
	tok := c.Token(0, "carol", time.Hour)
	r := restCall{method: http.MethodGet, url: api(1) + "/kv/app/x", token: tok, client: https("")}.do(t, ctx)
	assert.Equal(t, http.StatusOK, r.status, "a token without a certificate: %s", r.body)
	assert.Equal(t, "v", r.body)
}
