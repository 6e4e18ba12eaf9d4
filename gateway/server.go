// Package gateway serves cave's APIs: the gRPC services (KV, Cluster,
// Secrets, Auth, Admin, the node-to-node Data and Control services, health and
// reflection) and the REST API under /api/v1. The key routes
// (/api/v1/kv/...) have a handler of their own (kvhttp.go) that calls the
// KV service directly through the same access check; grpc-gateway maps
// every other route onto the gRPC handlers.
package gateway

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/cavedb/cave/auth"
	"github.com/cavedb/cave/gateway/apidocs"
	"github.com/cavedb/cave/peer"
	adminv1 "github.com/cavedb/cave/proto/cave/admin/v1"
	authv1 "github.com/cavedb/cave/proto/cave/auth/v1"
	clusterv1 "github.com/cavedb/cave/proto/cave/cluster/v1"
	kvv1 "github.com/cavedb/cave/proto/cave/kv/v1"
	peerv1 "github.com/cavedb/cave/proto/cave/peer/v1"
	secretsv1 "github.com/cavedb/cave/proto/cave/secrets/v1"
	"github.com/cavedb/cave/router"
	"github.com/cavedb/cave/secrets"
	"github.com/cavedb/cave/tlsconfig"
	"github.com/cavedb/cave/ui"
)

// Config configures a Server.
type Config struct {
	// Router executes key-value operations. Required.
	Router *router.Router
	// Cluster answers the cluster views and readiness. Required.
	Cluster ClusterView
	// Admin serves the admin API (cave.admin.v1.Admin). Required.
	Admin Admin
	// Peer serves the node-to-node protocol on the gRPC port. Required.
	Peer PeerServices
	// Logger receives request errors. Required.
	Logger *slog.Logger
	// MaxValueBytes is the largest value accepted (--max-value-bytes).
	// Default 1 MiB.
	MaxValueBytes int
	// HTTPReadTimeout is how long the HTTP port waits for a whole request,
	// headers and body, before it closes the connection
	// (--http-read-timeout). Default 30s; zero means no limit.
	HTTPReadTimeout time.Duration
	// HTTPWriteTimeout is how long the HTTP port gives a request from the
	// end of its headers to the end of the answer, before it closes the
	// connection (--http-write-timeout). Default 1m; zero means no limit.
	HTTPWriteTimeout time.Duration
	// Metrics registers the request metrics (cave_gateway_*) and
	// cave_build_info. Required; give each node its own registry, never
	// the global one.
	Metrics prometheus.Registerer
	// Gatherer is what /api/v1/perf/metrics serves: normally the registry
	// behind Metrics, holding every package's and the Go runtime's
	// collectors. Required.
	Gatherer prometheus.Gatherer
	// Logs holds the recent log records served by /api/v1/perf/logs.
	// Required.
	Logs LogSource
	// System is the static part of /api/v1/system/info.
	System SystemInfo
	// Settings is the effective configuration served, secrets redacted, by
	// /api/v1/system/config.
	Settings []ConfigEntry
	// TLS, when set, is the node's certificate material (--tls-*). The gRPC
	// port then requires a client certificate from the cluster CA on every
	// connection and admits only node certificates to the Peer service
	// (peer.NodeOnlyUnary); the HTTP port serves HTTPS and verifies a
	// client certificate when one is sent (callers with a bearer token may
	// come without). Nil serves plain gRPC and HTTP (--insecure, dev mode).
	// Certificates follow TLS.Reload at the next handshake.
	TLS *tlsconfig.Source
	// Secrets configures secret=true values and the Secrets service.
	// Required.
	Secrets SecretsConfig
	// Auth configures access control, the Auth service and the audit log.
	Auth AuthConfig
	// Watch limits and paces watches. Default DefaultWatchConfig.
	Watch WatchConfig
}

// DefaultConfig returns a Config with the optional fields set.
func DefaultConfig() Config {
	return Config{MaxValueBytes: 1 << 20, HTTPReadTimeout: 30 * time.Second, HTTPWriteTimeout: time.Minute, Auth: AuthConfig{Failures: auth.DefaultLimiterConfig(), Now: time.Now}, Watch: DefaultWatchConfig()}
}

// Validate reports every problem with c.
func (c Config) Validate() error {
	var errs []error
	if c.Router == nil || c.Cluster == nil || c.Admin == nil || c.Peer.Data == nil || c.Peer.Control == nil || c.Logger == nil {
		errs = append(errs, errors.New("gateway: Router, Cluster, Admin, Peer and Logger must be set"))
	}
	if c.Metrics == nil || c.Gatherer == nil || c.Logs == nil {
		errs = append(errs, errors.New("gateway: Metrics, Gatherer and Logs must be set"))
	}
	errs = append(errs, c.ValidateSettings(), c.Secrets.Validate(), c.Auth.Validate())
	return errors.Join(errs...)
}

// ValidateSettings reports every problem with the settings an operator
// chooses (--max-value-bytes, --http-*-timeout), without the
// collaborators, so that a caller can check them before it builds those.
// Validate includes it.
func (c Config) ValidateSettings() error {
	var errs []error
	if c.MaxValueBytes < 1 || c.MaxValueBytes > 64<<20 {
		errs = append(errs, fmt.Errorf("gateway: --max-value-bytes must be in [1, %d], got %d", 64<<20, c.MaxValueBytes))
	}
	if c.HTTPReadTimeout < 0 {
		errs = append(errs, fmt.Errorf("gateway: --http-read-timeout must be >= 0 (0: no limit), got %s", c.HTTPReadTimeout))
	}
	if c.HTTPWriteTimeout < 0 {
		errs = append(errs, fmt.Errorf("gateway: --http-write-timeout must be >= 0 (0: no limit), got %s", c.HTTPWriteTimeout))
	}
	errs = append(errs, c.Watch.Validate())
	return errors.Join(errs...)
}

// PeerServices are the node-to-node services the gRPC port serves next to
// the public ones (package peer builds them). They are never on REST.
type PeerServices struct {
	Data    peerv1.DataServer
	Control peerv1.ControlServer
}

// Server holds the gRPC and HTTP servers of one node.
type Server struct {
	cfg    Config
	grpc   *grpc.Server
	http   *http.Server
	health *health.Server
	authz  *authz
	kv     *kvService
	stop   context.CancelFunc // ends the background loops Serve starts
	wg     sync.WaitGroup
}

// New builds the servers; Serve starts them.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	met, err := newMetrics(cfg.Metrics, cfg.System)
	if err != nil {
		return nil, fmt.Errorf("gateway: register metrics: %w", err)
	}
	scfg := secrets.DefaultManagerConfig()
	scfg.Store, scfg.KEK, scfg.Logger = cfg.Secrets.Meta, cfg.Secrets.KEK, cfg.Logger
	keys, err := secrets.NewManager(scfg)
	if err != nil {
		return nil, err
	}
	kv := &kvService{r: cfg.Router, lg: cfg.Logger, maxValueBytes: cfg.MaxValueBytes, secrets: keys}
	sec := &secretsService{m: keys, lg: cfg.Logger}
	cl := &clusterService{view: cfg.Cluster, lg: cfg.Logger}
	z, err := newAuthz(cfg.Auth, cfg.Logger)
	if err != nil {
		return nil, err
	}
	if kv.watches, err = newWatchers(cfg.Watch, cfg.Metrics); err != nil {
		return nil, fmt.Errorf("gateway: register metrics: %w", err)
	}
	kv.clusterID, kv.mayRead = cfg.Cluster.ClusterID, z.mayRead
	rec := recovery{lg: cfg.Logger}
	gopts := []grpc.ServerOption{grpc.MaxRecvMsgSize(cfg.MaxValueBytes + 64<<10),
		grpc.ChainUnaryInterceptor(rec.unary, met.unary, z.unary), grpc.ChainStreamInterceptor(rec.stream, z.stream)}
	if cfg.TLS != nil {
		gopts = append(gopts, grpc.Creds(cfg.TLS.Credentials(tls.RequireAndVerifyClientCert)),
			grpc.ChainUnaryInterceptor(peer.NodeOnlyUnary()), grpc.ChainStreamInterceptor(peer.NodeOnlyStream()))
	}
	gs := grpc.NewServer(gopts...)
	// Every public service is registered through local, so that REST
	// reaches it through the same access check as gRPC (authconn.go).
	local := &localConn{intercept: rec.then(z.unary), methods: map[string]localMethod{}}
	local.register(gs, &kvv1.KV_ServiceDesc, kv)
	local.register(gs, &clusterv1.Cluster_ServiceDesc, cl)
	local.register(gs, &secretsv1.Secrets_ServiceDesc, sec)
	local.register(gs, &authv1.Auth_ServiceDesc, &authService{z: z, lg: cfg.Logger})
	local.register(gs, &adminv1.Admin_ServiceDesc, &adminService{admin: cfg.Admin, lg: cfg.Logger})
	peerv1.RegisterDataServer(gs, cfg.Peer.Data)
	peerv1.RegisterControlServer(gs, cfg.Peer.Control)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	reflection.Register(gs)

	allow, err := newAllowTable(apidocs.OpenAPI)
	if err != nil {
		return nil, err
	}
	mux := newRESTMux(allow)
	ctx := context.Background()
	if err := kvv1.RegisterKVHandlerClient(ctx, mux, kvv1.NewKVClient(local)); err != nil {
		return nil, err
	}
	if err := clusterv1.RegisterClusterHandlerClient(ctx, mux, clusterv1.NewClusterClient(local)); err != nil {
		return nil, err
	}
	if err := secretsv1.RegisterSecretsHandlerClient(ctx, mux, secretsv1.NewSecretsClient(local)); err != nil {
		return nil, err
	}
	if err := authv1.RegisterAuthHandlerClient(ctx, mux, authv1.NewAuthClient(local)); err != nil {
		return nil, err
	}
	if err := adminv1.RegisterAdminHandlerClient(ctx, mux, adminv1.NewAdminClient(local)); err != nil {
		return nil, err
	}
	if cfg.System.Started.IsZero() {
		cfg.System.Started = time.Now()
	}
	s := &Server{cfg: cfg, grpc: gs, health: hs, authz: z, kv: kv}
	root := http.NewServeMux()
	handleGET(root, "/api/v1/health", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	handleGET(root, "/api/v1/ready", s.ready)
	root.Handle("GET /api/v1/watch", newWatchHTTP(kv, local.intercept))
	handleGET(root, "/api/v1/perf/metrics", metricsHandler(cfg.Gatherer, cfg.Logger).ServeHTTP)
	handleGET(root, "/api/v1/perf/logs", logsHandler(cfg.Logs))
	handleGET(root, "/api/v1/perf/dashboard", dashboardHandler)
	handleGET(root, "/api/v1/system/info", s.infoHandler)
	handleGET(root, "/api/v1/system/config", configHandler(cfg.Settings))
	handleGET(root, "/api/v1/openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(apidocs.OpenAPI)
	})
	root.Handle("/ui/", ui.Handler()) // web UI; http.ServeMux redirects /ui to /ui/
	root.Handle("/", adaptREST(mux))
	s.http = &http.Server{
		Handler:           met.instrument(z.httpMiddleware(withoutPathCleaning(root, newKVHTTP(kv, local.intercept, cfg.MaxValueBytes, adaptREST(mux))))),
		ReadHeaderTimeout: min(10*time.Second, cmp.Or(cfg.HTTPReadTimeout, 10*time.Second)),
		ReadTimeout:       cfg.HTTPReadTimeout,
		WriteTimeout:      cfg.HTTPWriteTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	if cfg.TLS != nil {
		s.http.TLSConfig = cfg.TLS.ServerConfig(tls.VerifyClientCertIfGiven)
		s.http.TLSConfig.NextProtos = []string{"h2", "http/1.1"}
	}
	return s, nil
}

// handleGET registers h on mux for GET and HEAD of path, and a 405 that
// names them for every other method.
func handleGET(mux *http.ServeMux, path string, h http.HandlerFunc) {
	mux.Handle("GET "+path, h)
	mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) { methodNotAllowed(w, r, "GET, HEAD") })
}

// withoutPathCleaning sends /api/v1/kv paths straight to kv: http.ServeMux
// would answer a key path containing ".." with a redirect, while the
// contract wants a 400 that names the bad segment.
func withoutPathCleaning(root http.Handler, kv http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.URL.Path) >= len(kvPath)-1 && r.URL.Path[:len(kvPath)-1] == kvPath[:len(kvPath)-1] {
			kv.ServeHTTP(w, r)
			return
		}
		root.ServeHTTP(w, r)
	})
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	if err := s.cfg.Cluster.Ready(r.Context()); err != nil {
		writeError(w, status.New(codes.Unavailable, "not ready: "+err.Error()))
		return
	}
	if s.authz.enabled && !s.authz.policy.Loaded() {
		writeError(w, status.New(codes.Unavailable, "not ready: the access policy is not loaded yet"))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// Serve starts serving gRPC on grpcLn and HTTP (HTTPS with Config.TLS) on
// httpLn in the background. Serving errors are logged; Shutdown stops both.
func (s *Server) Serve(httpLn, grpcLn net.Listener) {
	ctx, stop := context.WithCancel(context.Background())
	s.stop = stop
	s.wg.Add(3)
	go func() {
		defer s.wg.Done()
		s.authz.policy.Run(ctx, s.authz.policyCreated)
	}()
	go func() {
		defer s.wg.Done()
		if err := s.grpc.Serve(grpcLn); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			s.cfg.Logger.Error("grpc server stopped", "err", err)
		}
	}()
	go func() {
		defer s.wg.Done()
		serve := s.http.Serve
		if s.http.TLSConfig != nil {
			serve = func(ln net.Listener) error { return s.http.ServeTLS(ln, "", "") }
		}
		if err := serve(httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.cfg.Logger.Error("http server stopped", "err", err)
		}
	}()
}

// Shutdown stops accepting requests, ends open watches (Unavailable: the
// watcher resumes elsewhere with its token) and waits for in-flight
// requests until ctx is done, then closes what remains.
func (s *Server) Shutdown(ctx context.Context) {
	s.health.Shutdown()
	s.kv.watches.shutdown()
	_ = s.http.Shutdown(ctx)
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.grpc.Stop()
	}
	if s.stop != nil {
		s.stop()
	}
	s.wg.Wait()
}
