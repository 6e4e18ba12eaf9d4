package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cavedb/cave/internal/logbuf"
)

func TestSecretSetting(t *testing.T) {
	t.Parallel()
	cases := map[string]bool{
		"tls-key":         true,
		"kek-file":        true,
		"auth-token":      true,
		"admin-password":  true,
		"client-secret":   true,
		"TLS_KEY":         true,
		"api-key-file":    true,
		"credentials":     true,
		"http-addr":       false,
		"node-name":       false,
		"max-value-bytes": false,
		"tls-cert":        false,
		"tls-ca":          false,
		"replicas":        false,
		"config":          false,
	}
	for name, want := range cases {
		assert.Equal(t, want, secretSetting(name), "secretSetting(%q)", name)
	}
}

func TestConfigHandlerRedacts(t *testing.T) {
	t.Parallel()
	entries := []ConfigEntry{
		{Name: "http-addr", Value: "127.0.0.1:8740", Source: "default"},
		{Name: "tls-key", Value: "/etc/cave/very-private-node.key", Source: "flag"},
		{Name: "kek-file", Value: "/etc/cave/kek-material", Source: "env"},
		{Name: "auth-token", Value: "tok-3a9f1c", Source: "file"},
		{Name: "admin-password", Value: "", Source: "default"},
	}
	rec := httptest.NewRecorder()
	configHandler(entries).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/system/config", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	body := rec.Body.String()
	for _, secret := range []string{"very-private-node", "kek-material", "tok-3a9f1c"} {
		assert.NotContains(t, body, secret, "a secret setting's value is served")
	}
	var got configResponse
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got), body)
	assert.Equal(t, []ConfigEntry{
		{Name: "http-addr", Value: "127.0.0.1:8740", Source: "default"},
		{Name: "tls-key", Value: redacted, Source: "flag"},
		{Name: "kek-file", Value: redacted, Source: "env"},
		{Name: "auth-token", Value: redacted, Source: "file"},
		{Name: "admin-password", Value: "", Source: "default"},
	}, got.Config)
	assert.Equal(t, "/etc/cave/very-private-node.key", entries[1].Value, "the caller's entries are not modified")
}

// fakeLogs records the query it was asked.
type fakeLogs struct {
	got     logbuf.Query
	entries []logbuf.Entry
}

func (f *fakeLogs) Query(q logbuf.Query) []logbuf.Entry {
	f.got = q
	return f.entries
}

func TestLogsHandlerBadInput(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"level=loud":          "level",
		"limit=0":             "limit",
		"limit=-1":            "limit",
		"limit=ten":           "limit",
		"limit=10001":         "limit",
		"since=yesterday":     "since",
		"since=1700000000":    "since",
		"level=info&limit=x1": "limit",
	}
	for query, mentions := range cases {
		t.Run(query, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			logsHandler(&fakeLogs{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/perf/logs?"+query, nil))
			assert.Equal(t, http.StatusBadRequest, rec.Code)
			var eb errorBody
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &eb), rec.Body.String())
			assert.Equal(t, "INVALID_ARGUMENT", eb.Status)
			assert.Contains(t, eb.Message, mentions)
		})
	}
}

func TestLogsHandlerQuery(t *testing.T) {
	t.Parallel()
	buf := logbuf.NewBuffer(10)
	lg := slog.New(logbuf.NewHandler(slog.DiscardHandler, buf, slog.LevelDebug))
	lg.Debug("d")
	lg.Info("i", "shard_id", 3)
	lg.Warn("w")
	get := func(query string) logsResponse {
		t.Helper()
		rec := httptest.NewRecorder()
		logsHandler(buf).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/perf/logs?"+query, nil))
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		var out logsResponse
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &out), rec.Body.String())
		return out
	}
	msgs := func(r logsResponse) []string {
		var out []string
		for _, e := range r.Entries {
			out = append(out, e.Msg)
		}
		return out
	}
	assert.Equal(t, []string{"d", "i", "w"}, msgs(get("")))
	assert.Equal(t, []string{"i", "w"}, msgs(get("level=info")))
	assert.Equal(t, []string{"w"}, msgs(get("level=WARN&limit=1")))
	all := get("")
	assert.Equal(t, "INFO", all.Entries[1].Level)
	assert.InDelta(t, 3, all.Entries[1].Attrs["shard_id"], 0)
	last := all.Entries[2].Time
	assert.Empty(t, get("since="+url.QueryEscape(last.Format(time.RFC3339Nano))).Entries, "since is exclusive")
	assert.Len(t, get("since="+url.QueryEscape(last.Add(-time.Hour).Format(time.RFC3339Nano))).Entries, 3)

	// An unescaped "+" of a zone offset reaches the server as a space.
	f := &fakeLogs{}
	rec := httptest.NewRecorder()
	logsHandler(f).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/perf/logs?since=2025-01-02T03:04:05+02:00", nil))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.True(t, f.got.Since.Equal(time.Date(2025, 1, 2, 1, 4, 5, 0, time.UTC)), "since = %s", f.got.Since)
	assert.Equal(t, defaultLogLimit, f.got.Limit)
	assert.JSONEq(t, `{"entries":[]}`, rec.Body.String(), "no entries is an empty list, not null")
}

func TestRouteOf(t *testing.T) {
	t.Parallel()
	req := func(path, pattern string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		r.Pattern = pattern
		return r
	}
	ctxRoute := func(route string) *routeHolder { return &routeHolder{route: route} }
	assert.Equal(t, "/api/v1/keys", routeOf(req("/api/v1/keys?prefix=a", "/"), ctxRoute("/api/v1/keys")), "grpc-gateway's pattern wins")
	assert.Equal(t, "/api/v1/health", routeOf(req("/api/v1/health", "GET /api/v1/health"), ctxRoute("")), "ServeMux pattern without the method")
	assert.Equal(t, "/ui/", routeOf(req("/ui/app.js", "/ui/"), ctxRoute("")))
	assert.Equal(t, kvRoute, routeOf(req("/api/v1/kv/users/42", ""), ctxRoute("")), "kv paths rejected before grpc-gateway")
	assert.Equal(t, kvRoute, routeOf(req("/api/v1/kv", ""), ctxRoute("")))
	assert.Equal(t, "unmatched", routeOf(req("/api/v1/secret/users/42", "/"), ctxRoute("")), "never the raw path")
	assert.Equal(t, "other", httpMethod("BREW"))
	assert.Equal(t, "PUT", httpMethod("PUT"))
}

// brokenPipe is a ResponseWriter whose client has gone: every Write fails
// as a write to a closed connection does.
type brokenPipe struct{ header http.Header }

func (b *brokenPipe) Header() http.Header { return b.header }
func (b *brokenPipe) WriteHeader(int)     {}
func (b *brokenPipe) Write([]byte) (int, error) {
	return 0, &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", syscall.EPIPE)}
}

// failingCollector is a collector whose Collect always fails.
type failingCollector struct{ desc *prometheus.Desc }

func (f failingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- f.desc }
func (f failingCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.NewInvalidMetric(f.desc, errors.New("disk stats unavailable"))
}

// TestMetricsScrapeLogs checks that a scraper that closes the connection
// early is logged at debug, while a collector that fails is an error.
func TestMetricsScrapeLogs(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	lg := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "cave_test_total", Help: "a test counter"})
	require.NoError(t, reg.Register(c))
	metricsHandler(reg, lg).ServeHTTP(&brokenPipe{header: http.Header{}}, httptest.NewRequest(http.MethodGet, "/api/v1/perf/metrics", nil))
	assert.Contains(t, logs.String(), "level=DEBUG")
	assert.Contains(t, logs.String(), "broken pipe")
	assert.NotContains(t, logs.String(), "level=ERROR")

	logs.Reset()
	require.NoError(t, reg.Register(failingCollector{desc: prometheus.NewDesc("cave_test_broken", "a broken collector", nil, nil)}))
	rec := httptest.NewRecorder()
	metricsHandler(reg, lg).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/perf/metrics", nil))
	assert.Contains(t, logs.String(), "level=ERROR")
	assert.Contains(t, logs.String(), "disk stats unavailable")
	assert.Contains(t, rec.Body.String(), "cave_test_total", "the other metrics are still served")
}
