package e2e

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// runningNodes returns the 1-based indexes of nodes whose process runs.
func (c *procCluster) runningNodes() []int {
	var out []int
	for i := 1; i <= c.N(); i++ {
		if c.Running(i) {
			out = append(out, i)
		}
	}
	return out
}

// shardCheck inspects a /cluster/shards answer and says what is still wrong
// ("" when nothing is).
type shardCheck func([]shardInfo) string

// fullyReplicated wants at least minShards data shards (id != 0) listed,
// each with a leader and exactly replicas voters on distinct nodes, none of
// them on a node in exclude, and the leader among them. The meta shard
// (id 0) is held to the same rules except that it may have more voters than
// replicas (cave gives it up to --meta-voters, 5 by default, for
// availability) plus learners.
func fullyReplicated(minShards, replicas int, exclude ...string) shardCheck {
	return func(ss []shardInfo) string {
		data := 0
		for _, s := range ss {
			if s.ID != 0 {
				data++
			}
		}
		if data < minShards {
			return fmt.Sprintf("%d data shards listed, want at least %d", data, minShards)
		}
		var problems []string
		for _, s := range ss {
			nodes := map[string]bool{}
			voters := 0
			for _, r := range s.Replicas {
				if r.Role == "voter" {
					voters++
				}
				nodes[r.Node] = true
				for _, x := range exclude {
					if r.Node == x {
						problems = append(problems, fmt.Sprintf("shard %d still has a replica on %s", s.ID, x))
					}
				}
			}
			wrongCount := len(s.Replicas) != replicas || voters != replicas
			if s.ID == 0 {
				wrongCount = voters < replicas
			}
			switch {
			case wrongCount || len(nodes) != len(s.Replicas):
				problems = append(problems, fmt.Sprintf("shard %d has %d replicas (%d voters, %d nodes), want %d voters",
					s.ID, len(s.Replicas), voters, len(nodes), replicas))
			case s.Leader == "":
				problems = append(problems, fmt.Sprintf("shard %d has no leader", s.ID))
			case !nodes[s.Leader]:
				problems = append(problems, fmt.Sprintf("shard %d leader %q is not one of its replicas", s.ID, s.Leader))
			}
		}
		return strings.Join(problems, "; ")
	}
}

// dataShardsOnly applies check to the data shards, leaving out the meta
// shard (id 0).
func dataShardsOnly(check shardCheck) shardCheck {
	return func(ss []shardInfo) string {
		var data []shardInfo
		for _, s := range ss {
			if s.ID != 0 {
				data = append(data, s)
			}
		}
		return check(data)
	}
}

// metaShardWithout wants the meta shard listed, with a leader, and with no
// replica on any node in exclude.
func metaShardWithout(exclude ...string) shardCheck {
	return func(ss []shardInfo) string {
		for _, s := range ss {
			if s.ID != 0 {
				continue
			}
			var problems []string
			for _, r := range s.Replicas {
				for _, x := range exclude {
					if r.Node == x {
						problems = append(problems, fmt.Sprintf("meta shard still has replica %d (%s) on %s", r.ReplicaID, r.Role, x))
					}
				}
			}
			if s.Leader == "" {
				problems = append(problems, "meta shard has no leader")
			}
			return strings.Join(problems, "; ")
		}
		return "meta shard (id 0) not listed"
	}
}

// WaitShards polls /api/v1/cluster/shards on the running nodes in turn until
// check finds nothing wrong, and returns the last answer. It fails the test
// after timeout, showing the last answer and what was wrong with it.
func (c *procCluster) WaitShards(rc *restClient, timeout time.Duration, check shardCheck) []shardInfo {
	c.t.Helper()
	start := time.Now()
	last, err := c.pollShards(rc, timeout, check)
	if err != nil {
		c.t.Fatalf("shards never settled: %v", err)
	}
	c.t.Logf("shards settled after %v:\n  %s", time.Since(start).Round(time.Millisecond), describeShards(last))
	return last
}

// CheckShards is WaitShards that reports a timeout with t.Errorf and goes
// on; it returns whether the shards settled.
func (c *procCluster) CheckShards(rc *restClient, timeout time.Duration, check shardCheck) bool {
	c.t.Helper()
	start := time.Now()
	if _, err := c.pollShards(rc, timeout, check); err != nil {
		c.t.Errorf("shards did not settle: %v", err)
		return false
	}
	c.t.Logf("shards settled after %v", time.Since(start).Round(time.Millisecond))
	return true
}

func (c *procCluster) pollShards(rc *restClient, timeout time.Duration, check shardCheck) ([]shardInfo, error) {
	var (
		last    []shardInfo
		lastErr string
		n       int
	)
	err := poll(c.ctx(), timeout, 250*time.Millisecond, func() (bool, error) {
		running := c.runningNodes()
		if len(running) == 0 {
			return false, fmt.Errorf("no node is running")
		}
		i := running[n%len(running)]
		n++
		ss, err := rc.shards(c.URL(i))
		if err != nil {
			lastErr = fmt.Sprintf("%s: %v", c.Name(i), err)
			return false, nil
		}
		last = ss
		problem := check(ss)
		lastErr = fmt.Sprintf("%s: %s", c.Name(i), problem)
		return problem == "", nil
	})
	if err != nil {
		return last, fmt.Errorf("%w\nlast problem: %s\nlast answer:\n  %s", err, lastErr, describeShards(last))
	}
	return last, nil
}

// leaderCounts returns how many shards each node leads.
func leaderCounts(ss []shardInfo) map[string]int {
	m := map[string]int{}
	for _, s := range ss {
		if s.Leader != "" {
			m[s.Leader]++
		}
	}
	return m
}

// busiestLeader returns the index of the node that leads the most shards,
// as node 1 reports them, and the leader count of every node. It fails the
// test when the shards cannot be read or no shard has a leader.
func busiestLeader(t *testing.T, c interface {
	URL(int) string
	Index(string) int
}, rc *restClient) (int, map[string]int) {
	t.Helper()
	ss, err := rc.shards(c.URL(1))
	require.NoError(t, err, "GET /api/v1/cluster/shards")
	leaders := leaderCounts(ss)
	victim := c.Index(busiest(leaders))
	require.NotZero(t, victim, "no leader in %s", describeShards(ss))
	return victim, leaders
}

// replicaCounts returns how many replicas each node holds.
func replicaCounts(ss []shardInfo) map[string]int {
	m := map[string]int{}
	for _, s := range ss {
		for _, r := range s.Replicas {
			m[r.Node]++
		}
	}
	return m
}

// busiest returns the name with the highest count (ties: the larger name).
func busiest(m map[string]int) string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	best := ""
	for _, k := range names {
		if best == "" || m[k] >= m[best] {
			best = k
		}
	}
	return best
}

// loadStats counts what writeAll and readAllFrom saw.
type loadStats struct {
	ops, retries atomic.Int64
	mu           sync.Mutex
	retryReasons map[string]int
}

func (s *loadStats) retried(reason string) {
	s.retries.Add(1)
	s.mu.Lock()
	if s.retryReasons == nil {
		s.retryReasons = map[string]int{}
	}
	s.retryReasons[reason]++
	s.mu.Unlock()
}

func (s *loadStats) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("%d ops, %d retries %v", s.ops.Load(), s.retries.Load(), s.retryReasons)
}

// retryable reports whether a failed request may be repeated: no answer, or
// 503/429/5xx. Repeating a put of the same value is safe for these checks.
func retryable(status int, err error) bool {
	if err == nil || isContractError(err) {
		return false
	}
	return status == 0 || status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests || status >= 500
}

func reason(status int, err error) string {
	if status != 0 {
		return fmt.Sprintf("HTTP %d", status)
	}
	s := err.Error()
	switch {
	case strings.Contains(s, "Client.Timeout"), strings.Contains(s, "deadline exceeded"):
		return "timeout"
	case strings.Contains(s, "connection refused"):
		return "connection refused"
	case strings.Contains(s, "EOF"), strings.Contains(s, "connection reset"):
		return "connection lost"
	}
	return "transport error"
}

// writeAll puts every key through random running nodes with the given
// number of workers, retrying retryable failures of one key for up to
// perKey. It returns one message per key that could not be written.
func writeAll(c *procCluster, rc *restClient, keys []string, vals map[string][]byte, workers int, perKey time.Duration, seed uint64) ([]string, *loadStats) {
	st := &loadStats{}
	var (
		mu   sync.Mutex
		errs []string
		wg   sync.WaitGroup
	)
	next := make(chan string)
	nodes := c.runningNodes()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			for key := range next {
				deadline := time.Now().Add(perKey)
				for {
					i := nodes[rng.IntN(len(nodes))]
					_, status, err := rc.put(c.URL(i), key, vals[key], nil)
					st.ops.Add(1)
					if err == nil {
						break
					}
					if !retryable(status, err) || time.Now().After(deadline) {
						mu.Lock()
						errs = append(errs, fmt.Sprintf("PUT %s (%d bytes) via %s: status %d: %v", key, len(vals[key]), c.Name(i), status, err))
						mu.Unlock()
						break
					}
					st.retried(reason(status, err))
					time.Sleep(50 * time.Millisecond) // back-off before retrying
				}
			}
		}(w)
	}
	for _, k := range keys {
		next <- k
	}
	close(next)
	wg.Wait()
	return errs, st
}

// readAllFrom reads every key through node i with linearizable reads and
// compares the bytes; it returns one message per key that was wrong or
// could not be read within perKey.
func readAllFrom(c *procCluster, rc *restClient, i int, keys []string, vals map[string][]byte, workers int, perKey time.Duration) ([]string, *loadStats) {
	st := &loadStats{}
	var (
		mu   sync.Mutex
		errs []string
		wg   sync.WaitGroup
	)
	next := make(chan string)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for key := range next {
				deadline := time.Now().Add(perKey)
				for {
					got, rev, found, err := rc.get(c.URL(i), key, false)
					st.ops.Add(1)
					status := statusOf(err)
					if err != nil && retryable(status, err) && time.Now().Before(deadline) {
						st.retried(reason(status, err))
						time.Sleep(50 * time.Millisecond) // back-off before retrying
						continue
					}
					var msg string
					want := vals[key]
					switch {
					case err != nil:
						msg = fmt.Sprintf("GET %s via %s: %v", key, c.Name(i), err)
					case !found:
						msg = fmt.Sprintf("GET %s via %s: 404, want %d bytes", key, c.Name(i), len(want))
					case !bytes.Equal(got, want):
						msg = fmt.Sprintf("GET %s via %s (rev %d): got %d bytes %s, want %d bytes %s",
							key, c.Name(i), rev, len(got), preview(got), len(want), preview(want))
					}
					if msg != "" {
						mu.Lock()
						errs = append(errs, msg)
						mu.Unlock()
					}
					break
				}
			}
		}()
	}
	for _, k := range keys {
		next <- k
	}
	close(next)
	wg.Wait()
	sort.Strings(errs)
	return errs, st
}

func preview(b []byte) string {
	if len(b) > 16 {
		return fmt.Sprintf("%x...", b[:16])
	}
	return fmt.Sprintf("%x", b)
}

// firstN joins at most n messages and says how many were left out.
func firstN(msgs []string, n int) string {
	if len(msgs) <= n {
		return strings.Join(msgs, "\n  ")
	}
	return strings.Join(msgs[:n], "\n  ") + fmt.Sprintf("\n  ... and %d more", len(msgs)-n)
}

// testSeed returns a seed for randomised tests and logs it.
func testSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("CAVE_E2E_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("CAVE_E2E_SEED=%q: %v", s, err)
		}
		seed = n
	}
	t.Logf("seed %d (set CAVE_E2E_SEED to repeat)", seed)
	return seed
}
