package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cavedb/cave/gateway"
	"github.com/cavedb/cave/internal/nodetest"
)

// TestClusterRESTBadInput sends malformed requests to the REST API of a
// node of a 3-node cluster. Each gets the contract's status and a JSON
// error body {"code","status","message"}, and changes nothing: the key the
// requests aim at keeps its value and revision, and no other key appears.
func TestClusterRESTBadInput(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	const maxValue = 64
	c := nodetest.NewCluster(t, 3, nodetest.WithShards(2), nodetest.WithMaxValueBytes(maxValue))
	base := c.HTTPURL(1) + "/api/v1"
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	code, body := do(t, ctx, http.MethodPut, base+"/kv/bad/target", "original")
	require.Equal(t, http.StatusOK, code, body)
	before := getJSON(t, ctx, base+"/kv/bad/target")
	require.Equal(t, "original", before.value(t))

	cases := []struct {
		name, method, path, body string
		status                   int
		code                     int    // gRPC code in the body
		codeName                 string // "status" in the body
		mentions                 string // a word the message must contain
	}{
		{"empty key", http.MethodPut, "/kv/", "v", 400, 3, "INVALID_ARGUMENT", "empty"},
		{"empty key without slash", http.MethodPut, "/kv", "v", 400, 3, "INVALID_ARGUMENT", "empty"},
		{"empty key get", http.MethodGet, "/kv/", "", 400, 3, "INVALID_ARGUMENT", "empty"},
		{"dot-dot segment", http.MethodPut, "/kv/bad/../target", "v", 400, 3, "INVALID_ARGUMENT", ".."},
		{"dot-dot segment delete", http.MethodDelete, "/kv/bad/../bad/target", "", 400, 3, "INVALID_ARGUMENT", ".."},
		{"dot segment", http.MethodPut, "/kv/bad/./target", "v", 400, 3, "INVALID_ARGUMENT", "."},
		{"empty segment", http.MethodPut, "/kv/bad//target", "v", 400, 3, "INVALID_ARGUMENT", "empty"},
		{"oversize value", http.MethodPut, "/kv/bad/target", strings.Repeat("x", maxValue+1), 413, 8, "RESOURCE_EXHAUSTED", "limit"},
		{"oversize value by post", http.MethodPost, "/kv/bad/target", strings.Repeat("x", 10*maxValue), 413, 8, "RESOURCE_EXHAUSTED", "limit"},
		{"non-numeric prev_revision", http.MethodPut, "/kv/bad/target?prev_revision=abc", "v", 400, 3, "INVALID_ARGUMENT", "prev_revision"},
		{"negative prev_revision", http.MethodPut, "/kv/bad/target?prev_revision=-1", "v", 400, 3, "INVALID_ARGUMENT", "prev_revision"},
		{"non-numeric prev_revision on delete", http.MethodDelete, "/kv/bad/target?prev_revision=1x", "", 400, 3, "INVALID_ARGUMENT", "prev_revision"},
		{"failed condition", http.MethodPut, "/kv/bad/target?prev_revision=1", "v", 412, 9, "FAILED_PRECONDITION", "condition"},
		{"create-only on existing key", http.MethodPut, "/kv/bad/target?prev_revision=0", "v", 412, 9, "FAILED_PRECONDITION", "condition"},
		{"failed condition on delete", http.MethodDelete, "/kv/bad/target?prev_revision=1", "", 412, 9, "FAILED_PRECONDITION", "condition"},
		{"unknown route", http.MethodGet, "/nope", "", 404, 5, "NOT_FOUND", "/api/v1/nope"},
		{"unknown route by put", http.MethodPut, "/nope/bad/target", "v", 404, 5, "NOT_FOUND", "/api/v1/nope"},
		{"unsupported method", http.MethodPatch, "/kv/bad/target", "v", 405, 12, "METHOD_NOT_ALLOWED", "PATCH"},
		{"malformed page token", http.MethodGet, "/keys?prefix=bad/&page_token=%21%21", "", 400, 3, "INVALID_ARGUMENT", "page_token"},
		{"negative limit", http.MethodGet, "/keys?prefix=bad/&limit=-1", "", 400, 3, "INVALID_ARGUMENT", "limit"},
		{"unknown format", http.MethodGet, "/kv/bad/target?format=xml", "", 400, 3, "INVALID_ARGUMENT", "format"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := send(t, ctx, tc.method, base+tc.path, tc.body)
			assert.Equal(t, tc.status, resp.status, "HTTP status; body %s", resp.body)
			assert.Equal(t, "application/json", resp.contentType, "Content-Type of the error")
			var fields map[string]json.RawMessage
			require.NoError(t, json.Unmarshal([]byte(resp.body), &fields), "error body is not a JSON object: %s", resp.body)
			keys := make([]string, 0, len(fields))
			for k := range fields {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			wantKeys, wantReason := []string{"code", "message", "status"}, ""
			if tc.status == http.StatusPreconditionFailed {
				wantKeys, wantReason = []string{"code", "message", "reason", "status"}, gateway.ReasonConditionFailed
			}
			assert.Equal(t, wantKeys, keys, "fields of the error body %s", resp.body)
			var eb struct {
				Code    int    `json:"code"`
				Status  string `json:"status"`
				Message string `json:"message"`
				Reason  string `json:"reason"`
			}
			require.NoError(t, json.Unmarshal([]byte(resp.body), &eb), resp.body)
			assert.Equal(t, tc.code, eb.Code, "code in %s", resp.body)
			assert.Equal(t, tc.codeName, eb.Status, "status in %s", resp.body)
			assert.Equal(t, wantReason, eb.Reason, "reason in %s", resp.body)
			assert.Contains(t, eb.Message, tc.mentions, "message in %s", resp.body)
			if len(tc.body) > 8 {
				assert.NotContains(t, eb.Message, tc.body, "the error message repeats the value")
			}

			after := getJSON(t, ctx, base+"/kv/bad/target")
			assert.Equal(t, "original", after.value(t), "value after a rejected request")
			assert.Equal(t, before.ModRevision, after.ModRevision, "mod_revision after a rejected request")
			assert.Equal(t, before.Version, after.Version, "version after a rejected request")
		})
	}

	code, body = do(t, ctx, http.MethodGet, base+"/kv/target", "")
	assert.Equal(t, http.StatusNotFound, code, "a cleaned-up path must not have been written: %s", body)
	code, body = do(t, ctx, http.MethodGet, base+"/keys", "")
	require.Equal(t, http.StatusOK, code, body)
	var page struct {
		Items []struct {
			Key string `json:"key"`
		} `json:"items"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &page), body)
	var all []string
	for _, it := range page.Items {
		all = append(all, it.Key)
	}
	assert.Equal(t, []string{"bad/target"}, all, "keys in the cluster after the rejected requests")

	// The limit itself is allowed.
	code, body = do(t, ctx, http.MethodPut, base+"/kv/bad/max", strings.Repeat("y", maxValue))
	assert.Equal(t, http.StatusOK, code, "a value of exactly --max-value-bytes: %s", body)
}

type response struct {
	status      int
	contentType string
	header      http.Header
	body        string
}

func send(t *testing.T, ctx context.Context, method, url, body string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	require.NoError(t, err)
	client := &http.Client{Timeout: 15 * time.Second}
	resp, err := client.Do(req)
	require.NoError(t, err, "%s %s", method, url)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), header: resp.Header, body: string(b)}
}

func do(t *testing.T, ctx context.Context, method, url, body string) (int, string) {
	t.Helper()
	r := send(t, ctx, method, url, body)
	return r.status, r.body
}

// keyJSON is the answer to GET /api/v1/kv/{key}?format=json.
type keyJSON struct {
	Key         string `json:"key"`
	Value       []byte `json:"value"`
	ModRevision int64  `json:"mod_revision,string"`
	Version     int64  `json:"version,string"`
}

func (k keyJSON) value(t *testing.T) string {
	t.Helper()
	return string(k.Value)
}

func getJSON(t *testing.T, ctx context.Context, url string) keyJSON {
	t.Helper()
	r := send(t, ctx, http.MethodGet, url+"?format=json", "")
	require.Equal(t, http.StatusOK, r.status, "GET %s?format=json: %s", url, r.body)
	var out keyJSON
	require.NoError(t, json.Unmarshal([]byte(r.body), &out), r.body)
	return out
}
