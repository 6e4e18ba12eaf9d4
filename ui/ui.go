// Package ui serves cave's web UI under /ui/: a key browser (walk the key
// tree, view, create, edit and delete values, secret values hidden until
// revealed), the cluster's nodes and its shard map. It is plain HTML, CSS
// and JavaScript modules embedded in the binary with go:embed: no build
// step, nothing fetched from elsewhere. The pages talk to the node only
// through the public REST API under /api/v1.
package ui

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"strings"
)

// Prefix is the path the UI is served under.
const Prefix = "/ui/"

//go:embed static
var static embed.FS

// asset is one embedded file, ready to serve.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// contentTypes are set explicitly rather than taken from the system's MIME
// tables, which differ between machines (JavaScript modules must be served
// as JavaScript or the browser refuses to run them).
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".ico":  "image/x-icon",
	".json": "application/json",
	".txt":  "text/plain; charset=utf-8",
}

// securityHeaders go on every answer. The policy allows only this origin:
// no inline scripts or styles, no third-party fonts, scripts or frames.
var securityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
	"X-Content-Type-Options": "nosniff",
	"Referrer-Policy":        "no-referrer",
	"X-Frame-Options":        "DENY",
}

// Handler returns the handler of the UI. Mount it at /ui/; it also answers
// /ui with a redirect to /ui/. It serves index.html for /ui/ and the
// embedded assets below it, each with its content type and an ETag; every
// answer says "no-cache" so a browser revalidates (a cheap 304) and never
// runs the assets of an older binary after an upgrade.
func Handler() http.Handler {
	assets, err := load()
	if err != nil {
		// The files are compiled in; a failure here is a build defect
		// that the package's tests catch.
		panic(err)
	}
	return &handler{assets: assets}
}

type handler struct {
	assets map[string]*asset
}

func load() (map[string]*asset, error) {
	assets := map[string]*asset{}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		ct, ok := contentTypes[path.Ext(p)]
		if !ok {
			return fmt.Errorf("ui: no content type for %s", p)
		}
		sum := sha256.Sum256(body)
		assets[strings.TrimPrefix(p, "static/")] = &asset{body: body, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if assets["index.html"] == nil {
		return nil, fmt.Errorf("ui: static/index.html is missing")
	}
	return assets, nil
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	for k, v := range securityHeaders {
		w.Header().Set(k, v)
	}
	p := r.URL.Path
	if p == strings.TrimSuffix(Prefix, "/") {
		target := Prefix
		if r.URL.RawQuery != "" {
			target += "?" + r.URL.RawQuery
		}
		http.Redirect(w, r, target, http.StatusMovedPermanently)
		return
	}
	if !strings.HasPrefix(p, Prefix) {
		notFound(w, r)
		return
	}
	name := strings.TrimPrefix(p, Prefix)
	if name == "" {
		name = "index.html"
	}
	a := h.assets[name]
	if a == nil {
		notFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, 12, "METHOD_NOT_ALLOWED",
			fmt.Sprintf("method %s is not allowed on %s", r.Method, p))
		return
	}
	hd := w.Header()
	hd.Set("Cache-Control", "no-cache")
	hd.Set("ETag", a.etag)
	if match := r.Header.Get("If-None-Match"); match != "" && etagMatches(match, a.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hd.Set("Content-Type", a.contentType)
	hd.Set("Content-Length", strconv.Itoa(len(a.body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(a.body)
	}
}

// etagMatches implements If-None-Match's weak comparison for a list of
// tags or "*".
func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}

func notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, 5, "NOT_FOUND", fmt.Sprintf("no such file in the web UI: %s (open %s)", r.URL.Path, Prefix))
}

// writeError answers with the JSON error shape of the REST API.
func writeError(w http.ResponseWriter, status, code int, name, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"code": code, "status": name, "message": msg})
}
