package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// kvctlBuild is the kvctl binary built once per test run into binDir.
var kvctlBuild struct {
	once sync.Once
	path string
	err  error
}

// kvctlBinary returns the path of a kvctl binary built from this checkout,
// or fails the test.
func kvctlBinary(t testing.TB) string {
	t.Helper()
	kvctlBuild.once.Do(func() {
		root, err := repoRoot()
		if err != nil {
			kvctlBuild.err = err
			return
		}
		out := filepath.Join(binDir, "kvctl")
		cmd := exec.Command("go", "build", "-o", out, "./cmd/kvctl")
		cmd.Dir = root
		if msg, err := cmd.CombinedOutput(); err != nil {
			kvctlBuild.err = fmt.Errorf("go build ./cmd/kvctl: %w\n%s", err, msg)
			return
		}
		kvctlBuild.path = out
	})
	if kvctlBuild.err != nil {
		t.Fatalf("cannot build kvctl: %v", kvctlBuild.err)
	}
	return kvctlBuild.path
}

// TestSecretsTLS runs a 3-node cluster with TLS and a --kek-file, driven by
// the real kvctl over mutual TLS: a secret written through n1 reads back
// through n3, reads without --secret give the envelope, rotation keeps it
// readable, kvctl without a client certificate is refused; then every node
// stops and no file of any data dir holds a secret's plaintext, while a
// plain value's marker is found.
func TestSecretsTLS(t *testing.T) {
	c := newProcCluster(t, 3, withTLS(), withShards(2))
	kvctl := kvctlBinary(t)
	run := func(node int, cert string, stdin string, args ...string) (string, string, error) {
		t.Helper()
		flags := []string{"--endpoints", c.node(node).grpcAddr, "--cacert", filepath.Join(c.certs, "ca.crt"), "--timeout", "10s"}
		if cert != "" {
			flags = append(flags, "--cert", filepath.Join(c.certs, cert+".crt"), "--key", filepath.Join(c.certs, cert+".key"))
		}
		cmd := exec.CommandContext(t.Context(), kvctl, append(flags, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		return out.String(), errb.String(), err
	}
	ok := func(node int, stdin string, args ...string) string {
		t.Helper()
		out, stderr, err := run(node, rootUser, stdin, args...)
		require.NoError(t, err, "kvctl %v: %s", args, stderr)
		return out
	}

	secret := "plaintext-secret-" + rand.Text()
	plain := "plaintext-plain-" + rand.Text()
	ok(1, secret, "put", "--secret", "app/password", "-")
	ok(2, "", "put", "app/plain", plain)
	assert.Equal(t, secret, ok(3, "", "get", "--secret", "app/password"))
	env := ok(2, "", "get", "app/password")
	assert.True(t, strings.HasPrefix(env, "\x89CVS"), "a secret read without --secret is its envelope")
	assert.NotContains(t, env, secret)

	assert.JSONEq(t, `{"key_id":1,"key_count":1}`, ok(2, "", "-o", "json", "secrets", "status"))
	assert.Contains(t, ok(3, "", "secrets", "rotate"), "data key 2")
	assert.Equal(t, secret, ok(1, "", "get", "--secret", "app/password"), "readable after the rotation")
	// kvctl sends the write to the key's leader, whose node seals it: every
	// node seals under the new key within its keyring refresh (1 s).
	secret2 := "plaintext-secret2-" + rand.Text()
	var keyID byte
	for deadline := time.Now().Add(5 * time.Second); keyID != 2 && time.Now().Before(deadline); {
		ok(3, "", "put", "--secret", "app/password2", secret2)
		var got struct {
			Value []byte `json:"value"`
		}
		require.NoError(t, json.Unmarshal([]byte(ok(1, "", "-o", "json", "get", "app/password2")), &got))
		require.Greater(t, len(got.Value), 9)
		if keyID = got.Value[8]; keyID != 2 {
			time.Sleep(200 * time.Millisecond)
		}
	}
	assert.Equal(t, byte(2), keyID, "writes use key 2 within the keyring refresh after the rotation")

	_, stderr, err := run(1, "", "", "get", "app/plain")
	assert.Error(t, err, "kvctl without a client certificate")
	assert.NotEmpty(t, stderr)

	for i := 1; i <= 3; i++ {
		t.Logf("%s stopped in %s", c.Name(i), c.Stop(i, 30*time.Second).Round(time.Millisecond))
	}
	files, plainFound := 0, 0
	for i := 1; i <= 3; i++ {
		err := filepath.WalkDir(c.node(i).dataDir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			files++
			assert.False(t, bytes.Contains(data, []byte(secret)), "plaintext of a secret in %s", path)
			assert.False(t, bytes.Contains(data, []byte(secret2)), "plaintext of a secret in %s", path)
			if bytes.Contains(data, []byte(plain)) {
				plainFound++
			}
			return nil
		})
		require.NoError(t, err)
	}
	t.Logf("grepped %d files; the plain control value is in %d", files, plainFound)
	assert.Positive(t, plainFound, "the plain control value is in no file: the grep cannot see values")
}
