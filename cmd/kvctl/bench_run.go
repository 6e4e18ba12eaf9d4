package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds, from 1 µs to histMaxMicros with
// three significant digits; longer calls count as histMaxMicros.
const histMaxMicros = int64(10 * time.Minute / time.Microsecond)

// prepopulateTries is how often pre-population tries one key before it
// gives up (a leader election right after start is answered Unavailable).
const prepopulateTries = 5

// errorPause is how long a worker waits after a failed call.
const errorPause = 10 * time.Millisecond

// workerStats is what one worker measured; only its worker touches it
// until the run is over.
type workerStats struct {
	reads, writes *hdrhistogram.Histogram
	errors        map[string]int64
	firstError    map[string]string
}

func newWorkerStats() *workerStats {
	return &workerStats{
		reads:      hdrhistogram.New(1, histMaxMicros, 3),
		writes:     hdrhistogram.New(1, histMaxMicros, 3),
		errors:     map[string]int64{},
		firstError: map[string]string{},
	}
}

// record adds one successful call that took d.
func (ws *workerStats) record(read bool, d time.Duration) {
	h := ws.writes
	if read {
		h = ws.reads
	}
	_ = h.RecordValue(min(max(d.Microseconds(), 1), histMaxMicros)) // in range: cannot fail
}

// fail counts one failed call.
func (ws *workerStats) fail(err error) {
	l := errorLabel(err)
	if ws.errors[l] == 0 {
		ws.firstError[l] = err.Error()
	}
	ws.errors[l]++
}

// latencyMicros is a latency summary in microseconds.
type latencyMicros struct {
	P50  int64   `json:"p50"`
	P90  int64   `json:"p90"`
	P99  int64   `json:"p99"`
	P999 int64   `json:"p99_9"`
	Max  int64   `json:"max"`
	Mean float64 `json:"mean"`
}

func summarize(h *hdrhistogram.Histogram) latencyMicros {
	return latencyMicros{
		P50:  h.ValueAtQuantile(50),
		P90:  h.ValueAtQuantile(90),
		P99:  h.ValueAtQuantile(99),
		P999: h.ValueAtQuantile(99.9),
		Max:  h.Max(),
		Mean: h.Mean(),
	}
}

// benchResult is every number of one run; it is the --json output.
type benchResult struct {
	Target             string            `json:"target"`
	Protocol           string            `json:"protocol"`
	Op                 string            `json:"op"`
	Consistency        string            `json:"consistency"`
	Endpoints          []string          `json:"endpoints"`
	Clients            int               `json:"clients"`
	Conns              int               `json:"conns"`
	Keys               int               `json:"keys"`
	ValueSize          int               `json:"value_size"`
	ReadRatio          *float64          `json:"read_ratio,omitempty"`
	Prepopulated       int               `json:"prepopulated"`
	PrepopulateSeconds float64           `json:"prepopulate_seconds"`
	WarmupSeconds      float64           `json:"warmup_seconds"`
	Seconds            float64           `json:"seconds"`               // measured: end of warmup to the last call's end
	MeasuredFromUnixMs int64             `json:"measured_from_unix_ms"` // the measured run, to match with server-side samples
	MeasuredToUnixMs   int64             `json:"measured_to_unix_ms"`
	Ops                int64             `json:"ops"` // successful calls started after the warmup
	Reads              int64             `json:"reads"`
	Writes             int64             `json:"writes"`
	OpsPerSec          float64           `json:"ops_per_sec"`
	Errors             int64             `json:"errors"`
	ErrorsByCode       map[string]int64  `json:"errors_by_code"`
	FirstErrors        map[string]string `json:"first_errors"` // the first message of each code
	Latency            latencyMicros     `json:"latency_us"`
	ReadLatency        *latencyMicros    `json:"read_latency_us,omitempty"`  // mixed only
	WriteLatency       *latencyMicros    `json:"write_latency_us,omitempty"` // mixed only
	ClientCPUSeconds   float64           `json:"client_cpu_seconds"`         // kvctl's user+sys during the measured run
	ClientCPUMicrosOp  float64           `json:"client_cpu_us_per_op"`
}

// runLoad pre-populates the keys cfg's operation reads, runs the load on
// stores for cfg.warmup and cfg.duration and returns what it measured. It
// writes a progress line to progress every second. Every call has
// cfg.opTimeout, and no call starts after the run's end, so runLoad returns
// at most that long after it. It fails only when pre-population fails.
func runLoad(ctx context.Context, cfg benchConfig, stores []benchStore, progress io.Writer) (*benchResult, error) {
	value := make([]byte, cfg.valueSize)
	for i := range value {
		value[i] = 'a' + byte(i%26)
	}
	res := &benchResult{
		Target: cfg.target, Protocol: cfg.protocol, Op: cfg.op, Consistency: cfg.consistency,
		Endpoints: cfg.endpoints, Clients: cfg.clients, Conns: cfg.conns, Keys: cfg.keys,
		ValueSize: cfg.valueSize, WarmupSeconds: cfg.warmup.Seconds(),
	}
	if cfg.protocol == protoREST {
		res.Endpoints = cfg.httpEndpoints
	}
	if cfg.op == opMixed {
		res.ReadRatio = &cfg.readRatio
	}
	if cfg.target == targetEtcd && cfg.consistency == consistencyStale {
		res.Consistency = "serializable"
	}

	// revs[k] is key k's last known mod revision; worker w alone uses the
	// keys k with k % clients == w, so cas never races another worker.
	var revs []int64
	if cfg.op != opPut {
		start := time.Now()
		var err error
		if revs, err = prepopulate(ctx, cfg, stores, value); err != nil {
			return nil, err
		}
		res.Prepopulated, res.PrepopulateSeconds = cfg.keys, time.Since(start).Seconds()
	}

	start := time.Now()
	measureFrom := start.Add(cfg.warmup)
	end := measureFrom.Add(cfg.duration)
	var done atomic.Int64 // measured successful calls, for the progress line
	stats := make([]*workerStats, cfg.clients)
	var wg sync.WaitGroup
	for w := range cfg.clients {
		ws := newWorkerStats()
		stats[w] = ws
		wg.Go(func() {
			l := loop{cfg: cfg, store: stores[w%len(stores)], value: value, revs: revs, w: w,
				rng: rand.New(rand.NewPCG(uint64(start.UnixNano()), uint64(w)))}
			for {
				t0 := time.Now()
				if !t0.Before(end) {
					return
				}
				read, err := l.one(ctx)
				measured := !t0.Before(measureFrom)
				switch {
				case err != nil:
					if measured {
						ws.fail(err)
					}
					// A refused connection fails at once: pause rather
					// than spin on it.
					time.Sleep(min(errorPause, time.Until(end)))
				case measured:
					ws.record(read, time.Since(t0))
					done.Add(1)
				}
			}
		})
	}

	stopProgress := make(chan struct{})
	var progressDone sync.WaitGroup
	progressDone.Go(func() { reportProgress(progress, cfg.op, start, measureFrom, &done, stopProgress) })

	// CPU is sampled at the end of the warmup, not at its exact instant
	// when the process is busy: close enough for µs per op.
	select {
	case <-time.After(time.Until(measureFrom)):
	case <-ctx.Done():
	}
	cpu0 := processCPU()
	wg.Wait()
	res.ClientCPUSeconds = (processCPU() - cpu0).Seconds()
	measuredTo := time.Now()
	res.Seconds = measuredTo.Sub(measureFrom).Seconds()
	res.MeasuredFromUnixMs, res.MeasuredToUnixMs = measureFrom.UnixMilli(), measuredTo.UnixMilli()
	close(stopProgress)
	progressDone.Wait()

	reads := hdrhistogram.New(1, histMaxMicros, 3)
	writes := hdrhistogram.New(1, histMaxMicros, 3)
	res.ErrorsByCode, res.FirstErrors = map[string]int64{}, map[string]string{}
	for _, ws := range stats {
		reads.Merge(ws.reads)
		writes.Merge(ws.writes)
		for l, n := range ws.errors {
			if res.ErrorsByCode[l] == 0 {
				res.FirstErrors[l] = ws.firstError[l]
			}
			res.ErrorsByCode[l] += n
			res.Errors += n
		}
	}
	res.Reads, res.Writes = reads.TotalCount(), writes.TotalCount()
	res.Ops = res.Reads + res.Writes
	if res.Seconds > 0 {
		res.OpsPerSec = float64(res.Ops) / res.Seconds
	}
	if res.Ops > 0 {
		res.ClientCPUMicrosOp = res.ClientCPUSeconds * 1e6 / float64(res.Ops)
	}
	all := hdrhistogram.New(1, histMaxMicros, 3)
	all.Merge(reads)
	all.Merge(writes)
	res.Latency = summarize(all)
	if cfg.op == opMixed {
		r, w := summarize(reads), summarize(writes)
		res.ReadLatency, res.WriteLatency = &r, &w
	}
	return res, nil
}

// loop is one worker's operation generator.
type loop struct {
	cfg   benchConfig
	store benchStore
	value []byte
	revs  []int64 // see runLoad
	w     int
	rng   *rand.Rand
}

// one runs one operation under cfg.opTimeout and says whether it was a read.
func (l *loop) one(ctx context.Context) (read bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, l.cfg.opTimeout)
	defer cancel()
	switch l.cfg.op {
	case opPut:
		_, err = l.store.put(ctx, l.rng.IntN(l.cfg.keys), l.value)
		return false, err
	case opGet:
		_, err = l.store.get(ctx, l.rng.IntN(l.cfg.keys))
		return true, err
	case opMixed:
		if l.rng.Float64() < l.cfg.readRatio {
			_, err = l.store.get(ctx, l.rng.IntN(l.cfg.keys))
			return true, err
		}
		_, err = l.store.put(ctx, l.rng.IntN(l.cfg.keys), l.value)
		return false, err
	default: // opCAS
		owned := (l.cfg.keys - l.w + l.cfg.clients - 1) / l.cfg.clients
		k := l.w + l.cfg.clients*l.rng.IntN(owned)
		rev, err := l.store.cas(ctx, k, l.revs[k], l.value)
		if err == nil {
			l.revs[k] = rev
			return false, nil
		}
		// The write may have been applied (a timeout) or the revision
		// was stale: learn the current one, outside the measurement.
		if cur, gerr := l.store.get(ctx, k); gerr == nil {
			l.revs[k] = cur
		}
		return false, err
	}
}

// prepopulate writes every key of the key space once, from cfg.clients
// workers, and returns each key's mod revision. A key is tried
// prepopulateTries times; pre-population fails on a key that still fails
// then, or when it takes longer than prepopulateTimeout.
func prepopulate(ctx context.Context, cfg benchConfig, stores []benchStore, value []byte) ([]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, prepopulateTimeout)
	defer cancel()
	revs := make([]int64, cfg.keys)
	errs := make([]error, cfg.clients)
	var wg sync.WaitGroup
	for w := range cfg.clients {
		wg.Go(func() {
			s := stores[w%len(stores)]
			for k := w; k < cfg.keys; k += cfg.clients {
				var err error
				for try := range prepopulateTries {
					if try > 0 {
						select {
						case <-time.After(time.Duration(try) * 100 * time.Millisecond):
						case <-ctx.Done():
						}
					}
					opCtx, opCancel := context.WithTimeout(ctx, cfg.opTimeout)
					revs[k], err = s.put(opCtx, k, value)
					opCancel()
					if err == nil || ctx.Err() != nil {
						break
					}
				}
				if err != nil {
					errs[w] = fmt.Errorf("bench %s: pre-populating key %s%08d: %w", cfg.op, cfg.keyPrefix, k, err)
					cancel()
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return revs, nil
}

// reportProgress writes "bench OP: warmup|Ns, N ops, N ops/s" every second
// until stop is closed.
func reportProgress(w io.Writer, op string, start, measureFrom time.Time, done *atomic.Int64, stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var last int64
	lastAt := start
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			n := done.Load()
			if now.Before(measureFrom) {
				fmt.Fprintf(w, "bench %s: warmup %.0fs\n", op, now.Sub(start).Seconds())
			} else {
				fmt.Fprintf(w, "bench %s: %.0fs, %d ops, %.0f ops/s\n", op, now.Sub(measureFrom).Seconds(), n, float64(n-last)/now.Sub(lastAt).Seconds())
			}
			last, lastAt = n, now
		}
	}
}

// writeJSON writes r as one indented JSON object.
func (r *benchResult) writeJSON(w io.Writer) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// writeTable writes r for a person: the load, throughput, latency, errors
// and kvctl's CPU.
func (r *benchResult) writeTable(w io.Writer) error {
	ms := func(us int64) string { return fmt.Sprintf("%.3fms", float64(us)/1000) }
	lat := func(l latencyMicros) string {
		return fmt.Sprintf("p50 %s  p90 %s  p99 %s  p99.9 %s  max %s", ms(l.P50), ms(l.P90), ms(l.P99), ms(l.P999), ms(l.Max))
	}
	load := fmt.Sprintf("%s %s %s, %s, %d clients, %d conns x %d endpoints, %d keys, %d-byte values",
		r.Target, r.Protocol, r.Op, r.Consistency, r.Clients, r.Conns, len(r.Endpoints), r.Keys, r.ValueSize)
	if r.ReadRatio != nil {
		load += fmt.Sprintf(", %.0f%% reads", *r.ReadRatio*100)
	}
	rows := [][]string{
		{"load", load},
		{"ops", fmt.Sprintf("%d in %.2fs: %.0f ops/s (%d reads, %d writes)", r.Ops, r.Seconds, r.OpsPerSec, r.Reads, r.Writes)},
		{"latency", lat(r.Latency)},
	}
	if r.ReadLatency != nil {
		rows = append(rows, []string{"reads", lat(*r.ReadLatency)}, []string{"writes", lat(*r.WriteLatency)})
	}
	if r.Prepopulated > 0 {
		rows = append(rows, []string{"prepopulated", fmt.Sprintf("%d keys in %.2fs", r.Prepopulated, r.PrepopulateSeconds)})
	}
	rows = append(rows, []string{"errors", fmt.Sprint(r.Errors)})
	for _, l := range slices.Sorted(maps.Keys(r.ErrorsByCode)) {
		rows = append(rows, []string{"  " + l, fmt.Sprintf("%d (first: %s)", r.ErrorsByCode[l], r.FirstErrors[l])})
	}
	rows = append(rows, []string{"client CPU", fmt.Sprintf("%.2fs, %.1f µs/op", r.ClientCPUSeconds, r.ClientCPUMicrosOp)})
	return table(w, rows...)
}
