package gateway_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cavedb/cave/internal/nodetest"
	"github.com/cavedb/cave/router"
)

// TestListRESTContract checks GET /api/v1/keys on a live node: a page
// token that List did not give for this prefix is a 400, never an empty
// page; a limit over the cap is answered with X-Cave-Limit-Capped; a
// limit that is not a number is a 400 in words.
func TestListRESTContract(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	c := nodetest.NewCluster(t, 1, nodetest.WithShards(2))
	base := c.HTTPURL(0) + "/api/v1"
	ctx := t.Context()
	for _, k := range []string{"list/a", "list/b", "list/c"} {
		code, body := do(t, ctx, http.MethodPut, base+"/kv/"+k, "v")
		require.Equal(t, http.StatusOK, code, body)
	}
	var page struct {
		Items []struct {
			Key string `json:"key"`
		} `json:"items"`
		Next string `json:"next_page_token"`
	}
	r := send(t, ctx, http.MethodGet, base+"/keys?prefix=list/&limit=2", "")
	require.Equal(t, http.StatusOK, r.status, r.body)
	require.NoError(t, json.Unmarshal([]byte(r.body), &page))
	require.Len(t, page.Items, 2)
	require.NotEmpty(t, page.Next)
	assert.Empty(t, r.header.Get("X-Cave-Limit-Capped"), "a limit under the cap is not capped")

	r = send(t, ctx, http.MethodGet, base+"/keys?prefix=list/&page_token="+page.Next, "")
	require.Equal(t, http.StatusOK, r.status, r.body)
	require.NoError(t, json.Unmarshal([]byte(r.body), &page))
	require.Len(t, page.Items, 1)
	assert.Equal(t, "list/c", page.Items[0].Key)

	for name, tok := range map[string]string{
		"a bare key after the prefix": base64.RawURLEncoding.EncodeToString([]byte("list/zzz")),
		"a bare key after everything": base64.RawURLEncoding.EncodeToString([]byte("zzz")),
		"not base64":                  "%21%21",
	} {
		r := send(t, ctx, http.MethodGet, base+"/keys?prefix=list/&page_token="+tok, "")
		assert.Equal(t, http.StatusBadRequest, r.status, "%s: %s", name, r.body)
		assert.Contains(t, r.body, "page_token is malformed", name)
	}
	first := send(t, ctx, http.MethodGet, base+"/keys?prefix=list/&limit=1", "")
	require.NoError(t, json.Unmarshal([]byte(first.body), &page))
	r = send(t, ctx, http.MethodGet, base+"/keys?prefix=other/&page_token="+page.Next, "")
	assert.Equal(t, http.StatusBadRequest, r.status, "a token of another prefix: %s", r.body)

	r = send(t, ctx, http.MethodGet, base+"/keys?prefix=list/&limit=100000", "")
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.Equal(t, "1000", r.header.Get("X-Cave-Limit-Capped"))
	assert.Equal(t, router.DefaultConfig().MaxListLimit, 1000)

	r = send(t, ctx, http.MethodGet, base+"/keys?prefix=list/&limit=ten", "")
	assert.Equal(t, http.StatusBadRequest, r.status, r.body)
	assert.JSONEq(t, `{"code":3,"status":"INVALID_ARGUMENT","message":"parsing field \"limit\": \"ten\" is not a number"}`, r.body)
}
