package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/cavedb/cave/acl/action"
	"github.com/cavedb/cave/audit"
	"github.com/cavedb/cave/auth"
	adminv1 "github.com/cavedb/cave/proto/cave/admin/v1"
	authv1 "github.com/cavedb/cave/proto/cave/auth/v1"
	clusterv1 "github.com/cavedb/cave/proto/cave/cluster/v1"
	kvv1 "github.com/cavedb/cave/proto/cave/kv/v1"
	peerv1 "github.com/cavedb/cave/proto/cave/peer/v1"
	secretsv1 "github.com/cavedb/cave/proto/cave/secrets/v1"
	"github.com/cavedb/cave/tlsconfig"
)

// access is what a call needs besides a grant.
type access int

const (
	// accessOpen needs nothing: health checks.
	accessOpen access = iota
	// accessIdentified needs an identity but no grant: WhoAmI, reflection,
	// the API document and the web UI's static files.
	accessIdentified
	// accessKey needs a grant of the rule's action on the request's key.
	accessKey
	// accessAdmin needs admin on the empty prefix
	// (auth.Manager.AllowedAdmin).
	accessAdmin
	// accessNode is the node-to-node Data and Control services. The ACL does not apply:
	// with TLS the gRPC server admits only the cluster's node certificates
	// to it; a call it forwards was checked on the node that received it.
	accessNode
)

// rule is how one method is checked and audited.
type rule struct {
	access access
	// action is the grant an accessKey call needs.
	action action.Action
	// key returns the key or prefix the call names: the object of an
	// accessKey check and the key of its audit line. nil for calls on no
	// key.
	key func(req any) string
	// audit writes an audit line for every call, not only for refusals.
	audit bool
	// detail puts the request, as text, into the audit line. Only for
	// requests that carry no value, password or token.
	detail bool
	// emptyIdentified: a call on the empty key needs an identity only (a
	// watch of everything the caller may read, filtered key by key).
	emptyIdentified bool
}

// keyOf returns the key or prefix of the KV requests.
func keyOf(req any) string {
	switch r := req.(type) {
	case interface{ GetKey() string }:
		return r.GetKey()
	case interface{ GetPrefix() string }:
		return r.GetPrefix()
	}
	return ""
}

// watchKeyOf returns a WatchRequest's key, or its prefix without one.
func watchKeyOf(req any) string {
	if r, ok := req.(*kvv1.WatchRequest); ok && r.Key != "" {
		return r.Key
	}
	return keyOf(req)
}

// allKeys is the object of calls that show the whole cluster.
func allKeys(any) string { return "" }

// Rules of the services every node serves. The tables are the only place
// that says who may call what: a method missing from them is refused
// (PermissionDenied) even with the ACL off, and TestMethodRulesComplete
// fails for every registered method without an entry.
var (
	readKey  = rule{access: accessKey, action: action.Read, key: keyOf}
	writeKey = rule{access: accessKey, action: action.Write, key: keyOf, audit: true}
	// watchKey is read on the watched key or prefix; the empty prefix
	// watches what the caller may read.
	watchKey = rule{access: accessKey, action: action.Read, key: watchKeyOf, emptyIdentified: true}
	// clusterView is read on the empty prefix: the cluster's shape is shown
	// to callers who may read every key.
	clusterView = rule{access: accessKey, action: action.Read, key: allKeys}
	adminCall   = rule{access: accessAdmin, audit: true, detail: true}
	open        = rule{access: accessOpen}
	identified  = rule{access: accessIdentified}
	nodeCall    = rule{access: accessNode}

	methodRules = map[string]rule{
		kvv1.KV_Get_FullMethodName:    readKey,
		kvv1.KV_List_FullMethodName:   readKey,
		kvv1.KV_Put_FullMethodName:    writeKey,
		kvv1.KV_Delete_FullMethodName: writeKey,
		kvv1.KV_Watch_FullMethodName:  watchKey,

		clusterv1.Cluster_Members_FullMethodName: clusterView,
		clusterv1.Cluster_Shards_FullMethodName:  clusterView,
		clusterv1.Cluster_Routing_FullMethodName: clusterView,

		authv1.Auth_WhoAmI_FullMethodName:      {access: accessIdentified, audit: true},
		authv1.Auth_AddUser_FullMethodName:     adminCall,
		authv1.Auth_RemoveUser_FullMethodName:  adminCall,
		authv1.Auth_ListUsers_FullMethodName:   adminCall,
		authv1.Auth_AddRole_FullMethodName:     adminCall,
		authv1.Auth_RemoveRole_FullMethodName:  adminCall,
		authv1.Auth_ListRoles_FullMethodName:   adminCall,
		authv1.Auth_Grant_FullMethodName:       adminCall,
		authv1.Auth_Revoke_FullMethodName:      adminCall,
		authv1.Auth_BindRole_FullMethodName:    adminCall,
		authv1.Auth_UnbindRole_FullMethodName:  adminCall,
		authv1.Auth_IssueToken_FullMethodName:  adminCall,
		authv1.Auth_RevokeToken_FullMethodName: adminCall,
		authv1.Auth_ListTokens_FullMethodName:  adminCall,

		secretsv1.Secrets_Rotate_FullMethodName: adminCall,
		secretsv1.Secrets_Status_FullMethodName: adminCall,

		adminv1.Admin_MoveReplica_FullMethodName:    adminCall,
		adminv1.Admin_TransferLeader_FullMethodName: adminCall,
		adminv1.Admin_DrainNode_FullMethodName:      adminCall,
		adminv1.Admin_RemoveNode_FullMethodName:     adminCall,
		adminv1.Admin_Plan_FullMethodName:           adminCall,
		adminv1.Admin_Apply_FullMethodName:          adminCall,
		adminv1.Admin_Pause_FullMethodName:          adminCall,
		adminv1.Admin_Resume_FullMethodName:         adminCall,
		adminv1.Admin_Status_FullMethodName:         adminCall,

		peerv1.Data_Propose_FullMethodName:         nodeCall,
		peerv1.Data_Get_FullMethodName:             nodeCall,
		peerv1.Data_List_FullMethodName:            nodeCall,
		peerv1.Data_Stats_FullMethodName:           nodeCall,
		peerv1.Data_History_FullMethodName:         nodeCall,
		peerv1.Control_StartReplica_FullMethodName: nodeCall,
		peerv1.Control_JoinInfo_FullMethodName:     nodeCall,

		healthpb.Health_Check_FullMethodName: open,
		healthpb.Health_List_FullMethodName:  open,
		healthpb.Health_Watch_FullMethodName: open,

		reflectionv1.ServerReflection_ServerReflectionInfo_FullMethodName:      identified,
		reflectionv1alpha.ServerReflection_ServerReflectionInfo_FullMethodName: identified,
	}
)

// httpRoute is the rule of the HTTP paths that are not grpc-gateway
// routes; gateway marks the paths that grpc-gateway serves, whose calls
// are checked by gRPC method. A path that matches no entry needs admin
// (and is then, as a rule, not found).
type httpRoute struct {
	path   string
	prefix bool // path is a prefix, not the whole path
	rule   rule
	// gateway: the REST mapping of a gRPC method, checked by methodRules.
	gateway bool
}

var httpRoutes = []httpRoute{
	{path: "/api/v1/health", rule: open},
	{path: "/api/v1/ready", rule: open},
	{path: "/api/v1/openapi.json", rule: identified},
	{path: "/ui", prefix: true, rule: identified},
	// Metrics and the dashboard hold no key and no value (labels are
	// shard ids, methods and codes), so any identity may read them: a
	// Prometheus needs a client certificate of the cluster CA, no grant.
	// Logs may quote keys: admin.
	{path: "/api/v1/perf/metrics", rule: identified},
	{path: "/api/v1/perf/dashboard", rule: identified},
	{path: "/api/v1/perf/", prefix: true, rule: adminCall},
	{path: "/api/v1/system/", prefix: true, rule: adminCall},
	{path: "/api/v1/kv", prefix: true, gateway: true},
	{path: "/api/v1/keys", gateway: true},
	{path: "/api/v1/watch", gateway: true},
	{path: "/api/v1/cluster/", prefix: true, gateway: true},
	{path: "/api/v1/auth/", prefix: true, gateway: true},
	{path: "/api/v1/secrets/", prefix: true, gateway: true},
	{path: "/api/v1/admin/", prefix: true, gateway: true},
}

// routeRule returns the entry for an HTTP path.
func routeRule(path string) httpRoute {
	for _, r := range httpRoutes {
		if path == r.path || r.prefix && strings.HasPrefix(path, r.path) {
			return r
		}
	}
	return httpRoute{path: path, rule: adminCall}
}

// How a caller was identified, as WhoAmI reports it.
const (
	viaCertificate = "certificate"
	viaToken       = "token"
)

// identity is the result of authenticating one request.
type identity struct {
	// subject is the caller's name; empty when it sent no credential or
	// its credential failed.
	subject string
	// via is viaCertificate, viaToken or "".
	via string
	// source is the caller's network address, host:port.
	source string
	// err is why a credential was refused (Unauthenticated, or
	// ResourceExhausted after too many failures); nil when the caller sent
	// none or it was accepted.
	err *status.Status
	// retryAfter goes with a ResourceExhausted err.
	retryAfter time.Duration
}

// identityKey is the context key under which the HTTP middleware leaves a
// REST request's identity for the interceptor, and the interceptor leaves
// every call's identity for the handlers (WhoAmI).
type identityKey struct{}

func identityFrom(ctx context.Context) (identity, bool) {
	id, ok := ctx.Value(identityKey{}).(identity)
	return id, ok
}

// authz authenticates callers and enforces the access policy on every
// gRPC and REST call, and writes the audit log. The gRPC server runs
// unary and stream as interceptors; REST calls reach the services through
// a localConn that runs unary too, after httpMiddleware has authenticated
// the HTTP request. decide is the one check all of them apply.
//
// It is safe for concurrent use.
type authz struct {
	// enabled turns enforcement on. Off, every listed method is allowed,
	// credentials are still read (WhoAmI, audit) and bad ones ignored.
	enabled bool
	policy  *auth.Manager
	limiter *auth.Limiter
	audit   *audit.Logger // nil: no audit log
	now     func() time.Time
	lg      *slog.Logger
}

// authenticate identifies a caller from its verified TLS state (nil
// without TLS) and the values of its authorization header or metadata. A
// bearer token wins over a certificate, so a client with a certificate can
// act as a token's user. Failures are counted per source host, and a host
// over the limit is refused before its token is checked.
func (a *authz) authenticate(ctx context.Context, source string, tlsState *tls.ConnectionState, authorization []string) identity {
	id := identity{source: source}
	if len(authorization) == 0 {
		if tlsState != nil {
			if cn, ok := tlsconfig.PeerSubject(*tlsState); ok {
				id.subject, id.via = cn, viaCertificate
			}
		}
		return id
	}
	host := source
	if h, _, err := net.SplitHostPort(source); err == nil {
		host = h
	}
	now := a.now()
	if ok, wait := a.limiter.Allow(host, now); !ok {
		id.err = status.Newf(codes.ResourceExhausted, "too many failed authentications from %s: retry in %s", host, wait.Round(time.Second))
		id.retryAfter = wait
		return id
	}
	user, err := a.verify(ctx, authorization)
	if err != nil {
		a.limiter.Fail(host, now)
		id.err = status.New(codes.Unauthenticated, err.Error())
		return id
	}
	id.subject, id.via = user, viaToken
	return id
}

// verify checks one "Bearer cave_..." credential against the stored
// token records and returns its user, or an error for the client that
// never contains the token.
func (a *authz) verify(ctx context.Context, authorization []string) (string, error) {
	if len(authorization) > 1 {
		return "", fmt.Errorf("send one authorization header, got %d", len(authorization))
	}
	scheme, token, ok := strings.Cut(authorization[0], " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return "", fmt.Errorf("the authorization header must be \"Bearer cave_...\"")
	}
	user, err := a.policy.Verify(ctx, strings.TrimSpace(token))
	switch {
	case err == nil:
		return user, nil
	case errors.Is(err, auth.ErrExpiredToken):
		return "", fmt.Errorf("bearer token expired")
	case errors.Is(err, auth.ErrRevokedToken):
		return "", fmt.Errorf("bearer token revoked")
	}
	return "", fmt.Errorf("bearer token is not valid")
}

// decide applies r to a call by id on key; nil allows it. With the ACL
// off, every listed call is allowed.
func (a *authz) decide(id identity, r rule, key string) *status.Status {
	if !a.enabled || r.access == accessOpen || r.access == accessNode {
		return nil
	}
	if id.err != nil {
		return id.err
	}
	if id.subject == "" {
		return status.New(codes.Unauthenticated, "authentication required: present a client certificate or an \"authorization: Bearer cave_...\" token")
	}
	if r.emptyIdentified && key == "" {
		return nil
	}
	if r.access != accessIdentified && !a.policy.Loaded() {
		return status.New(codes.Unavailable, "the access policy is not loaded yet (the node is starting); retry shortly")
	}
	switch r.access {
	case accessIdentified:
		return nil
	case accessKey:
		if a.policy.Allowed(id.subject, key, r.action) {
			return nil
		}
		return status.Newf(codes.PermissionDenied, "%s may not %s %q", id.subject, r.action, key)
	case accessAdmin:
		if a.policy.AllowedAdmin(id.subject) {
			return nil
		}
		return status.Newf(codes.PermissionDenied, "%s may not make administration calls (needs admin on every key)", id.subject)
	}
	return status.Newf(codes.PermissionDenied, "no access rule for this call")
}

// check finds the rule of a gRPC method and decides a call on req (nil
// for a stream). It returns the rule for auditing.
func (a *authz) check(id identity, method string, req any) (rule, string, *status.Status) {
	r, ok := methodRules[method]
	if !ok {
		a.lg.Error("refused a method that has no access rule", "method", method)
		return rule{audit: true}, "", status.Newf(codes.PermissionDenied, "method %s has no access rule", method)
	}
	key := ""
	if r.key != nil && req != nil {
		key = r.key(req)
	}
	return r, key, a.decide(id, r, key)
}

// record writes the audit line of a call when its rule asks for one or it
// was refused. Only the request's key, never its value, is written.
func (a *authz) record(id identity, method string, r rule, key string, req any, err error) {
	code := status.Code(err)
	refused := code == codes.PermissionDenied || code == codes.Unauthenticated || code == codes.ResourceExhausted && id.err != nil
	if !r.audit && !refused {
		return
	}
	result := audit.ResultOK
	switch {
	case code == codes.PermissionDenied:
		result = audit.ResultDenied
	case err != nil:
		result = code.String()
	}
	e := audit.Event{Subject: id.subject, Source: id.source, Method: method, Key: key, Result: result}
	if m, ok := req.(proto.Message); ok && r.detail {
		e.Detail = prototext.MarshalOptions{}.Format(m)
	}
	a.audit.Log(e)
}

// grpcIdentity authenticates a gRPC call to method, or returns the
// identity that httpMiddleware established for a REST call. Calls to
// methods that need no identity (health, the node-only Peer service) are
// not authenticated, so a credential they happen to carry is neither
// checked nor counted as a failure.
func (a *authz) grpcIdentity(ctx context.Context, method string) identity {
	if id, ok := identityFrom(ctx); ok {
		return id
	}
	var source string
	var state *tls.ConnectionState
	if p, ok := peer.FromContext(ctx); ok {
		if p.Addr != nil {
			source = p.Addr.String()
		}
		if info, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			state = &info.State
		}
	}
	if r, ok := methodRules[method]; ok && (r.access == accessOpen || r.access == accessNode) {
		return identity{source: source}
	}
	md, _ := metadata.FromIncomingContext(ctx)
	return a.authenticate(ctx, source, state, md.Get("authorization"))
}

// unary is the gRPC unary interceptor, also run by localConn for REST.
func (a *authz) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	id := a.grpcIdentity(ctx, info.FullMethod)
	r, key, st := a.check(id, info.FullMethod, req)
	if st != nil {
		a.record(id, info.FullMethod, r, key, req, st.Err())
		return nil, st.Err()
	}
	resp, err := handler(context.WithValue(ctx, identityKey{}, id), req)
	a.record(id, info.FullMethod, r, key, req, err)
	return resp, err
}

// stream is the gRPC stream interceptor (KV.Watch, health Watch,
// reflection, Admin Apply). A server-streaming call whose rule names a key
// is decided on its request, when the handler receives it, before anything
// is sent; any other stream is decided before it starts, and an audited one
// is recorded when it ends, with its result.
func (a *authz) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	id := a.grpcIdentity(ss.Context(), info.FullMethod)
	if r, ok := methodRules[info.FullMethod]; ok && r.key != nil && info.IsServerStream && !info.IsClientStream {
		return handler(srv, &checkedStream{ServerStream: ss, a: a, id: id, method: info.FullMethod,
			ctx: context.WithValue(ss.Context(), identityKey{}, id)})
	}
	r, _, st := a.check(id, info.FullMethod, nil)
	if st != nil {
		a.record(id, info.FullMethod, r, "", nil, st.Err())
		return st.Err()
	}
	err := handler(srv, ss)
	a.record(id, info.FullMethod, r, "", nil, err)
	return err
}

// checkedStream decides a server-streaming call on its one request.
type checkedStream struct {
	grpc.ServerStream
	a       *authz
	id      identity
	method  string
	ctx     context.Context
	checked bool
}

// Context returns the stream's context with the caller's identity.
func (s *checkedStream) Context() context.Context { return s.ctx }

// RecvMsg receives the request and refuses it when the caller may not
// make the call.
func (s *checkedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil || s.checked {
		return err
	}
	s.checked = true
	r, key, st := s.a.check(s.id, s.method, m)
	if st != nil {
		s.a.record(s.id, s.method, r, key, m, st.Err())
		return st.Err()
	}
	return nil
}

// mayRead reports whether the caller whose identity ctx carries may read
// key; with the ACL off, always.
func (a *authz) mayRead(ctx context.Context, key string) bool {
	if !a.enabled {
		return true
	}
	id, _ := identityFrom(ctx)
	return a.decide(id, readKey, key) == nil
}

// maxAuthBodyBytes bounds the body of /api/v1/auth requests.
const maxAuthBodyBytes = 64 << 10

// httpMiddleware authenticates every HTTP request and leaves its identity
// in the request's context for the interceptor. It refuses, before the
// body is read, a request that lacks the identity its path needs, and
// decides the paths that are not grpc-gateway routes (metrics, logs,
// system views, UI) by httpRoutes. It bounds the body of auth API calls.
func (a *authz) httpMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var authz []string
		if h := r.Header.Values("Authorization"); len(h) > 0 {
			authz = h
		}
		id := a.authenticate(r.Context(), r.RemoteAddr, r.TLS, authz)
		route := routeRule(r.URL.Path)
		rl := route.rule
		if route.gateway {
			// The method's own rule decides later; every REST method needs
			// at least an identity.
			rl = identified
		}
		if st := a.decide(id, rl, ""); st != nil {
			a.record(id, r.Method+" "+r.URL.Path, rl, "", nil, st.Err())
			writeAuthError(w, st, id.retryAfter)
			return
		}
		if !route.gateway && rl.audit {
			a.record(id, r.Method+" "+r.URL.Path, rl, "", nil, nil)
		}
		if strings.HasPrefix(r.URL.Path, "/api/v1/auth/") && !readBody(w, r, maxAuthBodyBytes) {
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), identityKey{}, id)))
	})
}

// writeAuthError writes an authentication or authorization refusal: 401
// with a WWW-Authenticate challenge, 403, or 429 with Retry-After.
func writeAuthError(w http.ResponseWriter, st *status.Status, retryAfter time.Duration) {
	switch st.Code() {
	case codes.ResourceExhausted:
		w.Header().Set("Retry-After", strconv.Itoa(int(retryAfter.Round(time.Second)/time.Second)+1))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		_ = json.NewEncoder(w).Encode(errorBody{Code: st.Code(), Status: codeName(st.Code()), Message: st.Message()})
		return
	case codes.Unauthenticated:
		w.Header().Set("WWW-Authenticate", `Bearer realm="cave"`)
	}
	writeError(w, st)
}

// readBody reads r's body, at most limit bytes, before anything decodes
// it, so that an oversize body is refused with 413 whatever its framing.
// It reports whether the request may go on; if not, it has answered.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) bool {
	if r.ContentLength > limit {
		writeError(w, status.Newf(codes.ResourceExhausted, "request body is larger than the limit of %d bytes", limit))
		return false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, status.Newf(codes.ResourceExhausted, "request body is larger than the limit of %d bytes", limit))
			return false
		}
		writeError(w, status.Newf(codes.InvalidArgument, "reading request body: %v", err))
		return false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	return true
}

// AuthConfig configures access control and the audit log.
type AuthConfig struct {
	// Enabled enforces the access policy on every gRPC and REST call: on
	// in --mode=prod with TLS, off in dev mode and with --insecure, where
	// every call is allowed. Tests turn it on without TLS to use bearer
	// tokens alone; the node-to-node Peer service is then open, since only
	// TLS tells nodes from clients (Config.TLS).
	Enabled bool
	// Meta stores the policy in the meta shard under auth.MetaNamespace:
	// NodeMeta of the node. Required.
	Meta auth.Store
	// Audit receives an audit line for every write, delete, admin and auth
	// call and every refusal (--audit-log). Nil writes none. The Server
	// only logs to it; its creator closes it after Shutdown.
	Audit *audit.Logger
	// Failures limits failed authentications per client address
	// (--auth-failure-*). Default auth.DefaultLimiterConfig.
	Failures auth.LimiterConfig
	// Now is the clock of token issue and expiry and of the failure
	// limiter. Default time.Now; required.
	Now func() time.Time
}

// Validate reports every problem with c.
func (c AuthConfig) Validate() error {
	var errs []error
	if c.Meta == nil || c.Now == nil {
		errs = append(errs, errors.New("gateway: Auth.Meta and Auth.Now must be set"))
	}
	return errors.Join(append(errs, c.Failures.Validate())...)
}

// newAuthz returns the access control of cfg; its policy is empty, which
// denies every grant, until the policy's Run loop loads it.
func newAuthz(cfg AuthConfig, lg *slog.Logger) (*authz, error) {
	lim, err := auth.NewLimiter(cfg.Failures)
	if err != nil {
		return nil, err
	}
	mcfg := auth.DefaultManagerConfig()
	mcfg.Store, mcfg.Logger, mcfg.Now, mcfg.Expected = cfg.Meta, lg, cfg.Now, expectedMetaError
	pm, err := auth.NewManager(mcfg)
	if err != nil {
		return nil, err
	}
	return &authz{enabled: cfg.Enabled, policy: pm, limiter: lim, audit: cfg.Audit, now: cfg.Now, lg: lg}, nil
}

// policyCreated logs, on the node that created the bootstrap policy, how
// to get the first administrator credential.
func (a *authz) policyCreated() {
	a.lg.Info("access policy created: role "+auth.AdminRole+" has admin on every key and user "+auth.RootUser+" is bound to it",
		"first_admin", "a client certificate with common name "+auth.RootUser+" signed by the cluster CA, made with: cave certs client --dir DIR --name "+auth.RootUser,
		"enforced", a.enabled)
}
