//go:build docker

package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// dockerCluster is a cluster of cave containers from one image. Every
// container sits on the cluster's two networks: the internal "peer" network,
// where nodes dial each other by their aliases n1, n2... at fixed addresses,
// and the "front" network that publishes its REST port on a free 127.0.0.1
// port. Cutting a node off the peer network isolates it from its peers
// while the test can still reach it. Nodes are numbered from 1 (n1
// bootstraps); URL, Name and ArtifactPath are safe from any goroutine, the
// other methods must be called from the test goroutine.
type dockerCluster struct {
	t      *testing.T
	image  string
	built  bool   // the image is this run's own: cleanup removes it
	prefix string // unique per run: the names of the networks and containers start with it
	peer   string // the peer network
	front  string // the front network
	subnet string // the peer network's /24, as "10.X.Y."
	dir    string // artifacts: histories and, on failure, the container logs
	ports  []int  // published REST port of node i at index i-1
}

// dockerCommandTimeout bounds every docker command.
const dockerCommandTimeout = 90 * time.Second

// newDockerCluster creates the networks and one container per node, n1
// with --bootstrap and the others joining through n1's gossip address, and
// starts them in order, waiting for each to be ready. Its t.Cleanup
// removes the containers, the networks and the image it built, even when
// the test fails, after logging the tail of every container's log on
// failure.
func newDockerCluster(t *testing.T, n, shards int) *dockerCluster {
	t.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		t.Fatalf("the docker tests need the docker CLI: %v", err)
	}
	dir, err := os.MkdirTemp("", "cave-e2e-"+sanitize(t.Name())+"-")
	require.NoError(t, err)
	c := &dockerCluster{
		t:      t,
		prefix: fmt.Sprintf("cave-e2e-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6),
		dir:    dir,
		ports:  freePorts(t, n),
	}
	t.Cleanup(c.cleanup)
	c.image, c.built = c.buildImage()
	c.createNetworks()
	for i := 1; i <= n; i++ {
		args := []string{"create", "--name", c.container(i), "--network", c.front,
			"-p", fmt.Sprintf("127.0.0.1:%d:8740", c.ports[i-1]),
			c.image,
			"--mode=prod", "--insecure", "--log-level=info",
			"--node-name=" + c.Name(i), "--advertise-host=" + c.Name(i),
			"--shards=" + strconv.Itoa(shards), "--replicas=3"}
		if i == 1 {
			args = append(args, "--bootstrap")
		} else {
			args = append(args, "--join="+c.Name(1)+":8743")
		}
		c.must(args...)
		c.connect(i)
	}
	for i := 1; i <= n; i++ {
		c.must("start", c.container(i))
		c.WaitReady(i, 60*time.Second)
	}
	return c
}

// buildImage returns $CAVE_E2E_IMAGE, or builds the image of this checkout
// with `make image` under a tag of this run and reports that it did.
func (c *dockerCluster) buildImage() (string, bool) {
	c.t.Helper()
	if img := os.Getenv("CAVE_E2E_IMAGE"); img != "" {
		c.must("image", "inspect", "--format", "{{.Id}}", img)
		return img, false
	}
	root, err := repoRoot()
	require.NoError(c.t, err)
	img := "cave:" + c.prefix
	start := time.Now()
	ctx, cancel := context.WithTimeout(c.t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", "-C", root, "image", "IMAGE="+img)
	if out, err := cmd.CombinedOutput(); err != nil {
		c.t.Fatalf("make image IMAGE=%s: %v\n%s", img, err, out)
	}
	c.t.Logf("image %s built in %v", img, time.Since(start).Round(time.Millisecond))
	return img, true
}

// createNetworks creates the front network and the internal peer network,
// the latter on a random 10.X.Y.0/24, trying another subnet when one is
// taken.
func (c *dockerCluster) createNetworks() {
	c.t.Helper()
	c.front = c.prefix + "-front"
	c.must("network", "create", c.front)
	peer := c.prefix + "-peer"
	var err error
	for try := 0; try < 10; try++ {
		c.subnet = fmt.Sprintf("10.%d.%d.", 100+rand.IntN(150), rand.IntN(256))
		if _, err = c.docker("network", "create", "--internal", "--subnet", c.subnet+"0/24", peer); err == nil {
			c.peer = peer
			return
		}
	}
	c.t.Fatalf("create the peer network: %v", err)
}

// docker runs the docker CLI and returns its trimmed output, or an error
// that includes the output.
func (c *dockerCluster) docker(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dockerCommandTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}

// must is docker that fails the test on error.
func (c *dockerCluster) must(args ...string) string {
	c.t.Helper()
	out, err := c.docker(args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// container returns node i's container name.
func (c *dockerCluster) container(i int) string { return c.prefix + "-" + c.Name(i) }

// N returns the number of nodes.
func (c *dockerCluster) N() int { return len(c.ports) }

// Name returns node i's --node-name, which is also its alias on the peer network.
func (c *dockerCluster) Name(i int) string { return "n" + strconv.Itoa(i) }

// Index returns the 1-based index of the node called name, or 0.
func (c *dockerCluster) Index(name string) int {
	i, err := strconv.Atoi(strings.TrimPrefix(name, "n"))
	if err != nil || !strings.HasPrefix(name, "n") || i < 1 || i > c.N() {
		return 0
	}
	return i
}

// URL returns node i's REST base URL on its published 127.0.0.1 port.
func (c *dockerCluster) URL(i int) string {
	return fmt.Sprintf("http://127.0.0.1:%d", c.ports[i-1])
}

// ArtifactPath returns where a file kept on failure goes.
func (c *dockerCluster) ArtifactPath(name string) string { return filepath.Join(c.dir, name) }

// connect attaches node i to the peer network at its fixed address with its
// alias; the address stays the same across disconnects and restarts, so the
// gossip address the node advertises stays valid.
func (c *dockerCluster) connect(i int) {
	c.t.Helper()
	c.must("network", "connect", "--ip", fmt.Sprintf("%s%d", c.subnet, 10+i), "--alias", c.Name(i), c.peer, c.container(i))
}

// Partition cuts node i off the peer network; its REST port stays reachable.
func (c *dockerCluster) Partition(i int) {
	c.t.Helper()
	c.must("network", "disconnect", c.peer, c.container(i))
}

// Heal puts node i back on the peer network.
func (c *dockerCluster) Heal(i int) { c.connect(i) }

// Kill sends SIGKILL to node i's container (docker kill).
func (c *dockerCluster) Kill(i int) { c.must("kill", c.container(i)) }

// Stop sends SIGTERM to node i (docker stop, SIGKILL after grace) and
// returns how long it took to exit and its exit code.
func (c *dockerCluster) Stop(i int, grace time.Duration) (time.Duration, int) {
	c.t.Helper()
	start := time.Now()
	c.must("stop", "-t", strconv.Itoa(int(grace.Seconds())), c.container(i))
	took := time.Since(start)
	code, err := strconv.Atoi(c.must("inspect", "-f", "{{.State.ExitCode}}", c.container(i)))
	require.NoError(c.t, err)
	return took, code
}

// Start starts node i's stopped container with its original command line.
func (c *dockerCluster) Start(i int) { c.must("start", c.container(i)) }

// Running reports whether node i's container runs.
func (c *dockerCluster) Running(i int) bool {
	out, err := c.docker("inspect", "-f", "{{.State.Running}}", c.container(i))
	return err == nil && out == "true"
}

// WaitReady polls node i's /api/v1/ready until it answers 200, failing the
// test after timeout; it returns how long that took.
func (c *dockerCluster) WaitReady(i int, timeout time.Duration) time.Duration {
	c.t.Helper()
	start := time.Now()
	hc := &http.Client{Timeout: time.Second}
	var last string
	err := poll(c.t.Context(), timeout, 100*time.Millisecond, func() (bool, error) {
		resp, err := hc.Get(c.URL(i) + "/api/v1/ready")
		if err != nil {
			last = err.Error()
			return false, nil
		}
		resp.Body.Close()
		last = resp.Status
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		c.t.Fatalf("%s not ready: %v (last answer: %s)", c.Name(i), err, last)
	}
	took := time.Since(start)
	c.t.Logf("%s ready after %v", c.Name(i), took.Round(time.Millisecond))
	return took
}

// WaitShards polls /api/v1/cluster/shards on the nodes in turn until check
// finds nothing wrong; it fails the test after timeout and returns how
// long it took.
func (c *dockerCluster) WaitShards(rc *restClient, timeout time.Duration, check shardCheck) time.Duration {
	c.t.Helper()
	start := time.Now()
	var (
		last    []shardInfo
		problem string
		n       int
	)
	err := poll(c.t.Context(), timeout, 250*time.Millisecond, func() (bool, error) {
		i := 1 + n%c.N()
		n++
		ss, err := rc.shards(c.URL(i))
		if err != nil {
			problem = fmt.Sprintf("%s: %v", c.Name(i), err)
			return false, nil
		}
		last, problem = ss, check(ss)
		if problem != "" {
			problem = c.Name(i) + ": " + problem
		}
		return problem == "", nil
	})
	if err != nil {
		c.t.Fatalf("shards never settled: %v\nlast problem: %s\nlast answer:\n  %s", err, problem, describeShards(last))
	}
	return time.Since(start)
}

// dockerProbeKey is read by WaitServes and the partition probe; it is not
// one of the keys of the linearizability history.
const dockerProbeKey = "e2e/docker/probe"

// WaitServes polls a linearizable read of dockerProbeKey through node i
// until it gets an answer (the key need not exist), failing the test after
// timeout; it returns how long that took.
func (c *dockerCluster) WaitServes(rc *restClient, i int, timeout time.Duration) time.Duration {
	c.t.Helper()
	start := time.Now()
	var last error
	err := poll(c.t.Context(), timeout, 100*time.Millisecond, func() (bool, error) {
		_, _, _, last = rc.get(c.URL(i), dockerProbeKey, false)
		return last == nil, nil
	})
	if err != nil {
		c.t.Fatalf("%s does not serve reads: %v (last error: %v)", c.Name(i), err, last)
	}
	return time.Since(start)
}

func (c *dockerCluster) cleanup() {
	t := c.t
	if t.Failed() {
		for i := 1; i <= c.N(); i++ {
			logs, err := c.docker("logs", c.container(i))
			if err != nil {
				continue // never created
			}
			path := c.ArtifactPath(c.Name(i) + ".log")
			_ = os.WriteFile(path, []byte(logs), 0o644)
			t.Logf("---- tail of %s (%s) ----\n%s", c.Name(i), path, tailFile(path, 60))
		}
		t.Logf("kept %s (container logs, history)", c.dir)
	} else {
		_ = os.RemoveAll(c.dir)
	}
	for i := 1; i <= c.N(); i++ {
		_, _ = c.docker("rm", "-f", "-v", c.container(i))
	}
	for _, nw := range []string{c.peer, c.front} {
		if nw == "" {
			continue
		}
		if _, err := c.docker("network", "rm", nw); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
	if c.built {
		if _, err := c.docker("rmi", c.image); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
}

// dockerWorkload spreads the load over the longer fault schedule of
// TestDockerFaultsLinearizable at the conflict rate of defaultWorkload.
var dockerWorkload = linWorkload{clients: 6, maxOps: 4000, minGap: 30 * time.Millisecond, keys: 8, bound: 150 * time.Second}

// TestDockerFaultsLinearizable runs three cave containers under concurrent
// REST load and, in turn, cuts the node that leads the most shards off the
// peer network and heals it, kills a node with docker kill and starts it
// again, and restarts every node with SIGTERM (docker stop, docker start).
// The isolated node stays reachable: it may refuse or time out, never answer
// wrongly. The history must be linearizable, no acknowledged write may be
// lost, every graceful stop must exit 0 promptly, and every shard must have
// its three voters at the end.
func TestDockerFaultsLinearizable(t *testing.T) {
	start := time.Now()
	c := newDockerCluster(t, 3, linShards)
	rc := newRESTClient(3 * time.Second)
	t.Cleanup(rc.close)
	settled := fullyReplicated(linShards, 3)
	t.Logf("cluster ready, replicated after %v (total %v)",
		c.WaitShards(rc, 60*time.Second, settled).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))

	runLinearizable(t, c, rc, dockerWorkload, func(pause func(time.Duration)) {
		pause(3 * time.Second)

		// (a) Partition the busiest leader away from its peers, then heal.
		victim, leaders := busiestLeader(t, c, rc)
		t.Logf("(a) leaders per node %v; partition %s", leaders, c.Name(victim))
		c.Partition(victim)
		pause(3 * time.Second)
		// Cut off from a quorum, the node must not answer a linearizable read.
		probeStart := time.Now()
		_, _, _, err := rc.get(c.URL(victim), dockerProbeKey, false)
		t.Logf("(a) read through the isolated %s after %v: %s", c.Name(victim),
			time.Since(probeStart).Round(time.Millisecond), probeOutcome(err))
		assert.Error(t, err, "a linearizable read through the isolated %s succeeded", c.Name(victim))
		pause(3 * time.Second)
		c.Heal(victim)
		t.Logf("(a) healed %s: it serves reads again after %v, shards whole after %v", c.Name(victim),
			c.WaitServes(rc, victim, 60*time.Second).Round(time.Millisecond),
			c.WaitShards(rc, 60*time.Second, settled).Round(time.Millisecond))
		pause(2 * time.Second)

		// (b) docker kill a node and start it again.
		victim = 1 + (victim % c.N())
		t.Logf("(b) docker kill %s", c.Name(victim))
		c.Kill(victim)
		pause(4 * time.Second)
		c.Start(victim)
		c.WaitReady(victim, 60*time.Second)
		t.Logf("(b) %s serves reads after %v, shards whole after %v", c.Name(victim),
			c.WaitServes(rc, victim, 60*time.Second).Round(time.Millisecond),
			c.WaitShards(rc, 60*time.Second, settled).Round(time.Millisecond))
		pause(2 * time.Second)

		// (c) Rolling restart with SIGTERM.
		for i := 1; i <= c.N(); i++ {
			took, code := c.Stop(i, 20*time.Second)
			t.Logf("(c) docker stop %s: exit code %d after %v", c.Name(i), code, took.Round(time.Millisecond))
			assert.Zero(t, code, "exit code of %s after SIGTERM", c.Name(i))
			assert.Less(t, took, 15*time.Second, "graceful stop of %s", c.Name(i))
			pause(time.Second)
			c.Start(i)
			c.WaitReady(i, 60*time.Second)
			t.Logf("(c) %s serves reads after %v, shards whole after %v", c.Name(i),
				c.WaitServes(rc, i, 60*time.Second).Round(time.Millisecond),
				c.WaitShards(rc, 60*time.Second, settled).Round(time.Millisecond))
			pause(time.Second)
		}
	})
	c.WaitShards(rc, 60*time.Second, settled)
	for i := 1; i <= c.N(); i++ {
		assert.True(t, c.Running(i), "%s is not running at the end", c.Name(i))
	}
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}

// probeOutcome describes the outcome of a probe read.
func probeOutcome(err error) string {
	if err == nil {
		return "answered"
	}
	return reason(statusOf(err), err)
}
