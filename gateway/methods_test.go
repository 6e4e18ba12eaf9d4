package gateway_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cavedb/cave/gateway"
	"github.com/cavedb/cave/internal/nodetest"
)

// TestMethodNotAllowed checks that a wrong method on any /api/v1 route,
// whoever serves it (the key routes, grpc-gateway, the node's own
// handlers), is a JSON 405 with an Allow header naming the right ones.
func TestMethodNotAllowed(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	h := gateway.HTTPHandler(nodetest.NewCluster(t, 1, nodetest.WithShards(1)).Gateway(0))
	cases := []struct{ method, path, allow string }{
		{http.MethodPatch, "/api/v1/kv/a/b", "GET, HEAD, PUT, POST, DELETE"},
		{http.MethodPut, "/api/v1/cluster/members", "GET"},
		{http.MethodDelete, "/api/v1/keys", "GET"},
		{http.MethodGet, "/api/v1/secrets/rotate", "POST"},
		{http.MethodPut, "/api/v1/auth/roles", "GET, POST"},
		{http.MethodGet, "/api/v1/auth/roles/reader/grants", "DELETE, POST"},
		{http.MethodPost, "/api/v1/health", "GET, HEAD"},
		{http.MethodDelete, "/api/v1/perf/metrics", "GET, HEAD"},
		{http.MethodPut, "/api/v1/system/config", "GET, HEAD"},
		{http.MethodPost, "/api/v1/openapi.json", "GET, HEAD"},
	}
	for _, tc := range cases {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
		assert.Equal(t, http.StatusMethodNotAllowed, rec.Code, "%s %s: %s", tc.method, tc.path, rec.Body)
		assert.Equal(t, tc.allow, rec.Header().Get("Allow"), "%s %s", tc.method, tc.path)
		assert.Equal(t, "application/json", rec.Header().Get("Content-Type"), "%s %s", tc.method, tc.path)
		var body struct{ Status, Message string }
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body), "%s %s: %s", tc.method, tc.path, rec.Body)
		assert.Equal(t, "METHOD_NOT_ALLOWED", body.Status)
		assert.Equal(t, "method "+tc.method+" is not allowed on "+tc.path, body.Message)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/health", nil))
	assert.Equal(t, http.StatusOK, rec.Code, "the GET of a guarded route still works: %s", rec.Body)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/nothing", nil))
	assert.Equal(t, http.StatusNotFound, rec.Code, "an unknown path stays 404: %s", rec.Body)
}
