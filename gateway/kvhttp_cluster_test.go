package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/cavedb/cave/internal/nodetest"
	kvv1 "github.com/cavedb/cave/proto/cave/kv/v1"
)

// onlyReader hides the type of its reader, so that an HTTP client cannot
// learn the body's length and sends it chunked.
type onlyReader struct{ io.Reader }

// TestRESTKeyRoutes checks the key routes on a live node: the exact bytes
// of the PUT, DELETE and GET ?format=json answers, HEAD, 405 with Allow,
// and the value limit on chunked bodies.
func TestRESTKeyRoutes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	const maxValue = 64
	c := nodetest.NewCluster(t, 1, nodetest.WithShards(2), nodetest.WithMaxValueBytes(maxValue))
	base := c.HTTPURL(0) + "/api/v1/kv/"
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	conn, err := grpc.NewClient(c.GRPCAddr(0), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	kv := kvv1.NewKVClient(conn)

	t.Run("answers byte for byte", func(t *testing.T) {
		for _, key := range []string{"routes/plain", `routes/q"uote\back`, "routes/ünï/ключ"} {
			path := base + strings.ReplaceAll(strings.ReplaceAll(key, `"`, "%22"), `\`, "%5C")
			put := send(t, ctx, http.MethodPut, path, "v1")
			require.Equal(t, http.StatusOK, put.status, put.body)
			assert.Equal(t, "application/json", put.contentType)
			got, err := kv.Get(ctx, &kvv1.GetRequest{Key: key})
			require.NoError(t, err, "gRPC Get %q", key)
			wantPut, err := json.Marshal(key)
			require.NoError(t, err)
			assert.Equal(t, `{"key":`+string(wantPut)+`,"revision":"`+strconv.FormatInt(got.ModRevision, 10)+`"}`, put.body, "PUT answer")

			js := send(t, ctx, http.MethodGet, path+"?format=json", "")
			require.Equal(t, http.StatusOK, js.status, js.body)
			want, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(got)
			require.NoError(t, err)
			assert.Equal(t, string(want), js.body, "GET ?format=json is protojson of the GetResponse")
			assert.Equal(t, "application/json", js.contentType)
			assert.Equal(t, strconv.FormatInt(got.ModRevision, 10), js.header.Get("X-Cave-Revision"), "format=json keeps the value headers")

			del := send(t, ctx, http.MethodDelete, path, "")
			require.Equal(t, http.StatusOK, del.status, del.body)
			var dr struct {
				Revision int64 `json:"revision,string"`
			}
			require.NoError(t, json.Unmarshal([]byte(del.body), &dr), del.body)
			assert.Greater(t, dr.Revision, got.ModRevision)
			assert.Equal(t, `{"deleted":true,"revision":"`+strconv.FormatInt(dr.Revision, 10)+`"}`, del.body, "DELETE answer")
		}
	})

	t.Run("HEAD has GET's headers and no body", func(t *testing.T) {
		put := send(t, ctx, http.MethodPut, base+"routes/head", "some value")
		require.Equal(t, http.StatusOK, put.status, put.body)
		for _, query := range []string{"", "?format=json"} {
			get := send(t, ctx, http.MethodGet, base+"routes/head"+query, "")
			head := send(t, ctx, http.MethodHead, base+"routes/head"+query, "")
			require.Equal(t, http.StatusOK, get.status, get.body)
			assert.Equal(t, http.StatusOK, head.status)
			assert.Empty(t, head.body, "HEAD%s body", query)
			for _, h := range []string{"Content-Type", "Content-Length", "X-Cave-Revision", "X-Cave-Create-Revision", "X-Cave-Version", "Etag"} {
				assert.NotEmpty(t, get.header.Get(h), "GET%s header %s", query, h)
				assert.Equal(t, get.header.Values(h), head.header.Values(h), "HEAD%s header %s", query, h)
			}
			assert.Equal(t, strconv.Itoa(len(get.body)), get.header.Get("Content-Length"), "GET%s Content-Length", query)
		}
		missing := send(t, ctx, http.MethodHead, base+"routes/missing", "")
		assert.Equal(t, http.StatusNotFound, missing.status)
		assert.Empty(t, missing.body)
		secret := send(t, ctx, http.MethodGet, base+"routes/missing?secret=true", "")
		assert.Equal(t, http.StatusNotFound, secret.status, secret.body)
		assert.Equal(t, "no-store", secret.header.Get("Cache-Control"), "a secret read is never cached, even a 404")
	})

	t.Run("conditional headers", func(t *testing.T) {
		withHeader := func(method, url, body, name, value string) response {
			t.Helper()
			req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
			require.NoError(t, err)
			req.Header.Set(name, value)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			return response{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), header: resp.Header, body: string(b)}
		}
		key := base + "routes/cond"
		put := send(t, ctx, http.MethodPut, key, "v1")
		require.Equal(t, http.StatusOK, put.status, put.body)
		get := send(t, ctx, http.MethodGet, key, "")
		tag := get.header.Get("ETag")
		require.NotEmpty(t, tag)

		for _, inm := range []string{tag, "W/" + tag, "*", `"1", ` + tag} {
			r := withHeader(http.MethodGet, key, "", "If-None-Match", inm)
			assert.Equal(t, http.StatusNotModified, r.status, "If-None-Match %s", inm)
			assert.Empty(t, r.body)
			assert.Equal(t, tag, r.header.Get("ETag"))
		}
		r := withHeader(http.MethodGet, key, "", "If-None-Match", `"1"`)
		assert.Equal(t, http.StatusOK, r.status)
		assert.Equal(t, "v1", r.body)

		r = withHeader(http.MethodPut, key, "lost", "If-Match", `"1"`)
		assert.Equal(t, http.StatusPreconditionFailed, r.status, r.body)
		assert.Contains(t, r.body, "CONDITION_FAILED")
		r = withHeader(http.MethodPut, key+"?prev_revision=1", "lost", "If-Match", tag)
		assert.Equal(t, http.StatusBadRequest, r.status, r.body)
		assert.Contains(t, r.body, "disagree")
		r = withHeader(http.MethodDelete, key, "", "If-Match", `"1"`)
		assert.Equal(t, http.StatusPreconditionFailed, r.status, r.body)
		code, body := do(t, ctx, http.MethodGet, key, "")
		assert.Equal(t, http.StatusOK, code)
		assert.Equal(t, "v1", body, "a refused conditional write changed the value")

		r = withHeader(http.MethodPut, key, "v2", "If-Match", tag)
		require.Equal(t, http.StatusOK, r.status, r.body)
		r = withHeader(http.MethodPut, key, "v3", "If-Match", "*")
		require.Equal(t, http.StatusOK, r.status, r.body)
		r = withHeader(http.MethodPut, base+"routes/cond-missing", "v", "If-Match", "*")
		assert.Equal(t, http.StatusPreconditionFailed, r.status, r.body)
		code, _ = do(t, ctx, http.MethodGet, base+"routes/cond-missing", "")
		assert.Equal(t, http.StatusNotFound, code, "If-Match: * created a key")
		r = withHeader(http.MethodDelete, key, "", "If-Match", "*")
		require.Equal(t, http.StatusOK, r.status, r.body)
		r = withHeader(http.MethodDelete, key, "", "If-Match", "*")
		assert.Equal(t, http.StatusPreconditionFailed, r.status, r.body)
	})

	t.Run("405 names the allowed methods", func(t *testing.T) {
		for _, method := range []string{http.MethodPatch, http.MethodOptions, "BREW"} {
			r := send(t, ctx, method, base+"routes/x", "v")
			assert.Equal(t, http.StatusMethodNotAllowed, r.status, "%s: %s", method, r.body)
			assert.Equal(t, "GET, HEAD, PUT, POST, DELETE", r.header.Get("Allow"), method)
			assert.Equal(t, "application/json", r.contentType, method)
			assert.JSONEq(t, `{"code":12,"status":"METHOD_NOT_ALLOWED","message":"method `+method+` is not allowed on /api/v1/kv/routes/x"}`, r.body, method)
		}
	})

	t.Run("chunked bodies are held to the limit", func(t *testing.T) {
		chunked := func(key, value string) response {
			t.Helper()
			req, err := http.NewRequestWithContext(ctx, http.MethodPut, base+key, onlyReader{strings.NewReader(value)})
			require.NoError(t, err)
			req.ContentLength = -1
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			return response{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), header: resp.Header, body: string(b)}
		}
		over := chunked("routes/chunked-over", strings.Repeat("x", maxValue+1))
		assert.Equal(t, http.StatusRequestEntityTooLarge, over.status, over.body)
		assert.JSONEq(t, `{"code":8,"status":"RESOURCE_EXHAUSTED","message":"value is larger than the limit of 64 bytes (--max-value-bytes)"}`, over.body)
		code, body := do(t, ctx, http.MethodGet, base+"routes/chunked-over", "")
		assert.Equal(t, http.StatusNotFound, code, "a refused value was written: %s", body)

		at := chunked("routes/chunked-at", strings.Repeat("y", maxValue))
		assert.Equal(t, http.StatusOK, at.status, at.body)
		code, body = do(t, ctx, http.MethodGet, base+"routes/chunked-at", "")
		assert.Equal(t, http.StatusOK, code)
		assert.Equal(t, strings.Repeat("y", maxValue), body)
	})

	t.Run("query errors", func(t *testing.T) {
		r := send(t, ctx, http.MethodPut, base+"routes/q?prev_revision=abc", "v")
		assert.Equal(t, http.StatusBadRequest, r.status)
		assert.JSONEq(t, `{"code":3,"status":"INVALID_ARGUMENT","message":"parsing field \"prev_revision\": \"abc\" is not a number"}`, r.body)
		r = send(t, ctx, http.MethodGet, base+"routes/q?consistency=sometimes", "")
		assert.Equal(t, http.StatusBadRequest, r.status)
		assert.JSONEq(t, `{"code":3,"status":"INVALID_ARGUMENT","message":"parsing field \"consistency\": \"sometimes\" is not a valid value"}`, r.body)
		r = send(t, ctx, http.MethodGet, c.HTTPURL(0)+"/api/v1/kvx/routes", "")
		assert.Equal(t, http.StatusNotFound, r.status, "a path that only starts like a key route: %s", r.body)
	})
}
