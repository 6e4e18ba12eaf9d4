package gateway_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/cavedb/cave/gateway/dashboard"
	"github.com/cavedb/cave/internal/nodetest"
	kvv1 "github.com/cavedb/cave/proto/cave/kv/v1"
)

// scrape returns the metric families of a node's /api/v1/perf/metrics.
func scrape(t *testing.T, ctx context.Context, base string) map[string]*dto.MetricFamily {
	t.Helper()
	r := send(t, ctx, http.MethodGet, base+"/perf/metrics", "")
	require.Equal(t, http.StatusOK, r.status, r.body)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(r.body))
	require.NoError(t, err, "parse the scrape")
	return fams
}

// value returns the value of the series of family name whose labels include
// labels (a counter's value or a histogram's sample count); 0 when absent.
func value(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	f, ok := fams[name]
	if !ok {
		return 0
	}
	sum := 0.0
	for _, m := range f.GetMetric() {
		match := true
		for k, v := range labels {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == k && lp.GetValue() == v {
					found = true
				}
			}
			match = match && found
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		}
	}
	return sum
}

func randomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 12)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

// TestPerfAndSystem checks the observability endpoints of a live node: the
// request counters move by exactly the number of calls made through each
// API, the dashboard uses only exported metrics, the logs endpoint serves
// the node's logs, and system/info shows no environment variable.
func TestPerfAndSystem(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	// Canaries: values the node could only show by reading the
	// environment. Set before the node starts, as an operator's would be.
	canary, otherName, otherValue := "canary-"+randomHex(t), "CAVE_RANDOM_"+strings.ToUpper(randomHex(t)), "v-"+randomHex(t)
	t.Setenv("CAVE_TEST_CANARY", canary)
	t.Setenv(otherName, otherValue)

	c := nodetest.NewCluster(t, 1, nodetest.WithShards(2))
	base := c.HTTPURL(0) + "/api/v1"
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	conn, err := grpc.NewClient(c.GRPCAddr(0), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	kv := kvv1.NewKVClient(conn)

	t.Run("request metrics count each call once", func(t *testing.T) {
		const (
			restPuts, restGets, restMissing, restLists = 5, 3, 2, 2
			grpcPuts, grpcGets, grpcMissing            = 4, 2, 1
		)
		kvRoute := "/api/v1/kv/{key=**}"
		httpKV := map[string]string{"route": kvRoute}
		grpcKV := func(method, code string) map[string]string {
			return map[string]string{"method": "/cave.kv.v1.KV/" + method, "code": code}
		}
		type probe struct {
			name   string
			family string
			labels map[string]string
			want   float64
		}
		probes := []probe{
			{"REST PUT 200", "cave_gateway_http_requests_total", map[string]string{"route": kvRoute, "method": "PUT", "code": "200"}, restPuts},
			{"REST GET 200", "cave_gateway_http_requests_total", map[string]string{"route": kvRoute, "method": "GET", "code": "200"}, restGets},
			{"REST GET 404", "cave_gateway_http_requests_total", map[string]string{"route": kvRoute, "method": "GET", "code": "404"}, restMissing},
			{"REST list 200", "cave_gateway_http_requests_total", map[string]string{"route": "/api/v1/keys", "method": "GET", "code": "200"}, restLists},
			{"REST kv route, every method and code", "cave_gateway_http_requests_total", httpKV, restPuts + restGets + restMissing},
			{"REST PUT latency count", "cave_gateway_http_request_duration_seconds", map[string]string{"route": kvRoute, "method": "PUT", "code": "200"}, restPuts},
			{"gRPC Put OK", "cave_gateway_grpc_requests_total", grpcKV("Put", "OK"), grpcPuts},
			{"gRPC Get OK", "cave_gateway_grpc_requests_total", grpcKV("Get", "OK"), grpcGets},
			{"gRPC Get NotFound", "cave_gateway_grpc_requests_total", grpcKV("Get", "NotFound"), grpcMissing},
			{"gRPC List (REST lists do not count)", "cave_gateway_grpc_requests_total", map[string]string{"method": "/cave.kv.v1.KV/List"}, 0},
			{"gRPC Put latency count", "cave_gateway_grpc_request_duration_seconds", grpcKV("Put", "OK"), grpcPuts},
		}
		// Every gRPC call of the KV service, whatever its method and code:
		// REST calls must not reach the interceptor.
		grpcAll := func(fams map[string]*dto.MetricFamily) float64 {
			sum := 0.0
			for _, m := range []string{"Get", "Put", "Delete", "List"} {
				sum += value(fams, "cave_gateway_grpc_requests_total", map[string]string{"method": "/cave.kv.v1.KV/" + m})
			}
			return sum
		}

		before := scrape(t, ctx, base)
		for i := range restPuts {
			code, body := do(t, ctx, http.MethodPut, fmt.Sprintf("%s/kv/metrics/rest/%d", base, i), "v")
			require.Equal(t, http.StatusOK, code, body)
		}
		for i := range restGets {
			code, body := do(t, ctx, http.MethodGet, fmt.Sprintf("%s/kv/metrics/rest/%d", base, i), "")
			require.Equal(t, http.StatusOK, code, body)
		}
		for i := range restMissing {
			code, body := do(t, ctx, http.MethodGet, fmt.Sprintf("%s/kv/metrics/missing/%d", base, i), "")
			require.Equal(t, http.StatusNotFound, code, body)
		}
		for range restLists {
			code, body := do(t, ctx, http.MethodGet, base+"/keys?prefix=metrics/", "")
			require.Equal(t, http.StatusOK, code, body)
		}
		for i := range grpcPuts {
			_, err := kv.Put(ctx, &kvv1.PutRequest{Key: fmt.Sprintf("metrics/grpc/%d", i), Value: []byte("v")})
			require.NoError(t, err)
		}
		for i := range grpcGets {
			_, err := kv.Get(ctx, &kvv1.GetRequest{Key: fmt.Sprintf("metrics/grpc/%d", i)})
			require.NoError(t, err)
		}
		for i := range grpcMissing {
			_, err := kv.Get(ctx, &kvv1.GetRequest{Key: fmt.Sprintf("metrics/missing/grpc/%d", i)})
			require.Equal(t, codes.NotFound, status.Code(err), "%v", err)
		}
		after := scrape(t, ctx, base)

		for _, p := range probes {
			got := value(after, p.family, p.labels) - value(before, p.family, p.labels)
			assert.Equal(t, p.want, got, "%s: %s%v moved by %v, want %v", p.name, p.family, p.labels, got, p.want)
		}
		assert.Equal(t, float64(grpcPuts+grpcGets+grpcMissing), grpcAll(after)-grpcAll(before), "gRPC KV calls: REST calls must not count here")
		for name, f := range after {
			for _, m := range f.GetMetric() {
				for _, lp := range m.GetLabel() {
					assert.NotContains(t, lp.GetValue(), "metrics/", "label %s of %s holds a key", lp.GetName(), name)
				}
			}
		}
	})

	t.Run("dashboard uses only exported metrics", func(t *testing.T) {
		// One call through each API, so the request histograms have series.
		code, body := do(t, ctx, http.MethodPut, base+"/kv/dashboard/probe", "v")
		require.Equal(t, http.StatusOK, code, body)
		_, err := kv.Get(ctx, &kvv1.GetRequest{Key: "dashboard/probe"})
		require.NoError(t, err)

		r := send(t, ctx, http.MethodGet, base+"/perf/dashboard", "")
		require.Equal(t, http.StatusOK, r.status)
		assert.Equal(t, "application/json", r.contentType)
		assert.JSONEq(t, string(dashboard.JSON), r.body, "the endpoint serves the embedded dashboard")

		fams := scrape(t, ctx, base)
		names := dashboardMetrics(t, []byte(r.body))
		require.NotEmpty(t, names)
		var missing []string
		for _, n := range names {
			if !exported(fams, n) {
				missing = append(missing, n)
			}
		}
		assert.Empty(t, missing, "metrics the dashboard queries but the node does not export")
		t.Logf("dashboard queries %d metric names", len(names))
	})

	t.Run("logs endpoint serves the node's logs", func(t *testing.T) {
		r := send(t, ctx, http.MethodGet, base+"/perf/logs?level=info&limit=500", "")
		require.Equal(t, http.StatusOK, r.status, r.body)
		var got struct {
			Entries []struct {
				Time  time.Time      `json:"time"`
				Level string         `json:"level"`
				Msg   string         `json:"msg"`
				Attrs map[string]any `json:"attrs"`
			} `json:"entries"`
		}
		require.NoError(t, json.Unmarshal([]byte(r.body), &got), r.body)
		var msgs []string
		for _, e := range got.Entries {
			msgs = append(msgs, e.Msg)
			assert.NotEqual(t, "DEBUG", e.Level, "level=info filters debug records")
		}
		assert.Contains(t, msgs, "node started", "the node's startup is in the buffer")
		assert.Contains(t, msgs, "cluster ready", "the cluster id line is in the buffer")
		for _, e := range got.Entries {
			if e.Msg == "cluster ready" {
				assert.NotEmpty(t, e.Attrs["cluster_id"])
			}
		}
		r = send(t, ctx, http.MethodGet, base+"/perf/logs?level=loud", "")
		assert.Equal(t, http.StatusBadRequest, r.status, r.body)
		assert.Contains(t, r.body, `"INVALID_ARGUMENT"`)
	})

	t.Run("system info shows no environment", func(t *testing.T) {
		r := send(t, ctx, http.MethodGet, base+"/system/info", "")
		require.Equal(t, http.StatusOK, r.status, r.body)
		for _, secret := range []string{canary, otherName, otherValue} {
			assert.NotContains(t, r.body, secret, "system/info shows an environment variable")
		}
		var info map[string]any
		require.NoError(t, json.Unmarshal([]byte(r.body), &info), r.body)
		for _, k := range []string{"version", "commit", "build_date", "go_version", "node", "cluster_id", "uptime_seconds",
			"data_dir", "data_dir_bytes", "shards_led", "shards_followed", "mode", "insecure"} {
			assert.Contains(t, info, k, "system/info field")
		}
		assert.Equal(t, c.Name(0), info["node"])
		assert.Regexp(t, `^[0-9a-f]{32}$`, info["cluster_id"])
		assert.Regexp(t, `^go1\.`, info["go_version"])
		assert.Greater(t, info["data_dir_bytes"], 0.0, "data dir usage")
		assert.InDelta(t, 3, info["shards_led"], 0, "a single node leads the meta shard and both data shards")
		assert.InDelta(t, 0, info["shards_followed"], 0)
		assert.Equal(t, true, info["insecure"])
		assert.NotEmpty(t, info["warnings"], "an insecure node warns in system/info")

		r = send(t, ctx, http.MethodGet, base+"/system/config", "")
		require.Equal(t, http.StatusOK, r.status, r.body)
		for _, secret := range []string{canary, otherName, otherValue} {
			assert.NotContains(t, r.body, secret, "system/config shows an environment variable that is not a setting")
		}
	})
}

// promIdent matches PromQL identifiers; dashboardMetrics keeps those that
// name cave, Go runtime or process metrics.
var promIdent = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)

// dashboardMetrics returns the sorted metric names used by every query of
// the dashboard: each panel target's expr (rows' nested panels included)
// and each templating variable's query. String literals (label values) are
// removed before tokenizing.
func dashboardMetrics(t *testing.T, raw []byte) []string {
	t.Helper()
	type target struct {
		Expr string `json:"expr"`
	}
	type panel struct {
		Type    string   `json:"type"`
		Title   string   `json:"title"`
		Targets []target `json:"targets"`
		Panels  []panel  `json:"panels"`
	}
	var d struct {
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	require.NoError(t, json.Unmarshal(raw, &d))
	var exprs []string
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if p.Type != "row" {
				require.NotEmpty(t, p.Targets, "panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				require.NotEmpty(t, tg.Expr, "panel %q has a target without expr", p.Title)
				exprs = append(exprs, tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		exprs = append(exprs, v.Definition)
	}
	strLit := regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	seen := map[string]bool{}
	var out []string
	for _, e := range exprs {
		for _, id := range promIdent.FindAllString(strLit.ReplaceAllString(e, `""`), -1) {
			if !strings.HasPrefix(id, "cave_") && !strings.HasPrefix(id, "go_") && !strings.HasPrefix(id, "process_") {
				continue
			}
			if !seen[id] {
				seen[id] = true
				out = append(out, id)
			}
		}
	}
	slices.Sort(out)
	return out
}

// exported reports whether the scrape has metric name: a family of that
// name, or the _bucket, _sum or _count series of a histogram or summary.
func exported(fams map[string]*dto.MetricFamily, name string) bool {
	if _, ok := fams[name]; ok {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		if f, ok := fams[base]; ok {
			switch f.GetType() {
			case dto.MetricType_HISTOGRAM:
				return true
			case dto.MetricType_SUMMARY:
				return suffix != "_bucket"
			}
		}
	}
	return false
}

// TestDashboardShape checks the dashboard's structure without a node: the
// current Grafana schema, a Prometheus data source variable that every
// panel uses, unique panel ids and only timeseries, stat and row panels.
func TestDashboardShape(t *testing.T) {
	t.Parallel()
	var d struct {
		SchemaVersion int    `json:"schemaVersion"`
		UID           string `json:"uid"`
		Title         string `json:"title"`
		Panels        []struct {
			ID         int    `json:"id"`
			Type       string `json:"type"`
			Title      string `json:"title"`
			Datasource struct {
				Type string `json:"type"`
				UID  string `json:"uid"`
			} `json:"datasource"`
			GridPos struct{ H, W, X, Y int } `json:"gridPos"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	require.NoError(t, json.Unmarshal(dashboard.JSON, &d))
	assert.GreaterOrEqual(t, d.SchemaVersion, 39)
	assert.NotEmpty(t, d.UID)
	assert.NotEmpty(t, d.Title)
	require.NotEmpty(t, d.Templating.List)
	assert.Equal(t, "datasource", d.Templating.List[0].Name)
	assert.Equal(t, "datasource", d.Templating.List[0].Type)
	assert.Equal(t, "prometheus", d.Templating.List[0].Query)
	ids := map[int]bool{}
	kinds := map[string]int{}
	for _, p := range d.Panels {
		assert.False(t, ids[p.ID], "duplicate panel id %d", p.ID)
		ids[p.ID] = true
		kinds[p.Type]++
		assert.Contains(t, []string{"row", "timeseries", "stat"}, p.Type, "panel %q", p.Title)
		assert.LessOrEqual(t, p.GridPos.X+p.GridPos.W, 24, "panel %q is wider than the grid", p.Title)
		if p.Type != "row" {
			assert.Equal(t, "prometheus", p.Datasource.Type, "panel %q", p.Title)
			assert.Equal(t, "${datasource}", p.Datasource.UID, "panel %q", p.Title)
		}
	}
	assert.Positive(t, kinds["timeseries"])
	assert.Positive(t, kinds["stat"])

	names := dashboardMetrics(t, dashboard.JSON)
	for _, want := range []string{"cave_gateway_grpc_requests_total", "cave_gateway_http_requests_total", "cave_node_raft_proposals_total",
		"cave_router_forwards_total", "cave_store_disk_usage_bytes", "go_goroutines", "process_cpu_seconds_total"} {
		assert.Contains(t, names, want, "the dashboard shows %s", want)
	}
}
