package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSingleNodeRESTContract checks the REST contract (README, "Using the REST API") on a
// one-node cluster (--replicas 1), then that acknowledged writes survive
// kill -9 and a restart with the same command line.
func TestSingleNodeRESTContract(t *testing.T) {
	start := time.Now()
	c := newProcCluster(t, 1, withShards(4), withReplicas(1), withExtraArgs("--max-value-bytes", "4096"))
	rc := newRESTClient(3 * time.Second)
	defer rc.close()
	c.WaitShards(rc, 30*time.Second, fullyReplicated(4, 1))
	base := c.URL(1)
	t.Logf("one node ready after %v", time.Since(start).Round(time.Millisecond))

	// raw sends a request and returns status, headers and body.
	raw := func(method, path string, body []byte) (int, http.Header, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, bytes.NewReader(body))
		require.NoError(t, err)
		resp, err := rc.hc.Do(req)
		require.NoError(t, err, "%s %s", method, path)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, resp.Header, b
	}
	// isErrorBody checks the JSON error shape {"code":..,"message":..}.
	isErrorBody := func(what string, b []byte) {
		t.Helper()
		var e map[string]any
		if assert.NoError(t, json.Unmarshal(b, &e), "%s: error body is not JSON: %q", what, b) {
			assert.Contains(t, e, "code", "%s: error body %s", what, b)
			assert.Contains(t, e, "message", "%s: error body %s", what, b)
		}
	}

	t.Run("put get revision headers", func(t *testing.T) {
		st, _, b := raw("PUT", "/api/v1/kv/c/a/b", []byte("v1"))
		require.Equal(t, 200, st, "PUT /api/v1/kv/c/a/b: %s", b)
		var pr struct {
			Key      string  `json:"key"`
			Revision jsonInt `json:"revision"`
		}
		require.NoError(t, json.Unmarshal(b, &pr), "PUT answer %s", b)
		assert.Equal(t, "c/a/b", pr.Key, "PUT answer %s", b)
		assert.Positive(t, int64(pr.Revision), "PUT answer %s", b)

		st, h, b := raw("GET", "/api/v1/kv/c/a/b", nil)
		require.Equal(t, 200, st, "GET: %s", b)
		assert.Equal(t, "v1", string(b), "GET body")
		assert.Equal(t, strconv.FormatInt(int64(pr.Revision), 10), h.Get("X-Cave-Revision"), "X-Cave-Revision")
		assert.Equal(t, "1", h.Get("X-Cave-Version"), "X-Cave-Version after one write")
		assert.NotEmpty(t, h.Get("ETag"), "ETag")

		rev2, _, err := rc.put(base, "c/a/b", []byte("v2"), nil)
		require.NoError(t, err)
		assert.Greater(t, rev2, int64(pr.Revision), "second put's revision")
		st, h, b = raw("GET", "/api/v1/kv/c/a/b", nil)
		require.Equal(t, 200, st)
		assert.Equal(t, "v2", string(b))
		assert.Equal(t, "2", h.Get("X-Cave-Version"), "X-Cave-Version after two writes")

		st, _, b = raw("GET", "/api/v1/kv/c/a/b?format=json", nil)
		require.Equal(t, 200, st, "GET ?format=json: %s", b)
		var kv struct {
			Key            string  `json:"key"`
			Value          string  `json:"value"`
			CreateRevision jsonInt `json:"create_revision"`
			ModRevision    jsonInt `json:"mod_revision"`
			Version        jsonInt `json:"version"`
		}
		require.NoError(t, json.Unmarshal(b, &kv), "GET ?format=json: %s", b)
		assert.Equal(t, "c/a/b", kv.Key, "format=json: %s", b)
		assert.Equal(t, base64.StdEncoding.EncodeToString([]byte("v2")), kv.Value, "format=json value (base64): %s", b)
		assert.Equal(t, int64(pr.Revision), int64(kv.CreateRevision), "format=json create_revision: %s", b)
		assert.Equal(t, rev2, int64(kv.ModRevision), "format=json mod_revision: %s", b)
		assert.Equal(t, int64(2), int64(kv.Version), "format=json version: %s", b)

		st, _, b = raw("POST", "/api/v1/kv/c/post", []byte("by-post"))
		assert.Equal(t, 200, st, "POST /api/v1/kv/c/post: %s", b)
		got, _, found, err := rc.get(base, "c/post", false)
		require.NoError(t, err)
		assert.True(t, found)
		assert.Equal(t, "by-post", string(got))

		got, _, found, err = rc.get(base, "c/a/b", true)
		require.NoError(t, err, "GET ?consistency=stale")
		assert.True(t, found)
		assert.Equal(t, "v2", string(got), "stale read on the only replica")
	})

	t.Run("conditional writes", func(t *testing.T) {
		rev, _, err := rc.put(base, "c/cas", []byte("x"), nil)
		require.NoError(t, err)
		stale := rev - 1
		_, status, err := rc.put(base, "c/cas", []byte("y"), &stale)
		assert.Equal(t, 412, status, "PUT ?prev_revision=%d when the key is at %d: %v", stale, rev, err)
		if ae, ok := err.(*apiError); ok {
			isErrorBody("412", []byte(ae.Raw))
		}
		rev2, status, err := rc.put(base, "c/cas", []byte("y"), &rev)
		assert.NoError(t, err, "PUT ?prev_revision=%d on the current revision: status %d", rev, status)
		assert.Greater(t, rev2, rev)

		zero := int64(0)
		_, status, err = rc.put(base, "c/cas-new", []byte("x"), &zero)
		assert.NoError(t, err, "create-only PUT ?prev_revision=0 of a new key: status %d", status)
		_, status, err = rc.put(base, "c/cas-new", []byte("y"), &zero)
		assert.Equal(t, 412, status, "second create-only PUT ?prev_revision=0: %v", err)
		got, _, _, err := rc.get(base, "c/cas-new", false)
		require.NoError(t, err)
		assert.Equal(t, "x", string(got), "a failed create-only put changed the value")
	})

	t.Run("delete", func(t *testing.T) {
		rev, _, err := rc.put(base, "c/del", []byte("x"), nil)
		require.NoError(t, err)
		st, _, b := raw("DELETE", "/api/v1/kv/c/del", nil)
		require.Equal(t, 200, st, "DELETE: %s", b)
		var dr struct {
			Deleted  bool    `json:"deleted"`
			Revision jsonInt `json:"revision"`
		}
		require.NoError(t, json.Unmarshal(b, &dr), "DELETE answer %s", b)
		assert.True(t, dr.Deleted, "DELETE answer %s", b)
		assert.Greater(t, int64(dr.Revision), rev, "DELETE answer %s", b)
		_, _, found, err := rc.get(base, "c/del", false)
		require.NoError(t, err)
		assert.False(t, found, "GET after DELETE")

		rev, _, err = rc.put(base, "c/del2", []byte("x"), nil)
		require.NoError(t, err)
		stale := rev - 1
		_, _, status, err := rc.del(base, "c/del2", &stale)
		assert.Equal(t, 412, status, "DELETE ?prev_revision=%d when the key is at %d: %v", stale, rev, err)
		deleted, _, status, err := rc.del(base, "c/del2", &rev)
		assert.NoError(t, err, "DELETE ?prev_revision=%d on the current revision: status %d", rev, status)
		assert.True(t, deleted)
	})

	t.Run("errors", func(t *testing.T) {
		st, _, b := raw("GET", "/api/v1/kv/c/missing", nil)
		assert.Equal(t, 404, st, "GET of a missing key: %s", b)
		isErrorBody("404", b)
		st, _, b = raw("PUT", "/api/v1/kv/c//empty-segment", []byte("x"))
		assert.Equal(t, 400, st, "PUT c//empty-segment: %s", b)
		isErrorBody("400", b)
		st, _, b = raw("PUT", "/api/v1/kv/c/../up", []byte("x"))
		assert.Equal(t, 400, st, "PUT c/../up: %s", b)
		st, _, b = raw("PUT", "/api/v1/kv/c/big", bytes.Repeat([]byte("x"), 4097))
		assert.Equal(t, 413, st, "PUT of 4097 bytes with --max-value-bytes 4096: %s", b)
		isErrorBody("413", b)
		st, _, b = raw("PUT", "/api/v1/kv/c/limit", bytes.Repeat([]byte("x"), 4096))
		assert.Equal(t, 200, st, "PUT of exactly --max-value-bytes: %s", b)
		bad := "/api/v1/kv/c/x?prev_revision=abc"
		st, _, b = raw("PUT", bad, []byte("x"))
		assert.Equal(t, 400, st, "PUT %s: %s", bad, b)
	})

	t.Run("values and keys", func(t *testing.T) {
		cases := []struct {
			key   string
			value []byte
		}{
			{"c/empty", []byte{}},
			{"c/binary", []byte{0, 1, 2, 0xff, 0xfe, '\n', 0, 0x80}},
			{"c/ünï/ключ/with space", []byte("utf8")},
			{"c/q?x=1&y", []byte("query chars in a key")},
			{"c/pct%2Fsign", []byte("percent in a key")},
		}
		for _, tc := range cases {
			rev, status, err := rc.put(base, tc.key, tc.value, nil)
			if !assert.NoError(t, err, "PUT %q (%d bytes): status %d", tc.key, len(tc.value), status) {
				continue
			}
			got, grev, found, err := rc.get(base, tc.key, false)
			if assert.NoError(t, err, "GET %q", tc.key) && assert.True(t, found, "GET %q: 404", tc.key) {
				assert.Equal(t, tc.value, got, "GET %q", tc.key)
				assert.Equal(t, rev, grev, "GET %q revision", tc.key)
			}
		}
	})

	// Crash and shutdown steps use the cluster helper, whose failures stop
	// the top-level test, so they run outside t.Run.
	vals := map[string][]byte{}
	var keys []string
	for i := 0; i < 200; i++ {
		k := fmt.Sprintf("c/crash/%03d", i)
		keys = append(keys, k)
		vals[k] = []byte(fmt.Sprintf("value-%d", i))
	}
	errs, _ := writeAll(c, rc, keys, vals, 4, 10*time.Second, 1)
	require.Empty(t, errs, "writes failed:\n  %s", firstN(errs, 10))
	c.Kill9(1)
	c.Restart(1)
	c.WaitReady(1, 30*time.Second)
	errs, st := readAllFrom(c, rc, 1, keys, vals, 4, 10*time.Second)
	t.Logf("read back after kill -9 and restart: %v", st)
	assert.Empty(t, errs, "after kill -9 and restart:\n  %s", firstN(errs, 20))

	took := c.Stop(1, 15*time.Second)
	t.Logf("SIGTERM: exited after %v with %v", took.Round(time.Millisecond), c.ExitErr(1))
	assert.NoError(t, c.ExitErr(1), "exit status after SIGTERM")
	c.Restart(1)
	c.WaitReady(1, 30*time.Second)
	errs, _ = readAllFrom(c, rc, 1, keys, vals, 4, 10*time.Second)
	assert.Empty(t, errs, "after SIGTERM and restart:\n  %s", firstN(errs, 20))
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}
