package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// chromiumPath finds a Chromium or Chrome binary: $CAVE_E2E_CHROMIUM, or
// the first of the usual names on PATH (Debian's package installs
// /usr/bin/chromium).
func chromiumPath() (string, error) {
	if p := os.Getenv("CAVE_E2E_CHROMIUM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("CAVE_E2E_CHROMIUM=%s: %w", p, err)
		}
		return p, nil
	}
	names := []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"}
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("none of %s is on PATH", strings.Join(names, ", "))
}

// uiArtifactsDir is where the screenshots go: $CAVE_E2E_ARTIFACTS/<test>/
// when set, else a temp dir that is kept and logged.
func uiArtifactsDir(t *testing.T) string {
	t.Helper()
	var dir string
	if art := os.Getenv("CAVE_E2E_ARTIFACTS"); art != "" {
		dir = filepath.Join(art, sanitize(t.Name()))
		require.NoError(t, os.MkdirAll(dir, 0o755))
	} else {
		d, err := os.MkdirTemp("", "cave-ui-screenshots-")
		require.NoError(t, err)
		dir = d
	}
	t.Logf("UI screenshots go to %s", dir)
	return dir
}

// browser drives one Chromium tab for TestUI. Every wait is bounded: each
// step runs under its own timeout, and the whole browser under the test's.
type browser struct {
	t    *testing.T
	ctx  context.Context // the tab; ends with the test
	dir  string          // screenshots
	n    int             // screenshots taken, for ordered file names
	base string          // http://node

	mu       sync.Mutex
	problems []string // console errors and uncaught exceptions
	dialogs  []string // messages of the JavaScript dialogs that were accepted
}

const uiStepTimeout = 20 * time.Second

// step runs actions with a timeout, and on failure saves a screenshot and
// fails the test.
func (b *browser) step(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, uiStepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.failShot(what)
		b.t.Fatalf("UI step %q: %v%s", what, err, b.consoleReport())
	}
}

// waitJS waits until the JavaScript expression is truthy.
func (b *browser) waitJS(what, expr string) {
	b.t.Helper()
	b.step(what, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingTimeout(uiStepTimeout-time.Second), chromedp.WithPollingInterval(50*time.Millisecond)))
}

// shot saves a full-page PNG screenshot named NN-name.png.
func (b *browser) shot(name string) {
	b.t.Helper()
	b.n++
	ctx, cancel := context.WithTimeout(b.ctx, uiStepTimeout)
	defer cancel()
	// The whole page, unless it is very long: then what a person sees.
	shoot := chromedp.FullScreenshot(100)
	if h, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollHeight`)); err == nil && h > 2400 {
		shoot = chromedp.CaptureScreenshot()
	}
	buf, err := chromedp.Run(ctx, shoot)
	require.NoError(b.t, err, "screenshot %s", name)
	p := filepath.Join(b.dir, fmt.Sprintf("%02d-%s.png", b.n, name))
	require.NoError(b.t, os.WriteFile(p, buf, 0o644))
}

func (b *browser) failShot(what string) {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	if buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		p := filepath.Join(b.dir, "FAILED-"+sanitize(what)+".png")
		if os.WriteFile(p, buf, 0o644) == nil {
			b.t.Logf("screenshot of the failure: %s", p)
		}
	}
}

func (b *browser) consoleReport() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.problems) == 0 {
		return ""
	}
	return "\nbrowser console:\n  " + strings.Join(b.problems, "\n  ")
}

// uiEval evaluates expr in the page and decodes its value.
func uiEval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, uiStepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.failShot("eval")
		b.t.Fatalf("evaluating %s: %v%s", expr, err, b.consoleReport())
	}
	return v
}

// secretREST writes (PUT, with value) or reads (GET) key as a secret
// through node base with ?secret=true and returns the answer's body: the
// JSON result of a write, the plaintext of a read. Any status but 200 is
// an *apiError.
func secretREST(rc *restClient, method, base, key string, value []byte) ([]byte, error) {
	var body io.Reader
	if value != nil {
		body = bytes.NewReader(value)
	}
	req, err := http.NewRequest(method, kvURL(base, key, url.Values{"secret": {"true"}}), body)
	if err != nil {
		return nil, err
	}
	resp, err := rc.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, readAPIError(resp)
	}
	return io.ReadAll(resp.Body)
}

// js quotes s as a JavaScript string literal.
func js(s string) string {
	q, _ := json.Marshal(s)
	return string(q)
}

// TestUI drives the web UI at /ui/ of a three-node cluster in headless
// Chromium: it browses to a nested key made through the API, edits it
// (and meets a compare-and-swap conflict), deletes another key with the
// confirmation dialog, pages through a big folder, shows an API error,
// creates, reveals and edits secrets (checked through the API: envelope
// without secret=true, plaintext with it), and sees the nodes and shards;
// then it renders the pages 375px wide. Every step saves a screenshot. In CI (CI=true) a missing browser fails the test.
func TestUI(t *testing.T) {
	chrome, err := chromiumPath()
	if err != nil {
		msg := fmt.Sprintf("TestUI needs Chromium: %v. Install it with `apt-get install chromium` or set CAVE_E2E_CHROMIUM.", err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " In CI a missing browser is a failure.")
		}
		t.Skip(msg)
	}
	start := time.Now()
	c := newProcCluster(t, 3, withShards(4), withReplicas(3))
	rc := newRESTClient(5 * time.Second)
	defer rc.close()
	shards := c.WaitShards(rc, 60*time.Second, fullyReplicated(4, 3))
	t.Logf("cluster ready after %v", time.Since(start).Round(time.Millisecond))

	// The key tree the browser walks. "feature flags" tests the escaping of
	// a segment; cert.der is binary; logs/ has more keys than one page.
	const (
		urlKey   = "app/config/db/url"
		poolKey  = "app/config/db/pool"
		urlValue = "postgres://db.internal:5432/cave?sslmode=require"
	)
	cert := []byte{0x30, 0x82, 0x01, 0x0a, 0x02, 0x82, 0x01, 0x01, 0x00, 0xc3, 0xff, 0x00, 0x7f, 0x10, 0x20, 0x41, 0x42, 0x43, 0x0d, 0x0a}
	seed := map[string][]byte{
		urlKey:                            []byte(urlValue),
		poolKey:                           []byte("16"),
		"app/config/cache/ttl":            []byte("30s"),
		"app/config/feature flags/dark ü": []byte("on"),
		"app/config/cert.der":             cert,
		"app/name":                        []byte("cave demo"),
		"users/42/name":                   []byte("Ada"),
		"users/42/email":                  []byte("ada@example.com"),
	}
	var keys []string
	for k := range seed {
		keys = append(keys, k)
	}
	const logKeys = 230 // more than one page (200) of the UI
	for i := 0; i < logKeys; i++ {
		k := fmt.Sprintf("logs/2026-05-01/entry-%04d", i)
		keys = append(keys, k)
		seed[k] = []byte(fmt.Sprintf(`{"level":"info","n":%d}`, i))
	}
	errs, _ := writeAll(c, rc, keys, seed, 4, 10*time.Second, 1)
	require.Empty(t, errs, "seeding keys:\n  %s", firstN(errs, 10))
	_, urlRev, _, err := rc.get(c.URL(1), urlKey, false)
	require.NoError(t, err)

	// The browser: headless, as root in a container, bounded by the test.
	bctx, bcancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer bcancel()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome),
		chromedp.NoSandbox,
		chromedp.Headless,
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.WindowSize(1280, 860),
	)
	actx, acancel := chromedp.NewExecAllocator(bctx, opts...)
	defer acancel()
	tctx, tcancel := chromedp.NewContext(actx)
	defer tcancel()
	b := &browser{t: t, ctx: tctx, dir: uiArtifactsDir(t), base: c.URL(1)}

	bstart := time.Now()
	if err := chromedp.Do(tctx); err != nil { // starts the browser with no step timeout
		t.Fatalf("starting %s: %v", chrome, err)
	}
	t.Logf("%s started in %v", chrome, time.Since(bstart).Round(time.Millisecond))
	messages := chromedp.Console(tctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == "error" {
				b.mu.Lock()
				b.problems = append(b.problems, fmt.Sprintf("%s %s:%d %s", m.Type, m.URL, m.Line+1, m.Text))
				b.mu.Unlock()
			}
		}
	}()
	dialogs := chromedp.Events(tctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.dialogs = append(b.dialogs, ev.Message)
			b.mu.Unlock()
			if _, err := chromedp.Call(tctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true}); err != nil {
				t.Errorf("accepting the dialog %q: %v", ev.Message, err)
			}
		}
	}()
	folder := func(name string) chromedp.CSS {
		return chromedp.CSS(fmt.Sprintf(`#key-list a.folder[data-name=%s]`, js(name)))
	}
	keyRow := func(name string) chromedp.CSS {
		return chromedp.CSS(fmt.Sprintf(`#key-list a.key[data-name=%s]`, js(name)))
	}

	// Browse: /ui redirects to /ui/, then app → config → db → url.
	b.step("open /ui", chromedp.Navigate(b.base+"/ui"), chromedp.WaitVisible(folder("app")))
	assert.Equal(t, b.base+"/ui/#/keys/", uiEval[string](b, "location.href"))
	b.waitJS("root lists app, logs and users", `["app","logs","users"].every(n => document.querySelector('#key-list a.folder[data-name="'+n+'"]'))`)
	b.shot("keys-root")
	b.step("open app/", chromedp.Click(folder("app")), chromedp.WaitVisible(folder("config")))
	b.shot("folder-app")
	b.step("open app/config/", chromedp.Click(folder("config")), chromedp.WaitVisible(folder("db")))
	b.waitJS("config lists feature flags and cert.der", `document.querySelector('#key-list a.folder[data-name="feature flags"]') && document.querySelector('#key-list a.key[data-name="cert.der"]')`)
	b.shot("folder-config")
	b.step("open app/config/db/", chromedp.Click(folder("db")), chromedp.WaitVisible(keyRow("url")))
	assert.Equal(t, "#/keys/app/config/db/", uiEval[string](b, "location.hash"))
	b.shot("folder-db")
	b.step("open the key url", chromedp.Click(keyRow("url")), chromedp.WaitVisible(chromedp.ID("value")))
	assert.Equal(t, urlValue, uiEval[string](b, `document.getElementById('value').textContent`))
	assert.Equal(t, fmt.Sprint(urlRev), uiEval[string](b, `document.getElementById('meta-mod-revision').textContent`))
	assert.Contains(t, uiEval[string](b, `document.getElementById('meta-size').textContent`), fmt.Sprintf("%d B", len(urlValue)))
	b.shot("key-url")

	// Edit through the UI, read back through the API (another node).
	const edited = "postgres://db-primary.internal:5432/cave?sslmode=verify-full"
	b.step("edit url", chromedp.Click(chromedp.ID("edit")), chromedp.WaitVisible(chromedp.ID("editor")),
		chromedp.SetValue(chromedp.ID("editor"), edited))
	b.shot("key-url-editing")
	b.step("save url", chromedp.Click(chromedp.ID("save")))
	b.waitJS("the view shows the saved value", fmt.Sprintf(`document.getElementById('value') && document.getElementById('value').textContent === %s`, js(edited)))
	got, rev2, found, err := rc.get(c.URL(3), urlKey, false)
	require.NoError(t, err)
	require.True(t, found)
	assert.Equal(t, edited, string(got), "value of %s through the API after the UI saved it", urlKey)
	assert.Greater(t, rev2, urlRev)
	assert.Equal(t, fmt.Sprint(rev2), uiEval[string](b, `document.getElementById('meta-mod-revision').textContent`))
	b.shot("key-url-saved")

	// Compare-and-swap: the key changes behind the editor's back.
	b.step("edit url again", chromedp.Click(chromedp.ID("edit")), chromedp.WaitVisible(chromedp.ID("editor")),
		chromedp.SetValue(chromedp.ID("editor"), "stale edit"))
	const concurrent = "postgres://changed-elsewhere:5432/cave"
	_, _, err = rc.put(c.URL(2), urlKey, []byte(concurrent), nil)
	require.NoError(t, err)
	b.step("save the stale edit", chromedp.Click(chromedp.ID("save")), chromedp.WaitVisible(chromedp.ID("conflict")))
	assert.Contains(t, uiEval[string](b, `document.getElementById('conflict').textContent`), "Not saved")
	got, _, _, err = rc.get(c.URL(1), urlKey, false)
	require.NoError(t, err)
	assert.Equal(t, concurrent, string(got), "a conflicting save must not be applied")
	b.shot("key-url-conflict")
	b.step("reload after the conflict", chromedp.Click(chromedp.ID("conflict-reload")))
	b.waitJS("the view shows the other writer's value", fmt.Sprintf(`document.getElementById('value') && document.getElementById('value').textContent === %s`, js(concurrent)))

	// Delete pool with the confirmation dialog.
	b.step("back to db/ by the breadcrumb", chromedp.Click(chromedp.CSS(`#breadcrumb a[href="#/keys/app/config/db/"]`)),
		chromedp.WaitVisible(keyRow("pool")))
	b.step("open pool", chromedp.Click(keyRow("pool")), chromedp.WaitVisible(chromedp.ID("delete")))
	b.step("delete pool", chromedp.Click(chromedp.ID("delete")))
	b.waitJS("back in db/ without pool", `location.hash === '#/keys/app/config/db/' && document.querySelector('#key-list a.key[data-name="url"]') && !document.querySelector('#key-list a.key[data-name="pool"]')`)
	_, _, found, err = rc.get(c.URL(2), poolKey, false)
	require.NoError(t, err)
	assert.False(t, found, "%s still exists after the UI deleted it", poolKey)
	b.mu.Lock()
	assert.Len(t, b.dialogs, 1, "confirmation dialogs")
	if len(b.dialogs) > 0 {
		assert.Contains(t, b.dialogs[0], poolKey, "the dialog names the key")
	}
	b.mu.Unlock()
	b.shot("after-delete-pool")

	// A segment with a space and a non-ASCII letter, and a binary value.
	b.step("open feature flags/", chromedp.Navigate(b.base+"/ui/#/keys/app/config/"), chromedp.WaitVisible(folder("feature flags")),
		chromedp.Click(folder("feature flags")), chromedp.WaitVisible(keyRow("dark ü")))
	assert.Equal(t, "#/keys/app/config/feature%20flags/", uiEval[string](b, "location.hash"))
	b.step("open dark ü", chromedp.Click(keyRow("dark ü")), chromedp.WaitVisible(chromedp.ID("value")))
	assert.Equal(t, "on", uiEval[string](b, `document.getElementById('value').textContent`))
	b.step("open cert.der", chromedp.Navigate(b.base+"/ui/#/keys/app/config/cert.der"), chromedp.WaitVisible(chromedp.CSS("#value.hex")))
	assert.Contains(t, uiEval[string](b, `document.getElementById('value').textContent`), "00000000  30 82 01 0a 02 82 01 01  00 c3 ff 00 7f 10 20 41  0............. A")
	b.shot("key-binary")

	// Pagination: logs/2026-05-01/ has more keys than a page.
	b.step("open the logs folder", chromedp.Navigate(b.base+"/ui/#/keys/logs/2026-05-01/"), chromedp.WaitVisible(chromedp.ID("load-more")))
	assert.Equal(t, 200, uiEval[int](b, `document.querySelectorAll('#key-list a.key').length`))
	b.shot("logs-first-page")
	b.step("load more", chromedp.Click(chromedp.ID("load-more")))
	b.waitJS("all log keys listed", fmt.Sprintf(`document.querySelectorAll('#key-list a.key').length === %d && document.getElementById('load-more').hidden`, logKeys))

	// An API error shows its message in the banner: a key with a control
	// character passes the form's checks and the server refuses it.
	b.step("create a bad key", chromedp.Navigate(b.base+"/ui/#/keys/app/"), chromedp.WaitVisible(folder("config")),
		chromedp.Click(chromedp.ID("new-key")), chromedp.WaitVisible(chromedp.ID("new-key-name")),
		chromedp.SetValue(chromedp.ID("new-key-name"), "app/bad\u0001key"),
		chromedp.SetValue(chromedp.ID("new-key-value"), "x"),
		chromedp.Click(chromedp.ID("create")),
		chromedp.WaitVisible(chromedp.ID("banner")))
	banner := uiEval[string](b, `document.getElementById('banner-text').textContent`)
	assert.Contains(t, banner, "control characters", "banner")
	assert.Contains(t, banner, "HTTP 400", "banner")
	b.shot("error-banner")
	// And a good key through the form.
	b.step("create a key", chromedp.SetValue(chromedp.ID("new-key-name"), "app/created by ui"),
		chromedp.SetValue(chromedp.ID("new-key-value"), "hello from the browser"),
		chromedp.Click(chromedp.ID("create")), chromedp.WaitVisible(chromedp.ID("value")))
	got, _, found, err = rc.get(c.URL(3), "app/created by ui", false)
	require.NoError(t, err)
	assert.True(t, found)
	assert.Equal(t, "hello from the browser", string(got))

	// A secret through the form: the API keeps only its envelope, and the
	// view shows it hidden.
	const (
		uiSecretKey   = "app/secrets/ui-token"
		uiSecret      = "token-typed-into-the-browser"
		apiSecretKey  = "app/secrets/db-password"
		apiSecret     = "password-written-through-the-api"
		editedSecret  = "password-edited-in-the-browser"
		envelopeMagic = "\x89CVS\x01"
	)
	hiddenJS := func(plaintext string) string {
		return fmt.Sprintf(`document.getElementById('secret-badge') && document.getElementById('secret-hidden') && !document.getElementById('value') && !document.body.textContent.includes(%s)`, js(plaintext))
	}
	b.step("create a secret", chromedp.Navigate(b.base+"/ui/#/keys/app/"), chromedp.WaitVisible(folder("config")),
		chromedp.Click(chromedp.ID("new-key")), chromedp.WaitVisible(chromedp.ID("new-key-name")),
		chromedp.SetValue(chromedp.ID("new-key-name"), uiSecretKey),
		chromedp.SetValue(chromedp.ID("new-key-value"), uiSecret),
		chromedp.Click(chromedp.ID("new-key-secret")))
	b.shot("secret-create-form")
	b.step("save the secret", chromedp.Click(chromedp.ID("create")), chromedp.WaitVisible(chromedp.ID("secret-hidden")))
	b.waitJS("the new secret is shown hidden", hiddenJS(uiSecret))
	b.shot("secret-created")
	got, _, found, err = rc.get(c.URL(2), uiSecretKey, false)
	require.NoError(t, err)
	require.True(t, found)
	assert.True(t, strings.HasPrefix(string(got), envelopeMagic), "a secret read without secret=true is its envelope: %q", got)
	assert.NotContains(t, string(got), uiSecret)
	got, err = secretREST(rc, http.MethodGet, c.URL(3), uiSecretKey, nil)
	require.NoError(t, err)
	assert.Equal(t, uiSecret, string(got), "plaintext of the secret created in the UI")

	// A secret written through the API: hidden, revealed, hidden again,
	// then edited in the UI (the editor starts with its plaintext and the
	// box ticked) and read back through the API.
	_, err = secretREST(rc, http.MethodPut, c.URL(2), apiSecretKey, []byte(apiSecret))
	require.NoError(t, err)
	b.step("open the API's secret", chromedp.Navigate(b.base+"/ui/#/keys/app/secrets/db-password"), chromedp.WaitVisible(chromedp.ID("secret-hidden")))
	b.waitJS("the secret is hidden", hiddenJS(apiSecret))
	assert.Equal(t, fmt.Sprintf("%d B", len(apiSecret)), uiEval[string](b, `document.getElementById('meta-size').textContent`), "size of the plaintext")
	secretRev := uiEval[string](b, `document.getElementById('meta-mod-revision').textContent`)
	b.shot("secret-hidden")
	b.step("reveal", chromedp.Click(chromedp.ID("reveal")), chromedp.WaitVisible(chromedp.ID("value")))
	assert.Equal(t, apiSecret, uiEval[string](b, `document.getElementById('value-area').textContent`))
	b.shot("secret-revealed")
	b.step("hide", chromedp.Click(chromedp.ID("hide")), chromedp.WaitVisible(chromedp.ID("secret-hidden")))
	b.waitJS("the plaintext is gone", hiddenJS(apiSecret))
	b.step("edit the secret", chromedp.Click(chromedp.ID("edit")), chromedp.WaitVisible(chromedp.ID("editor")))
	assert.Equal(t, apiSecret, uiEval[string](b, `document.getElementById('editor').value`), "the editor starts with the plaintext")
	assert.True(t, uiEval[bool](b, `document.getElementById('edit-secret').checked`), "the Secret box starts ticked")
	assert.True(t, uiEval[bool](b, `document.getElementById('cas').checked`), "edits are conditional")
	b.step("type the new secret", chromedp.SetValue(chromedp.ID("editor"), editedSecret))
	b.shot("secret-editing")
	b.step("save the secret", chromedp.Click(chromedp.ID("save")))
	b.waitJS("the saved secret is shown hidden", hiddenJS(editedSecret)+fmt.Sprintf(` && document.getElementById('meta-mod-revision').textContent !== %s`, js(secretRev)))
	b.shot("secret-saved")
	got, err = secretREST(rc, http.MethodGet, c.URL(1), apiSecretKey, nil)
	require.NoError(t, err)
	assert.Equal(t, editedSecret, string(got), "plaintext of %s after the UI saved it", apiSecretKey)
	got, _, _, err = rc.get(c.URL(3), apiSecretKey, false)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(got), envelopeMagic), "still a secret after the edit: %q", got)

	// A plain value that only looks like an envelope: Reveal fails with
	// the server's 412 in the banner.
	fake := envelopeMagic + strings.Repeat("x", 40)
	_, _, err = rc.put(c.URL(1), "app/secrets/fake", []byte(fake), nil)
	require.NoError(t, err)
	b.step("reveal a fake secret", chromedp.Navigate(b.base+"/ui/#/keys/app/secrets/fake"), chromedp.WaitVisible(chromedp.ID("reveal")),
		chromedp.Click(chromedp.ID("reveal")), chromedp.WaitVisible(chromedp.ID("banner")))
	banner = uiEval[string](b, `document.getElementById('banner-text').textContent`)
	assert.Contains(t, banner, "Revealing app/secrets/fake", "banner")
	assert.Contains(t, banner, "HTTP 412", "banner")
	b.shot("secret-reveal-error")

	// Nodes: all three, alive, and the shards each leads; the page refreshes.
	b.step("open Nodes", chromedp.Click(chromedp.ID("tab-nodes")), chromedp.WaitVisible(chromedp.CSS(`#nodes-table tr[data-node]`)))
	b.waitJS("three alive nodes", `document.querySelectorAll('#nodes-table tr[data-node]').length === 3 && [...document.querySelectorAll('#nodes-table tr[data-node] .badge')].every(e => e.textContent === 'alive')`)
	b.waitJS("each node's placement state", `[...document.querySelectorAll('#nodes-table tr[data-node]')].every(r => r.querySelectorAll('.badge').length === 2)`)
	names := uiEval[[]string](b, `[...document.querySelectorAll('#nodes-table tr[data-node]')].map(r => r.dataset.node)`)
	assert.Equal(t, []string{"n1", "n2", "n3"}, names)
	// Each shard has one leader, so the counts add up to the shards (a
	// leadership transfer can leave one shard without a leader for a moment).
	b.waitJS("shards led add up", fmt.Sprintf(`[...document.querySelectorAll('#nodes-table .led strong')].reduce((s, e) => s + Number(e.textContent), 0) === %d`, len(shards)))
	first := uiEval[string](b, `document.getElementById('last-updated').textContent`)
	assert.Contains(t, first, "updated")
	b.shot("nodes")
	b.waitJS("the nodes page refreshes itself", fmt.Sprintf(`document.getElementById('last-updated').textContent.includes('updated') && document.getElementById('last-updated').textContent !== %s`, js(first)))

	// Shards: the meta shard and the four data shards, each with a leader
	// that is one of its replicas.
	b.step("open Shards", chromedp.Click(chromedp.ID("tab-shards")), chromedp.WaitVisible(chromedp.CSS(`#shards-table tr[data-shard]`)))
	b.waitJS("five shards, each led by one of its replicas", `(() => {
		const rows = [...document.querySelectorAll('#shards-table tr[data-shard]')];
		return rows.length === 5 && rows.every(r => {
			const l = r.querySelector('.leader');
			return l && r.querySelector('.chip.is-leader') && r.querySelector('.chip.is-leader').firstChild.textContent === l.textContent;
		});
	})()`)
	b.waitJS("no move in flight on a settled cluster", `[...document.querySelectorAll('#shards-table tr[data-shard] td[data-label="Move"]')].every(c => c.textContent === '–')`)
	type uiShard struct {
		ID       string   `json:"id"`
		Leader   string   `json:"leader"`
		Replicas []string `json:"replicas"`
	}
	rows := uiEval[[]uiShard](b, `[...document.querySelectorAll('#shards-table tr[data-shard]')].map(r => ({
		id: r.dataset.shard, leader: (r.querySelector('.leader') || {}).textContent || '',
		replicas: [...r.querySelectorAll('.chip')].map(c => c.firstChild.textContent)}))`)
	for _, r := range rows {
		assert.Contains(t, []string{"n1", "n2", "n3"}, r.Leader, "shard %s", r.ID)
		assert.Contains(t, r.Replicas, r.Leader, "shard %s: leader among its replicas", r.ID)
		if r.ID != "0" {
			assert.ElementsMatch(t, []string{"n1", "n2", "n3"}, r.Replicas, "shard %s replicas", r.ID)
		}
	}
	b.shot("shards")

	// A phone-sized window: 375px wide, nothing wider than the screen.
	b.step("narrow window", chromedp.EmulateViewport(375, 812, chromedp.EmulateScale(2), chromedp.EmulateMobile, chromedp.EmulateTouch))
	for _, p := range []struct{ name, hash, wait string }{
		{"narrow-shards", "#/shards", `#shards-table tr[data-shard] .leader`},
		{"narrow-nodes", "#/nodes", `#nodes-table tr[data-node] .badge`},
		{"narrow-keys", "#/keys/app/config/", `#key-list a.folder[data-name="db"]`},
		{"narrow-key", "#/keys/" + "app/config/db/url", `#value`},
		{"narrow-secret", "#/keys/" + apiSecretKey, `#secret-hidden`},
	} {
		b.step("narrow "+p.name, chromedp.Navigate(b.base+"/ui/"+p.hash), chromedp.WaitVisible(chromedp.CSS(p.wait)))
		width := uiEval[int](b, `document.documentElement.scrollWidth`)
		assert.LessOrEqual(t, width, 375, "%s: the page is wider than a 375px screen", p.name)
		b.shot(p.name)
	}

	// The dark theme, for people whose system asks for it.
	dark := emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}}
	_, err = chromedp.Call(tctx, emulation.SetEmulatedMedia, dark)
	require.NoError(t, err, "emulating prefers-color-scheme: dark")
	b.step("dark shards", chromedp.Navigate(b.base+"/ui/#/shards"), chromedp.WaitVisible(chromedp.CSS(`#shards-table tr[data-shard] .leader`)))
	assert.Equal(t, "rgb(18, 22, 28)", uiEval[string](b, `getComputedStyle(document.body).backgroundColor`), "dark background")
	b.shot("narrow-shards-dark")

	b.mu.Lock()
	problems := append([]string(nil), b.problems...)
	b.mu.Unlock()
	// Expected: Chromium logs the 400 of the bad key, and the 412 of the
	// conflicting save and of the fake secret, as failed resource loads.
	var unexpected []string
	for _, p := range problems {
		if !strings.Contains(p, "status of 400") && !strings.Contains(p, "status of 412") {
			unexpected = append(unexpected, p)
		}
	}
	assert.Empty(t, unexpected, "errors in the browser console")
	t.Logf("UI test done in %v (%d screenshots in %s)", time.Since(start).Round(time.Millisecond), b.n, b.dir)
}
