package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// binDir holds the cave binary built for this test run; TestMain removes it.
var binDir string

// binary is the result of building ./cmd/cave once per test run.
var binary struct {
	once sync.Once
	path string
	err  error
	took time.Duration
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cave-e2e-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: temp dir for binary: %v\n", err)
		os.Exit(2)
	}
	binDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// caveBinary returns the path of a cave binary built from this checkout, or
// fails the test (never skips) when it cannot be built. It builds at most
// once per test run; CAVE_E2E_BINARY overrides the build.
func caveBinary(t testing.TB) string {
	t.Helper()
	binary.once.Do(func() {
		if p := os.Getenv("CAVE_E2E_BINARY"); p != "" {
			binary.path, binary.err = p, nil
			if _, err := os.Stat(p); err != nil {
				binary.err = fmt.Errorf("CAVE_E2E_BINARY=%s: %w", p, err)
			}
			return
		}
		root, err := repoRoot()
		if err != nil {
			binary.err = err
			return
		}
		out := filepath.Join(binDir, "cave")
		start := time.Now()
		cmd := exec.Command("go", "build", "-o", out, "./cmd/cave")
		cmd.Dir = root
		msg, err := cmd.CombinedOutput()
		binary.took = time.Since(start)
		if err != nil {
			binary.err = fmt.Errorf("go build -o %s ./cmd/cave (in %s): %w\n%s", out, root, err, msg)
			return
		}
		binary.path = out
	})
	if binary.err != nil {
		t.Fatalf("cannot build the cave binary: %v", binary.err)
	}
	if binary.took > 0 {
		t.Logf("cave binary built in %v: %s", binary.took.Round(time.Millisecond), binary.path)
		binary.took = 0
	}
	return binary.path
}

// repoRoot returns the directory holding the module's go.mod: it asks
// `go env GOMOD` and falls back to walking up from the working directory.
func repoRoot() (string, error) {
	if out, err := exec.Command("go", "env", "GOMOD").Output(); err == nil {
		gomod := strings.TrimSpace(string(out))
		if gomod != "" && gomod != os.DevNull {
			return filepath.Dir(gomod), nil
		}
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("e2e: no go.mod above the working directory")
		}
		dir = parent
	}
}
