package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/assert"
)

// history records porcupine operations from many goroutines, with times in
// nanoseconds since the history began (monotonic clock).
type history struct {
	t0 time.Time

	mu        sync.Mutex
	ops       []porcupine.Operation
	unknown   []int // indexes into ops whose outcome is unknown
	protoErrs []string
	counts    map[string]int
}

func newHistory() *history { return &history{t0: time.Now(), counts: map[string]int{}} }

func (h *history) now() int64 { return time.Since(h.t0).Nanoseconds() }

func (h *history) add(client int, call, ret int64, in kvInput, out kvOutput) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if out.Unknown {
		h.unknown = append(h.unknown, len(h.ops))
	}
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
}

func (h *history) count(what string) {
	h.mu.Lock()
	h.counts[what]++
	h.mu.Unlock()
}

func (h *history) protocolError(format string, args ...any) {
	h.mu.Lock()
	h.protoErrs = append(h.protoErrs, fmt.Sprintf(format, args...))
	h.mu.Unlock()
}

// finish gives every unknown-outcome operation a return time after
// everything else (the write may take effect at any later point) and
// returns the operations.
func (h *history) finish() []porcupine.Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	end := int64(math.MaxInt64 / 2)
	for _, i := range h.unknown {
		h.ops[i].Return = end
	}
	return append([]porcupine.Operation(nil), h.ops...)
}

// linTarget is a cluster that runLinearizable can drive: nodes numbered
// from 1 to N, each with a REST base URL, and a place for files kept when
// the test fails. URL must be safe to call from any goroutine.
type linTarget interface {
	N() int
	URL(i int) string
	ArtifactPath(name string) string
}

// linClient is one worker of the linearizability test.
type linClient struct {
	id   int
	c    linTarget
	rc   *restClient
	h    *history
	rng  *rand.Rand
	keys []string
	seq  int
	// lastRev is the last revision this client saw per key (0: absent or
	// never seen, which makes its next cas a create-only).
	lastRev map[string]int64
}

// run issues at most maxOps operations, at most one per minGap, until ctx ends.
func (w *linClient) run(ctx context.Context, maxOps int, minGap time.Duration) {
	for n := 0; n < maxOps && ctx.Err() == nil; n++ {
		began := time.Now()
		key := w.keys[w.rng.IntN(len(w.keys))]
		node := 1 + w.rng.IntN(w.c.N())
		base := w.c.URL(node)
		var ok bool
		switch r := w.rng.IntN(100); {
		case r < 40:
			ok = w.get(base, key, node)
		case r < 75:
			ok = w.put(base, key, node, nil)
		default:
			prev := w.lastRev[key]
			ok = w.put(base, key, node, &prev)
		}
		// Pace the load so it spans the whole fault schedule, and back off
		// after a failure as a real client would. The back-off also bounds
		// the unknown-outcome writes, each of which stays open to the end of
		// the history and slows the check down.
		gap := minGap - time.Since(began)
		if !ok {
			gap = time.Duration(100+w.rng.IntN(200)) * time.Millisecond
		}
		if gap > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(gap):
			}
		}
	}
}

// get reads key and records the result; it returns false if the read failed.
func (w *linClient) get(base, key string, node int) bool {
	call := w.h.now()
	val, rev, found, err := w.rc.get(base, key, false)
	ret := w.h.now()
	if err != nil {
		status := statusOf(err)
		if !retryable(status, err) {
			w.h.protocolError("client %d: GET %s via n%d: status %d: %v", w.id, key, node, status, err)
		}
		w.h.count("get failed: " + reason(status, err))
		return false // a failed read changes nothing: leave it out
	}
	w.h.count("get ok")
	w.h.add(w.id, call, ret, kvInput{Kind: opGet, Key: key}, kvOutput{OK: found, Value: string(val), Rev: rev})
	if found {
		w.lastRev[key] = rev
	} else {
		w.lastRev[key] = 0
	}
	return true
}

// put writes key (conditionally when prev is set) and records the result; it
// returns false unless the node gave a definite answer (200 or 412).
func (w *linClient) put(base, key string, node int, prev *int64) bool {
	w.seq++
	val := fmt.Sprintf("c%d-%d", w.id, w.seq)
	in := kvInput{Kind: opPut, Key: key, Value: val}
	if prev != nil {
		in.Kind, in.Prev = opCAS, *prev
	}
	call := w.h.now()
	rev, status, err := w.rc.put(base, key, []byte(val), prev)
	ret := w.h.now()
	kind := in.Kind.String()
	switch {
	case err == nil:
		w.h.count(kind + " ok")
		w.h.add(w.id, call, ret, in, kvOutput{OK: true, Rev: rev})
		w.lastRev[key] = rev
	case status == 412 && prev != nil:
		w.h.count(kind + " 412")
		w.h.add(w.id, call, ret, in, kvOutput{})
	case neverSent(err):
		w.h.count(kind + " not sent: " + reason(status, err))
	case status == http.StatusServiceUnavailable:
		// The contract: 503 means not applied (504 is "outcome unknown").
		// Leaving it out of the history lets porcupine catch a 503 whose
		// write did take effect.
		w.h.count(kind + " not applied: " + reason(status, err))
	case retryable(status, err):
		w.h.count(kind + " unknown: " + reason(status, err))
		w.h.add(w.id, call, ret, in, kvOutput{Unknown: true})
	default:
		// A definite 4xx for a valid request, or a 200 with a bad body.
		w.h.protocolError("client %d: PUT %s %q prev=%v via n%d: status %d: %v", w.id, key, val, in.Prev, node, status, err)
		w.h.count(kind + " protocol error")
		if status == 200 {
			w.h.add(w.id, call, ret, in, kvOutput{Unknown: true})
		}
	}
	return err == nil || (status == 412 && prev != nil)
}

// linWorkload sizes the load of a linearizability test.
type linWorkload struct {
	clients int           // concurrent REST clients
	maxOps  int           // per client
	minGap  time.Duration // per client, between operations
	keys    int           // distinct keys: few, so operations conflict
	bound   time.Duration // hard bound on the load phase
}

// defaultWorkload keeps each client near 65 ops/s on 8 keys: enough
// conflicts to make porcupine's check meaningful, few enough unknown
// outcomes for it to finish.
var defaultWorkload = linWorkload{clients: 6, maxOps: 1500, minGap: 15 * time.Millisecond, keys: 8, bound: 60 * time.Second}

// runLinearizable runs concurrent puts, gets and conditional puts of w
// against random nodes of c while faults injects failures (pause waits on
// the load's clock), then reads every key through a node that answers and
// checks that no acknowledged write was lost and, with porcupine, that the
// whole history is linearizable. The load stops when faults returns.
func runLinearizable(t *testing.T, c linTarget, rc *restClient, w linWorkload, faults func(pause func(time.Duration))) {
	t.Helper()
	seed := testSeed(t)
	keys := make([]string, w.keys)
	for i := range keys {
		keys[i] = fmt.Sprintf("e2e/lin/k%d", i)
	}
	h := newHistory()
	ctx, stop := context.WithTimeout(t.Context(), w.bound)
	defer stop()
	var wg sync.WaitGroup
	for i := 0; i < w.clients; i++ {
		lc := &linClient{id: i, c: c, rc: rc, h: h, keys: keys,
			rng: rand.New(rand.NewPCG(seed, uint64(i))), lastRev: map[string]int64{}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			lc.run(ctx, w.maxOps, w.minGap)
		}()
	}
	pause := func(d time.Duration) { // fault-injection schedule, not a wait for a condition
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
	}
	faults(pause)
	stop()
	wg.Wait()
	loadEnd := time.Since(h.t0)

	// Final reads: every key, through a node that answers, under a deadline.
	// They go into the history, so porcupine checks that the final value is
	// one that could have been written last.
	finals := map[string]kvOutput{}
	for i, key := range keys {
		var out kvOutput
		n := i
		err := poll(t.Context(), 30*time.Second, 100*time.Millisecond, func() (bool, error) {
			node := 1 + n%c.N()
			n++
			call := h.now()
			val, rev, found, err := rc.get(c.URL(node), key, false)
			ret := h.now()
			if err != nil {
				h.count("final get failed: " + reason(statusOf(err), err))
				return false, nil
			}
			out = kvOutput{OK: found, Value: string(val), Rev: rev}
			h.add(w.clients, call, ret, kvInput{Kind: opGet, Key: key}, out)
			return true, nil
		})
		if !assert.NoError(t, err, "final read of %s", key) {
			continue
		}
		finals[key] = out
	}

	ops := h.finish()
	h.mu.Lock()
	counts, protoErrs := h.counts, h.protoErrs
	h.mu.Unlock()
	t.Logf("load ran %v; %d recorded ops (%d unknown outcome); outcomes: %s",
		loadEnd.Round(time.Millisecond), len(ops), len(h.unknown), formatCounts(counts))
	assert.Empty(t, protoErrs, "answers that break the REST contract:\n  %s", firstN(protoErrs, 20))
	assert.Greater(t, counts["put ok"]+counts["cas ok"], 100, "too few acknowledged writes to mean anything")

	// Direct check for lost writes (porcupine covers this too, but this
	// message is easier to read): the final revision of a key is at least
	// the revision of every acknowledged write to it.
	for _, key := range keys {
		fin, ok := finals[key]
		if !ok {
			continue
		}
		for _, op := range ops {
			in, out := op.Input.(kvInput), op.Output.(kvOutput)
			if in.Key != key || in.Kind == opGet || out.Unknown || !out.OK {
				continue
			}
			if !fin.OK || fin.Rev < out.Rev {
				t.Errorf("acknowledged write lost: %s=%q got revision %d at %v, but the final read saw found=%t rev %d value %q",
					key, in.Value, out.Rev, time.Duration(op.Return), fin.OK, fin.Rev, fin.Value)
				break
			}
		}
	}

	model := kvModel.ToModel()
	cstart := time.Now()
	res, info := porcupine.CheckOperationsVerbose(model, ops, 60*time.Second)
	t.Logf("porcupine: %s in %v", res, time.Since(cstart).Round(time.Millisecond))
	if res != porcupine.Ok {
		saveHistory(t, c, model, info, ops)
	}
	switch res {
	case porcupine.Illegal:
		t.Errorf("history is not linearizable (see the visualisation)")
	case porcupine.Unknown:
		t.Errorf("porcupine could not decide within 60s (%d ops, %d unknown outcome): inconclusive", len(ops), len(h.unknown))
	}
}

// linShards is the data shard count of the linearizability clusters.
const linShards = 4

// newLinCluster starts a 3-node cluster with linShards shards, three
// replicas each, and waits until every shard has its three voters.
func newLinCluster(t *testing.T) (*procCluster, *restClient) {
	t.Helper()
	start := time.Now()
	c := newProcCluster(t, 3, withShards(linShards), withReplicas(3))
	rc := newRESTClient(3 * time.Second)
	t.Cleanup(rc.close)
	c.WaitShards(rc, 60*time.Second, fullyReplicated(linShards, 3))
	t.Logf("cluster ready after %v", time.Since(start).Round(time.Millisecond))
	return c, rc
}

// TestKillLeaderLinearizable kills the node that leads the most shards of
// a 3-node cluster with SIGKILL under concurrent load and restarts it with
// the same command line; the history must be linearizable and no
// acknowledged write may be lost.
func TestKillLeaderLinearizable(t *testing.T) {
	start := time.Now()
	c, rc := newLinCluster(t)

	runLinearizable(t, c, rc, defaultWorkload, func(pause func(time.Duration)) {
		pause(3 * time.Second)
		victim, leaders := busiestLeader(t, c, rc)
		t.Logf("leaders per node %v; kill -9 %s", leaders, c.Name(victim))
		c.Kill9(victim)
		pause(4 * time.Second)
		t.Logf("restarting %s", c.Name(victim))
		c.Restart(victim)
		c.WaitReady(victim, 30*time.Second)
		pause(3 * time.Second)
	})
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}

// TestRollingRestartLinearizable restarts every node of a 3-node cluster in
// turn with SIGTERM, as a rolling upgrade does, under concurrent load: each
// node hands its leaderships over before it exits and comes back with the
// same command line. The history must be linearizable, no acknowledged
// write may be lost, every graceful stop must finish promptly, and the
// replica sets must be whole again at the end (a restart must not shrink
// them).
func TestRollingRestartLinearizable(t *testing.T) {
	start := time.Now()
	c, rc := newLinCluster(t)

	runLinearizable(t, c, rc, defaultWorkload, func(pause func(time.Duration)) {
		pause(2 * time.Second)
		for i := 1; i <= c.N(); i++ {
			took := c.Stop(i, 15*time.Second)
			t.Logf("SIGTERM %s: exited in %v", c.Name(i), took.Round(time.Millisecond))
			assert.Less(t, took, 10*time.Second, "graceful stop of %s", c.Name(i))
			pause(time.Second)
			c.Restart(i)
			c.WaitReady(i, 30*time.Second)
			// Let the restarted node catch up before the next one goes, as
			// an operator waits for /ready and a healthy cluster.
			c.WaitShards(rc, 30*time.Second, fullyReplicated(linShards, 3))
			pause(time.Second)
		}
	})
	c.WaitShards(rc, 30*time.Second, fullyReplicated(linShards, 3))
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}

func formatCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// saveHistory writes the porcupine visualisation and the raw history next
// to the node logs (kept on failure, copied to $CAVE_E2E_ARTIFACTS).
func saveHistory(t *testing.T, c linTarget, model porcupine.Model, info porcupine.LinearizationInfo, ops []porcupine.Operation) {
	t.Helper()
	vis := c.ArtifactPath("linearizability.html")
	if err := porcupine.VisualizePath(model, info, vis); err != nil {
		t.Logf("visualisation: %v", err)
	} else {
		t.Logf("porcupine visualisation: %s", vis)
	}
	f, err := os.Create(c.ArtifactPath("history.jsonl"))
	if err != nil {
		t.Logf("history: %v", err)
		return
	}
	defer f.Close()
	enc := json.NewEncoder(f)
	for _, op := range ops {
		_ = enc.Encode(map[string]any{"client": op.ClientId, "call": op.Call, "return": op.Return,
			"op": describeOp(op.Input, op.Output)})
	}
}
