package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// clusterConfig is what newProcCluster starts; change it with clusterOptions.
type clusterConfig struct {
	// nodes is how many node slots the cluster has; all are started.
	nodes int
	// shards is passed as --shards (data shards at bootstrap).
	shards int
	// replicas is passed as --replicas.
	replicas int
	// deadNodeTimeout is passed as --dead-node-timeout; zero leaves the flag out.
	deadNodeTimeout time.Duration
	// readyTimeout bounds each WaitReady during start-up.
	readyTimeout time.Duration
	// joinVia returns the 1-based node that node i (i >= 2) joins through.
	// The default is the previous node, so n3 joins through n2, not n1.
	joinVia func(i int) int
	// extraArgs are appended to every node's command line.
	extraArgs []string
	// secure runs the nodes with TLS on every port instead of --insecure
	// (see withTLS).
	secure bool
}

type clusterOption func(*clusterConfig)

func withShards(n int) clusterOption   { return func(c *clusterConfig) { c.shards = n } }
func withReplicas(n int) clusterOption { return func(c *clusterConfig) { c.replicas = n } }
func withDeadNodeTimeout(d time.Duration) clusterOption {
	return func(c *clusterConfig) { c.deadNodeTimeout = d }
}
func withJoinVia(f func(i int) int) clusterOption { return func(c *clusterConfig) { c.joinVia = f } }
func withExtraArgs(a ...string) clusterOption {
	return func(c *clusterConfig) { c.extraArgs = append(c.extraArgs, a...) }
}

// procCluster is a cluster of real cave processes on 127.0.0.1, each with its
// own ports, data dir and log file under one temp dir. Nodes are numbered
// from 1 (n1 bootstraps). Methods must be called from the test goroutine,
// except URL, Name and Running, which are safe from any goroutine.
type procCluster struct {
	t     testing.TB
	cfg   clusterConfig
	bin   string
	dir   string
	nodes []*procNode // index 0 is n1
	certs string      // with cfg.secure: the dir of the CA, node and client certificates

	mu      sync.Mutex
	crashes []crash // unexpected exits, guarded by mu
}

// crash is an exit the harness did not ask for: the node and which of its
// starts (procNode.starts) ended.
type crash struct {
	nd    *procNode
	start int
	msg   string
}

// procNode is one cave process slot. Its addresses and command line change
// only when its first start fails on a port taken by another process (see
// WaitReady); after that Restart runs exactly what Start ran.
type procNode struct {
	idx                          int // 1-based
	name                         string
	httpAddr, grpcAddr, raftAddr string // written under mu, read by URL under it
	gossipAddr                   string
	dataDir, logPath             string
	args                         []string

	mu       sync.Mutex // guards the fields below and the addresses' changes
	cmd      *exec.Cmd
	done     chan struct{} // closed when the running process has been reaped
	exitErr  error
	expected bool // the harness asked the process to exit
	starts   int
	// first is set while the running or last process is from the node's
	// first Start (retries on fresh ports included): its data dir holds
	// nothing a test wrote.
	first bool
	// logFrom is the log file's size when the last process started, where
	// its output begins.
	logFrom int64
	// portRetries counts the starts redone on fresh ports.
	portRetries int
}

// maxPortRetries bounds how often a node's first start is redone on fresh
// ports.
const maxPortRetries = 3

// newProcCluster starts n1 with --bootstrap, waits until it is ready, then
// starts every other node with --join through joinVia(i) and waits for each
// to be ready in turn. It registers a t.Cleanup that SIGKILLs every process,
// fails the test if any node exited on its own, and on failure logs the tail
// of every node's log and keeps the temp dir (copying the logs to
// $CAVE_E2E_ARTIFACTS when set).
func newProcCluster(t *testing.T, n int, opts ...clusterOption) *procCluster {
	t.Helper()
	c := newProcClusterStopped(t, n, opts...)
	for i := 1; i <= n; i++ {
		c.Start(i)
		c.WaitReady(i, c.cfg.readyTimeout)
	}
	return c
}

// newProcClusterStopped is newProcCluster without starting any node.
func newProcClusterStopped(t *testing.T, n int, opts ...clusterOption) *procCluster {
	t.Helper()
	cfg := clusterConfig{
		nodes:        n,
		shards:       4,
		replicas:     3,
		readyTimeout: 60 * time.Second,
		joinVia:      func(i int) int { return i - 1 },
	}
	for _, o := range opts {
		o(&cfg)
	}
	bin := caveBinary(t)
	dir, err := os.MkdirTemp("", "cave-e2e-"+sanitize(t.Name())+"-")
	if err != nil {
		t.Fatalf("temp dir: %v", err)
	}
	c := &procCluster{t: t, cfg: cfg, bin: bin, dir: dir}
	t.Cleanup(c.cleanup)
	ports := freePorts(t, 4*n)
	for i := 1; i <= n; i++ {
		p := ports[4*(i-1):]
		nd := &procNode{
			idx:        i,
			name:       fmt.Sprintf("n%d", i),
			httpAddr:   fmt.Sprintf("127.0.0.1:%d", p[0]),
			grpcAddr:   fmt.Sprintf("127.0.0.1:%d", p[1]),
			raftAddr:   fmt.Sprintf("127.0.0.1:%d", p[2]),
			gossipAddr: fmt.Sprintf("127.0.0.1:%d", p[3]),
		}
		nd.dataDir = filepath.Join(dir, nd.name)
		nd.logPath = filepath.Join(dir, nd.name+".log")
		c.nodes = append(c.nodes, nd)
	}
	if cfg.secure {
		c.makeCerts()
	}
	for _, nd := range c.nodes {
		nd.args = c.commandLine(nd)
	}
	t.Logf("cluster dir %s", dir)
	return c
}

func (c *procCluster) commandLine(nd *procNode) []string {
	args := []string{"--mode=prod"}
	args = append(args, c.securityArgs(nd)...)
	args = append(args,
		"--node-name", nd.name,
		"--data-dir", nd.dataDir,
		"--http-addr", nd.httpAddr,
		"--grpc-addr", nd.grpcAddr,
		"--raft-addr", nd.raftAddr,
		"--gossip-addr", nd.gossipAddr,
		"--shards", strconv.Itoa(c.cfg.shards),
		"--replicas", strconv.Itoa(c.cfg.replicas),
		"--log-level", "info",
	)
	if c.cfg.deadNodeTimeout > 0 {
		args = append(args, "--dead-node-timeout", c.cfg.deadNodeTimeout.String())
	}
	if nd.idx == 1 {
		args = append(args, "--bootstrap")
	} else {
		args = append(args, "--join", c.joinAddr(c.cfg.joinVia(nd.idx)))
	}
	return append(args, c.cfg.extraArgs...)
}

func (c *procCluster) node(i int) *procNode {
	if i < 1 || i > len(c.nodes) {
		panic(fmt.Sprintf("e2e: no node %d in a %d-node cluster", i, len(c.nodes)))
	}
	return c.nodes[i-1]
}

// N returns the number of node slots.
func (c *procCluster) N() int { return len(c.nodes) }

// Name returns node i's --node-name ("n1"...).
func (c *procCluster) Name(i int) string { return c.node(i).name }

// Index returns the 1-based index of the node called name, or 0.
func (c *procCluster) Index(name string) int {
	for _, nd := range c.nodes {
		if nd.name == name {
			return nd.idx
		}
	}
	return 0
}

// URL returns node i's REST base URL, e.g. http://127.0.0.1:41234
// (https:// with withTLS).
func (c *procCluster) URL(i int) string {
	nd := c.node(i)
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if c.cfg.secure {
		return "https://" + nd.httpAddr
	}
	return "http://" + nd.httpAddr
}

// Running reports whether node i's process is started and not yet reaped.
func (c *procCluster) Running(i int) bool {
	nd := c.node(i)
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.done == nil {
		return false
	}
	select {
	case <-nd.done:
		return false
	default:
		return true
	}
}

// ArtifactPath returns where a test should write a file (history, porcupine
// visualisation) that is kept, and copied to $CAVE_E2E_ARTIFACTS, when the
// test fails.
func (c *procCluster) ArtifactPath(name string) string { return filepath.Join(c.dir, name) }

// CommandLine returns node i's arguments (without the binary).
func (c *procCluster) CommandLine(i int) []string { return append([]string(nil), c.node(i).args...) }

// Start starts node i's process; it fails the test if it is already running.
func (c *procCluster) Start(i int) {
	c.t.Helper()
	if c.Running(i) {
		c.t.Fatalf("start %s: already running", c.Name(i))
	}
	nd := c.node(i)
	nd.mu.Lock()
	nd.first = nd.starts == 0
	nd.mu.Unlock()
	c.launch(nd)
}

// launch starts nd's process with its command line, its output appended to
// its log file.
func (c *procCluster) launch(nd *procNode) {
	c.t.Helper()
	f, err := os.OpenFile(nd.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatalf("start %s: log file: %v", nd.name, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		c.t.Fatalf("start %s: log file: %v", nd.name, err)
	}
	nd.mu.Lock()
	nd.starts++
	start := nd.starts
	nd.logFrom = fi.Size()
	fmt.Fprintf(f, "=== e2e: start #%d of %s at %s: %s %s\n", nd.starts, nd.name,
		time.Now().Format(time.RFC3339Nano), c.bin, strings.Join(nd.args, " "))
	cmd := exec.Command(c.bin, nd.args...)
	cmd.Dir = c.dir // no dragonboat-*-settings.json here
	cmd.Env = cleanEnv()
	cmd.Stdout = f
	cmd.Stderr = f
	// Never outlive the test binary, even if it is killed itself.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		nd.mu.Unlock()
		f.Close()
		c.t.Fatalf("start %s: %v", nd.name, err)
	}
	done := make(chan struct{})
	nd.cmd, nd.done, nd.exitErr, nd.expected = cmd, done, nil, false
	nd.mu.Unlock()
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(f, "=== e2e: %s exited at %s: %v\n", nd.name, time.Now().Format(time.RFC3339Nano), err)
		f.Close()
		nd.mu.Lock()
		nd.exitErr = err
		expected := nd.expected
		nd.mu.Unlock()
		if !expected {
			c.mu.Lock()
			c.crashes = append(c.crashes, crash{nd: nd, start: start, msg: fmt.Sprintf("%s exited on its own at %s: %v",
				nd.name, time.Now().Format("15:04:05.000"), err)})
			c.mu.Unlock()
		}
		close(done)
	}()
}

// ExitErr returns how node i's last process ended (nil: exit status 0), or
// nil while it runs.
func (c *procCluster) ExitErr(i int) error {
	nd := c.node(i)
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.done == nil {
		return nil
	}
	select {
	case <-nd.done:
		return nd.exitErr
	default:
		return nil
	}
}

// Restart starts node i again with the same command line (after Kill9 or Stop).
func (c *procCluster) Restart(i int) {
	c.t.Helper()
	c.Start(i)
}

// Kill9 sends SIGKILL to node i and waits until the process is reaped.
func (c *procCluster) Kill9(i int) {
	c.t.Helper()
	if err := c.signalAndWait(i, syscall.SIGKILL, 10*time.Second); err != nil {
		c.t.Fatalf("kill -9 %s: %v", c.Name(i), err)
	}
}

// Stop sends SIGTERM to node i and waits up to timeout for it to exit; if it
// does not, it fails the test and SIGKILLs it. It returns how long the exit took.
func (c *procCluster) Stop(i int, timeout time.Duration) time.Duration {
	c.t.Helper()
	start := time.Now()
	if err := c.signalAndWait(i, syscall.SIGTERM, timeout); err != nil {
		c.t.Errorf("stop %s: %v; sending SIGKILL", c.Name(i), err)
		c.Kill9(i)
	}
	return time.Since(start)
}

func (c *procCluster) signalAndWait(i int, sig syscall.Signal, timeout time.Duration) error {
	nd := c.node(i)
	nd.mu.Lock()
	cmd, done := nd.cmd, nd.done
	if done == nil {
		nd.mu.Unlock()
		return errors.New("never started")
	}
	nd.expected = true
	nd.mu.Unlock()
	select {
	case <-done:
		return errors.New("not running")
	default:
	}
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("still running %v after %v", timeout, sig)
	}
}

// WaitReady polls GET /api/v1/ready on node i until it answers 200. It fails
// the test if the process exits first or timeout passes, except when the
// node's first start exits because one of its ports was taken between
// choosing and binding it: then it starts the node again on fresh ports
// (see retryOnFreshPorts) and keeps waiting.
func (c *procCluster) WaitReady(i int, timeout time.Duration) time.Duration {
	c.t.Helper()
	start := time.Now()
	hc := c.httpClient(time.Second)
	var last string
	err := poll(c.ctx(), timeout, 100*time.Millisecond, func() (bool, error) {
		if !c.Running(i) {
			if c.retryOnFreshPorts(i) {
				return false, nil
			}
			return false, fmt.Errorf("%s exited while waiting for readiness", c.Name(i))
		}
		resp, err := hc.Get(c.URL(i) + "/api/v1/ready")
		if err != nil {
			last = err.Error()
			return false, nil
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		last = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		c.t.Fatalf("%s not ready: %v (last answer: %s)", c.Name(i), err, last)
	}
	took := time.Since(start)
	c.t.Logf("%s ready after %v", c.Name(i), took.Round(time.Millisecond))
	return took
}

// portTaken is what a cave process logs when it cannot bind an address.
const portTaken = "address already in use"

// retryOnFreshPorts starts node i again on four fresh ports and an empty
// data dir when its exited process came from the node's first Start, and
// its output says a port was taken, at most maxPortRetries times; it
// reports whether it did. The exit is then not counted as a crash, and
// every node's command line that named one of i's old addresses (a --join)
// names the new one.
func (c *procCluster) retryOnFreshPorts(i int) bool {
	c.t.Helper()
	nd := c.node(i)
	nd.mu.Lock()
	first, retries, from, start := nd.first, nd.portRetries, nd.logFrom, nd.starts
	nd.mu.Unlock()
	if !first || retries >= maxPortRetries {
		return false
	}
	out, err := readFrom(nd.logPath, from)
	if err != nil || !strings.Contains(out, portTaken) {
		return false
	}
	c.mu.Lock()
	c.crashes = slices.DeleteFunc(c.crashes, func(cr crash) bool { return cr.nd == nd && cr.start == start })
	c.mu.Unlock()

	avoid := map[int]bool{}
	for _, o := range c.nodes {
		for _, a := range []string{o.httpAddr, o.grpcAddr, o.raftAddr, o.gossipAddr} {
			avoid[addrPort(a)] = true
		}
	}
	p := freePortsAvoiding(c.t, 4, avoid)
	nd.mu.Lock()
	old := map[string]string{}
	for j, a := range []*string{&nd.httpAddr, &nd.grpcAddr, &nd.raftAddr, &nd.gossipAddr} {
		na := fmt.Sprintf("127.0.0.1:%d", p[j])
		old[*a] = na
		*a = na
	}
	nd.portRetries++
	nd.mu.Unlock()
	for _, o := range c.nodes {
		o.args = replaceAddrs(o.args, old)
	}
	if err := os.RemoveAll(nd.dataDir); err != nil {
		c.t.Fatalf("retry %s: clear its data dir: %v", nd.name, err)
	}
	c.t.Logf("%s: a port was taken before it bound it (%q in its log); starting it on fresh ports %v", nd.name, portTaken, p)
	c.launch(nd)
	return true
}

// replaceAddrs returns args with every address that is a key of repl, alone
// or in a comma-separated list, replaced by its value.
func replaceAddrs(args []string, repl map[string]string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		parts := strings.Split(a, ",")
		for j, p := range parts {
			if r, ok := repl[p]; ok {
				parts[j] = r
			}
		}
		out[i] = strings.Join(parts, ",")
	}
	return out
}

// addrPort returns the port of a host:port address, or 0.
func addrPort(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}

// readFrom returns the content of path from byte offset on.
func readFrom(path string, offset int64) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return "", err
	}
	b, err := io.ReadAll(f)
	return string(b), err
}

// ctx returns a context that ends with the test (Go 1.24 t.Context).
func (c *procCluster) ctx() context.Context {
	if tc, ok := c.t.(interface{ Context() context.Context }); ok {
		return tc.Context()
	}
	return context.Background()
}

func (c *procCluster) cleanup() {
	t := c.t
	for _, nd := range c.nodes {
		if c.Running(nd.idx) {
			_ = c.signalAndWait(nd.idx, syscall.SIGKILL, 10*time.Second)
		}
	}
	c.mu.Lock()
	var crashes []string
	for _, cr := range c.crashes {
		crashes = append(crashes, cr.msg)
	}
	c.mu.Unlock()
	if len(crashes) > 0 {
		t.Errorf("node processes exited without being asked to:\n  %s", strings.Join(crashes, "\n  "))
	}
	if !t.Failed() {
		_ = os.RemoveAll(c.dir)
		return
	}
	for _, nd := range c.nodes {
		nd.mu.Lock()
		starts := nd.starts
		nd.mu.Unlock()
		if starts == 0 {
			t.Logf("---- %s was never started ----", nd.name)
			continue
		}
		t.Logf("---- tail of %s (%s) ----\n%s", nd.name, nd.logPath, tailFile(nd.logPath, 60))
	}
	if art := os.Getenv("CAVE_E2E_ARTIFACTS"); art != "" {
		dst := filepath.Join(art, sanitize(t.Name()))
		if err := os.MkdirAll(dst, 0o755); err == nil {
			// Logs, histories and visualisations: the top-level files.
			entries, _ := os.ReadDir(c.dir)
			for _, e := range entries {
				if e.Type().IsRegular() {
					_ = copyFile(filepath.Join(c.dir, e.Name()), filepath.Join(dst, e.Name()))
				}
			}
			t.Logf("node logs and artifacts copied to %s", dst)
		}
	}
	t.Logf("kept cluster dir %s (data dirs and logs)", c.dir)
}

// poll calls f every interval until it returns true, returns an error, ctx
// ends or timeout passes.
func poll(ctx context.Context, timeout, interval time.Duration, f func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		ok, err := f()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up after %v: %w", timeout, ctx.Err())
		case <-tick.C:
		}
	}
}

// freePorts returns n distinct ports that are free on 127.0.0.1 for both TCP
// and UDP (serf gossips on both) at the time of the call.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	return freePortsAvoiding(t, n, nil)
}

// freePortsAvoiding is freePorts without the ports in avoid (those of
// stopped nodes, free now but bound again on restart).
func freePortsAvoiding(t testing.TB, n int, avoid map[int]bool) []int {
	t.Helper()
	var (
		ports []int
		held  []io.Closer
	)
	defer func() {
		for _, h := range held {
			h.Close()
		}
	}()
	for attempts := 0; len(ports) < n; attempts++ {
		if attempts > 100*n {
			t.Fatalf("could not find %d free ports", n)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		if avoid[port] {
			held = append(held, l) // bound until the end, so it is not offered again
			continue
		}
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			l.Close()
			continue
		}
		held = append(held, l, u)
		ports = append(ports, port)
	}
	return ports
}

// cleanEnv is the test's environment without CAVE_* variables, so a
// developer's settings cannot change what the nodes do.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CAVE_") {
			env = append(env, kv)
		}
	}
	return env
}

func sanitize(name string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '_'
	}, name)
}

// tailFile returns the last n lines of path.
func tailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > 4*n {
			lines = append([]string(nil), lines[len(lines)-n:]...)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
