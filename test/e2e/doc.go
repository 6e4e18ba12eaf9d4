// Package e2e holds cave's multi-process end-to-end tests: real `cave`
// binaries on 127.0.0.1, driven over REST, killed with SIGKILL and restarted
// with the same command line, and checked for linearizability with porcupine.
//
// All code lives in _test.go files; this file exists so the package has a
// non-test file and a package comment. Run the tests with
//
//	go test ./test/e2e/ -run . -v
//
// Environment:
//
//	CAVE_E2E_BINARY     use this prebuilt cave binary instead of building ./cmd/cave
//	CAVE_E2E_ARTIFACTS  copy node logs and porcupine visualisations of failed tests here,
//	                    and the screenshots of TestUI (else they go to a temp dir it logs)
//	CAVE_E2E_CHROMIUM   the browser for TestUI (default: chromium on PATH; with CI=true a
//	                    missing browser fails the test, otherwise it skips)
//	CAVE_E2E_SEED       repeat a randomised run
//	CAVE_E2E_IMAGE      the container image for TestDocker* (build tag docker; default: make image)
package e2e
