package ui

import (
	"bytes"
	"crypto/rand"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/cavedb/cave/secrets"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func serve(t *testing.T, h http.Handler, method, path string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestIndexAndRedirect(t *testing.T) {
	h := Handler()
	for _, p := range []string{"/ui/", "/ui/index.html"} {
		rec := serve(t, h, http.MethodGet, p, nil)
		require.Equal(t, http.StatusOK, rec.Code, p)
		assert.Equal(t, "text/html; charset=utf-8", rec.Header().Get("Content-Type"), p)
		assert.Contains(t, rec.Body.String(), `<script type="module" src="js/app.js">`, p)
		assert.Equal(t, "no-cache", rec.Header().Get("Cache-Control"), p)
		assert.NotEmpty(t, rec.Header().Get("ETag"), p)
		assert.Equal(t, "nosniff", rec.Header().Get("X-Content-Type-Options"), p)
		assert.Contains(t, rec.Header().Get("Content-Security-Policy"), "script-src 'self'", p)
	}
	rec := serve(t, h, http.MethodGet, "/ui", nil)
	assert.Equal(t, http.StatusMovedPermanently, rec.Code)
	assert.Equal(t, "/ui/", rec.Header().Get("Location"))

	// Behind the mount of gateway/server.go: http.ServeMux with "/ui/".
	mux := http.NewServeMux()
	mux.Handle(Prefix, h)
	rec = serve(t, mux, http.MethodGet, "/ui", nil)
	assert.Contains(t, []int{http.StatusMovedPermanently, http.StatusTemporaryRedirect}, rec.Code)
	assert.Equal(t, "/ui/", rec.Header().Get("Location"))
}

func TestAssetsContentTypes(t *testing.T) {
	h := Handler()
	want := map[string]string{
		"/ui/app.css":        "text/css; charset=utf-8",
		"/ui/js/app.js":      "text/javascript; charset=utf-8",
		"/ui/js/api.js":      "text/javascript; charset=utf-8",
		"/ui/js/keys.js":     "text/javascript; charset=utf-8",
		"/ui/js/cluster.js":  "text/javascript; charset=utf-8",
		"/ui/js/util.js":     "text/javascript; charset=utf-8",
		"/ui/favicon.svg":    "image/svg+xml",
		"/ui/does-not-exist": "application/json",
		"/ui/js/":            "application/json",
		"/ui/../go.mod":      "application/json",
	}
	for p, ct := range want {
		rec := serve(t, h, http.MethodGet, p, nil)
		assert.Equal(t, ct, rec.Header().Get("Content-Type"), p)
		if ct == "application/json" {
			assert.Equal(t, http.StatusNotFound, rec.Code, p)
			assert.Contains(t, rec.Body.String(), `"message"`, p)
		} else {
			assert.Equal(t, http.StatusOK, rec.Code, p)
			assert.NotZero(t, rec.Body.Len(), p)
		}
	}
}

func TestConditionalAndMethods(t *testing.T) {
	h := Handler()
	first := serve(t, h, http.MethodGet, "/ui/js/app.js", nil)
	require.Equal(t, http.StatusOK, first.Code)
	etag := first.Header().Get("ETag")
	rec := serve(t, h, http.MethodGet, "/ui/js/app.js", map[string]string{"If-None-Match": `"x", ` + etag})
	assert.Equal(t, http.StatusNotModified, rec.Code)
	assert.Zero(t, rec.Body.Len())
	rec = serve(t, h, http.MethodGet, "/ui/js/app.js", map[string]string{"If-None-Match": `"other"`})
	assert.Equal(t, http.StatusOK, rec.Code)

	rec = serve(t, h, http.MethodHead, "/ui/", nil)
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Zero(t, rec.Body.Len())
	assert.NotEqual(t, "0", rec.Header().Get("Content-Length"))

	rec = serve(t, h, http.MethodPost, "/ui/", nil)
	assert.Equal(t, http.StatusMethodNotAllowed, rec.Code)
	assert.Equal(t, "GET, HEAD", rec.Header().Get("Allow"))
}

// TestSelfContained checks the UI loads nothing from other origins (no CDN,
// no web fonts) and that every local file the pages reference exists.
func TestSelfContained(t *testing.T) {
	h := Handler()
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}|@import|@font-face`)
	ref := regexp.MustCompile(`(?:src|href)="([^"#:]+)"|from '(\./[^']+)'`)
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		src := string(b)
		if strings.HasSuffix(p, ".svg") {
			src = strings.ReplaceAll(src, `xmlns="http://www.w3.org/2000/svg"`, "")
		}
		src = strings.ReplaceAll(src, "xmlns='http://www.w3.org/2000/svg'", "")
		assert.Empty(t, external.FindAllString(src, -1), "%s refers to another origin", p)
		dir := strings.TrimPrefix(p[:strings.LastIndex(p, "/")+1], "static/")
		for _, m := range ref.FindAllStringSubmatch(src, -1) {
			target := m[1] + m[2]
			if strings.HasPrefix(target, "/api/") {
				continue
			}
			target = strings.TrimPrefix(target, "./")
			rec := serve(t, h, http.MethodGet, Prefix+dir+target, nil)
			assert.Equal(t, http.StatusOK, rec.Code, "%s refers to %s, which is not served", p, target)
		}
		return nil
	})
	require.NoError(t, err)
}

// TestEnvelopeRule checks that the envelope rule of js/api.js (isEnvelope)
// uses the magic, version and minimum length of secrets.IsEnvelope, so the
// key view recognises exactly the values the server would decrypt.
func TestEnvelopeRule(t *testing.T) {
	src, err := static.ReadFile("static/js/api.js")
	require.NoError(t, err)
	constant := func(name, pattern string) string {
		m := regexp.MustCompile(`const ` + name + ` = ` + pattern + `;`).FindStringSubmatch(string(src))
		require.NotNil(t, m, "js/api.js defines %s", name)
		return m[1]
	}
	var header []byte
	for _, b := range strings.Split(constant("ENVELOPE_MAGIC", `\[([0-9a-fx, ]+)\]`), ",") {
		v, err := strconv.ParseUint(strings.TrimSpace(b), 0, 8)
		require.NoError(t, err)
		header = append(header, byte(v))
	}
	version, err := strconv.ParseUint(constant("ENVELOPE_VERSION", `(\d+)`), 10, 8)
	require.NoError(t, err)
	header = append(header, byte(version))
	overhead, err := strconv.Atoi(constant("ENVELOPE_OVERHEAD", `(\d+)`))
	require.NoError(t, err)
	assert.Equal(t, secrets.EnvelopeOverhead, overhead)

	kek := make([]byte, 32)
	_, err = rand.Read(kek)
	require.NoError(t, err)
	kr, err := secrets.NewKeyring(kek, rand.Reader)
	require.NoError(t, err)
	for _, pt := range []string{"", "s3cret"} {
		env, err := kr.Encrypt([]byte(pt), []byte("app/k"))
		require.NoError(t, err)
		assert.True(t, bytes.HasPrefix(env, header), "an envelope starts with the UI's header: %x", env)
		assert.Len(t, env, overhead+len(pt))
	}
	shortest := append(append([]byte(nil), header...), make([]byte, overhead-len(header))...)
	assert.True(t, secrets.IsEnvelope(shortest))
	assert.False(t, secrets.IsEnvelope(shortest[:overhead-1]), "shorter than the UI's minimum")
	other := append([]byte(nil), shortest...)
	other[len(header)-1]++
	assert.False(t, secrets.IsEnvelope(other), "another version")
}
