package gateway

import (
	"context"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"time"

	gwruntime "github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// requestBuckets are the latency buckets of the request histograms, in
// seconds: from a cached stale read to a write that waited out an election.
var requestBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// metrics are the gateway's request metrics. gRPC calls are counted by the
// unary interceptor; REST calls by the HTTP middleware only: grpc-gateway
// (through localConn) and kvHTTP call the services in process with the
// access check but not this interceptor, so a REST call is counted exactly
// once.
type metrics struct {
	grpcRequests *prometheus.CounterVec   // method, code
	grpcSeconds  *prometheus.HistogramVec // method, code
	httpRequests *prometheus.CounterVec   // route, method, code
	httpSeconds  *prometheus.HistogramVec // route, method, code
}

func newMetrics(reg prometheus.Registerer, info SystemInfo) (*metrics, error) {
	m := &metrics{
		grpcRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cave_gateway_grpc_requests_total",
			Help: "Unary gRPC requests handled, by full method name and gRPC status code.",
		}, []string{"method", "code"}),
		grpcSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cave_gateway_grpc_request_duration_seconds",
			Help:    "Time to handle unary gRPC requests, by full method name and gRPC status code.",
			Buckets: requestBuckets,
		}, []string{"method", "code"}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cave_gateway_http_requests_total",
			Help: "HTTP requests handled (REST API, metrics, UI), by route pattern, HTTP method and status code.",
		}, []string{"route", "method", "code"}),
		httpSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cave_gateway_http_request_duration_seconds",
			Help:    "Time to handle HTTP requests, by route pattern, HTTP method and status code.",
			Buckets: requestBuckets,
		}, []string{"route", "method", "code"}),
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "cave_build_info",
		Help: "Always 1; the labels name the running cave build.",
		ConstLabels: prometheus.Labels{"version": info.Version, "commit": info.Commit,
			"build_date": info.BuildDate, "go_version": runtime.Version()},
	})
	build.Set(1)
	var done []prometheus.Collector
	for _, c := range []prometheus.Collector{m.grpcRequests, m.grpcSeconds, m.httpRequests, m.httpSeconds, build} {
		if err := reg.Register(c); err != nil {
			for _, d := range done {
				reg.Unregister(d)
			}
			return nil, err
		}
		done = append(done, c)
	}
	return m, nil
}

// unary is the gRPC unary interceptor that counts and times every call.
// Unknown methods never reach interceptors, so the method label is bounded
// by the registered services.
func (m *metrics) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	code := status.Code(err).String()
	m.grpcRequests.WithLabelValues(info.FullMethod, code).Inc()
	m.grpcSeconds.WithLabelValues(info.FullMethod, code).Observe(time.Since(start).Seconds())
	return resp, err
}

// routeKey is the context key of a request's *routeHolder.
type routeKey struct{}

// routeHolder receives the route pattern a request matched. The request's
// own goroutine writes it (grpc-gateway's metadata annotator runs in the
// handler) and the middleware reads it after the handler returned.
type routeHolder struct{ route string }

// recordRoute is a grpc-gateway metadata annotator. It adds no metadata:
// it runs after grpc-gateway has matched the request and put the route's
// pattern, such as /api/v1/kv/{key=**}, in ctx, and hands that pattern to
// the HTTP middleware.
func recordRoute(ctx context.Context, _ *http.Request) metadata.MD {
	if h, ok := ctx.Value(routeKey{}).(*routeHolder); ok {
		if p, ok := gwruntime.HTTPPathPattern(ctx); ok {
			h.route = p
		}
	}
	return nil
}

// kvRoute is the route label of the /api/v1/kv requests, which kvHTTP
// serves without grpc-gateway: the pattern grpc-gateway would match.
const kvRoute = "/api/v1/kv/{key=**}"

// routeOf returns the bounded route label of a handled request: the
// grpc-gateway pattern it matched, else the http.ServeMux pattern without
// its method, else "unmatched". Never the raw path, which holds keys.
func routeOf(r *http.Request, h *routeHolder) string {
	if h.route != "" {
		return h.route
	}
	if p := r.Pattern; p != "" && p != "/" {
		if _, path, ok := strings.Cut(p, " "); ok {
			return path
		}
		return p
	}
	if strings.HasPrefix(r.URL.Path, strings.TrimSuffix(kvPath, "/")) {
		return kvRoute
	}
	return "unmatched"
}

// httpMethod bounds the method label to the standard methods.
func httpMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete,
		http.MethodPatch, http.MethodOptions:
		return m
	}
	return "other"
}

// instrument counts and times every HTTP request served by next.
func (m *metrics) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		h := &routeHolder{}
		r = r.WithContext(context.WithValue(r.Context(), routeKey{}, h))
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		code := rec.code
		if code == 0 {
			code = http.StatusOK
		}
		labels := []string{routeOf(r, h), httpMethod(r.Method), strconv.Itoa(code)}
		m.httpRequests.WithLabelValues(labels...).Inc()
		m.httpSeconds.WithLabelValues(labels...).Observe(time.Since(start).Seconds())
	})
}

// statusRecorder remembers the status code written through it.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 && code >= 200 { // 1xx responses are interim
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Flush implements http.Flusher when the underlying writer does.
func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
