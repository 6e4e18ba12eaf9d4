package gateway

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	kvv1 "github.com/cavedb/cave/proto/cave/kv/v1"
	"github.com/cavedb/cave/ring"
	"github.com/cavedb/cave/router"
	"github.com/cavedb/cave/secrets"
)

// WatchConfig limits and paces watches (KV.Watch, GET /api/v1/watch).
type WatchConfig struct {
	// MaxPerConnection is the most watches one client connection (its
	// remote address) may hold open (--watch-max-per-connection). Default
	// 64.
	MaxPerConnection int
	// MaxWatchers is the most watches the node serves at once
	// (--watch-max). Default 10,000.
	MaxWatchers int
	// BufferBatches is how many shard batches a watch buffers for a client
	// that reads slowly; a watch whose buffer fills is cut with
	// ResourceExhausted and resumes with its token. Default 256.
	BufferBatches int
	// ProgressInterval is how long a watch stays silent before it sends a
	// progress notification with a fresh token. Default 5s.
	ProgressInterval time.Duration
}

// DefaultWatchConfig returns the defaults documented on WatchConfig.
func DefaultWatchConfig() WatchConfig {
	return WatchConfig{MaxPerConnection: 64, MaxWatchers: 10000, BufferBatches: 256, ProgressInterval: 5 * time.Second}
}

// Validate reports every problem with c.
func (c WatchConfig) Validate() error {
	var errs []error
	if c.MaxPerConnection < 1 {
		errs = append(errs, fmt.Errorf("gateway: --watch-max-per-connection must be >= 1, got %d", c.MaxPerConnection))
	}
	if c.MaxWatchers < 1 {
		errs = append(errs, fmt.Errorf("gateway: --watch-max must be >= 1, got %d", c.MaxWatchers))
	}
	if c.BufferBatches < 1 {
		errs = append(errs, fmt.Errorf("gateway: Watch.BufferBatches must be >= 1, got %d", c.BufferBatches))
	}
	if c.ProgressInterval <= 0 {
		errs = append(errs, fmt.Errorf("gateway: Watch.ProgressInterval must be > 0, got %s", c.ProgressInterval))
	}
	return errors.Join(errs...)
}

// watchers counts the open watches, in all and per connection, and holds
// the watch metrics. It is safe for concurrent use.
type watchers struct {
	cfg    WatchConfig
	active prometheus.Gauge
	events prometheus.Counter
	slow   prometheus.Counter

	mu     sync.Mutex // guards total and byConn
	total  int
	byConn map[string]int

	// closing is closed by shutdown: open watches end, so that a graceful
	// stop does not wait for them.
	closing   chan struct{}
	closeOnce sync.Once
}

// shutdown ends every open watch with Unavailable; it is idempotent.
func (w *watchers) shutdown() { w.closeOnce.Do(func() { close(w.closing) }) }

func newWatchers(cfg WatchConfig, reg prometheus.Registerer) (*watchers, error) {
	w := &watchers{
		cfg: cfg, byConn: map[string]int{}, closing: make(chan struct{}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cave_gateway_watchers",
			Help: "Watches open on this node (gRPC and REST)."}),
		events: prometheus.NewCounter(prometheus.CounterOpts{Name: "cave_gateway_watch_events_total",
			Help: "Events sent to watchers."}),
		slow: prometheus.NewCounter(prometheus.CounterOpts{Name: "cave_gateway_watch_slow_drops_total",
			Help: "Watches cut because the watcher fell behind its buffer."}),
	}
	for _, c := range []prometheus.Collector{w.active, w.events, w.slow} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// acquire takes a watch slot for conn; release gives it back.
func (w *watchers) acquire(conn string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.total >= w.cfg.MaxWatchers {
		return status.Errorf(codes.ResourceExhausted, "this node serves %d watches, its limit (--watch-max)", w.total)
	}
	if w.byConn[conn] >= w.cfg.MaxPerConnection {
		return status.Errorf(codes.ResourceExhausted, "this connection holds %d watches, the limit (--watch-max-per-connection)", w.byConn[conn])
	}
	w.total++
	w.byConn[conn]++
	w.active.Inc()
	return nil
}

func (w *watchers) release(conn string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.total--
	if w.byConn[conn]--; w.byConn[conn] == 0 {
		delete(w.byConn, conn)
	}
	w.active.Dec()
}

// validateWatchPrefix checks a watch prefix: validatePrefix's rules, and
// no "." or ".." segment.
func validateWatchPrefix(prefix string) error {
	if err := validatePrefix(prefix); err != nil {
		return err
	}
	for _, seg := range strings.Split(prefix, "/") {
		if seg == "." || seg == ".." {
			return fmt.Errorf("prefix %q has a %q segment", prefix, seg)
		}
	}
	return nil
}

// Resume tokens: base64url (no padding) of a format byte (1), the cluster
// id (uvarint length, bytes), the shard count (uvarint), then per shard in
// increasing order its id and position (uvarints). Clients treat them as
// opaque.
const watchTokenV1 byte = 1

func encodeWatchToken(cluster string, pos router.Position) string {
	ids := make([]ring.ShardID, 0, len(pos))
	for id := range pos {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	b := []byte{watchTokenV1}
	b = binary.AppendUvarint(b, uint64(len(cluster)))
	b = append(b, cluster...)
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for _, id := range ids {
		b = binary.AppendUvarint(b, uint64(id))
		b = binary.AppendUvarint(b, uint64(pos[id]))
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

var errBadWatchToken = status.Error(codes.InvalidArgument, "resume_token is malformed: pass the resume_token of a watch response")

// decodeWatchToken decodes a token of cluster; errors are gRPC statuses.
func decodeWatchToken(cluster, tok string) (router.Position, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(b) == 0 || b[0] != watchTokenV1 {
		return nil, errBadWatchToken
	}
	p := b[1:]
	next := func() (uint64, bool) {
		v, n := binary.Uvarint(p)
		if n <= 0 {
			return 0, false
		}
		p = p[n:]
		return v, true
	}
	n, ok := next()
	if !ok || n > uint64(len(p)) {
		return nil, errBadWatchToken
	}
	if string(p[:n]) != cluster {
		return nil, status.Error(codes.InvalidArgument, "resume_token is from another cluster: watch from now")
	}
	p = p[n:]
	count, ok := next()
	if !ok || count > uint64(len(p)) {
		return nil, errBadWatchToken
	}
	pos := make(router.Position, count)
	for range count {
		id, ok1 := next()
		rev, ok2 := next()
		if !ok1 || !ok2 || rev > 1<<62 {
			return nil, errBadWatchToken
		}
		pos[ring.ShardID(id)] = int64(rev)
	}
	if len(p) != 0 || len(pos) != int(count) {
		return nil, errBadWatchToken
	}
	return pos, nil
}

// Watch implements kvv1.KVServer.
func (s *kvService) Watch(req *kvv1.WatchRequest, stream grpc.ServerStreamingServer[kvv1.WatchResponse]) error {
	conn := ""
	if p, ok := peer.FromContext(stream.Context()); ok && p.Addr != nil {
		conn = p.Addr.String()
	}
	return s.watch(stream.Context(), conn, req, stream.Send)
}

// watch serves one watch for req, made over connection conn, by calling
// send with each response until ctx ends, send fails or the watch does.
// Errors are gRPC statuses; an error before the first send means nothing
// was sent.
func (s *kvService) watch(ctx context.Context, conn string, req *kvv1.WatchRequest, send func(*kvv1.WatchResponse) error) error {
	q := router.WatchQuery{Key: req.Key, Prefix: req.Prefix, KeysOnly: req.KeysOnly}
	switch {
	case req.Key != "" && req.Prefix != "":
		return invalid("set key or prefix, not both")
	case req.Key != "":
		if err := validateKey(req.Key); err != nil {
			return invalid("%v", err)
		}
	default:
		if err := validateWatchPrefix(req.Prefix); err != nil {
			return invalid("%v", err)
		}
	}
	if err := s.watches.acquire(conn); err != nil {
		return err
	}
	defer s.watches.release(conn)
	cluster, err := s.clusterID(ctx)
	if err != nil {
		return toStatus(s.lg, err)
	}
	shards, err := s.r.WatchShards(ctx, q)
	if err != nil {
		return toStatus(s.lg, err)
	}
	var pos router.Position
	if req.ResumeToken == "" {
		if pos, err = s.r.WatchStart(ctx, shards); err != nil {
			return toStatus(s.lg, err)
		}
	} else {
		all, err := decodeWatchToken(cluster, req.ResumeToken)
		if err != nil {
			return err
		}
		pos = make(router.Position, len(shards))
		for _, id := range shards {
			rev, ok := all[id]
			if !ok {
				return status.Errorf(codes.InvalidArgument, "resume_token has no position for shard %d: it is from a watch of other keys", id)
			}
			pos[id] = rev
		}
		if err := s.r.WatchCheck(ctx, pos); err != nil {
			return toStatus(s.lg, err)
		}
	}
	if err := send(&kvv1.WatchResponse{ResumeToken: encodeWatchToken(cluster, pos), ProgressNotify: true}); err != nil {
		return err
	}

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := make(chan router.WatchBatch, s.watches.cfg.BufferBatches)
	failed := make(chan error, 1)
	go func() { failed <- s.r.Watch(wctx, q, maps.Clone(pos), out) }()
	defer func() { cancel(); <-failed }()
	tick := time.NewTicker(s.watches.cfg.ProgressInterval)
	defer tick.Stop()
	lastSent := time.Now()
	for {
		select {
		case b := <-out:
			pos[b.Shard] = b.Next
			evs, err := s.watchEvents(ctx, req, b.Events)
			if err != nil {
				return err
			}
			if len(evs) == 0 {
				continue
			}
			if err := send(&kvv1.WatchResponse{Events: evs, ResumeToken: encodeWatchToken(cluster, pos)}); err != nil {
				return err
			}
			s.watches.events.Add(float64(len(evs)))
			lastSent = time.Now()
		case <-tick.C:
			if time.Since(lastSent) < s.watches.cfg.ProgressInterval {
				continue
			}
			if err := send(&kvv1.WatchResponse{ResumeToken: encodeWatchToken(cluster, pos), ProgressNotify: true}); err != nil {
				return err
			}
			lastSent = time.Now()
		case <-s.watches.closing:
			return withReason(codes.Unavailable, ReasonNotApplied, "the node is shutting down: watch again, on another node, with the last resume_token", nil)
		case err := <-failed:
			failed <- err // for the deferred wait
			if errors.Is(err, router.ErrSlowWatcher) {
				s.watches.slow.Inc()
			}
			if ctx.Err() != nil {
				return toStatus(s.lg, ctx.Err())
			}
			return toStatus(s.lg, err)
		}
	}
}

// watchEvents converts a shard's events for the caller: it drops the keys
// the caller may not read and, with req.Secret, opens sealed values.
func (s *kvService) watchEvents(ctx context.Context, req *kvv1.WatchRequest, evs []router.Event) ([]*kvv1.Event, error) {
	out := make([]*kvv1.Event, 0, len(evs))
	for _, e := range evs {
		key := string(e.Key)
		if !s.mayRead(ctx, key) {
			continue
		}
		ev := &kvv1.Event{Type: kvv1.EventType_EVENT_TYPE_PUT, Key: key, Value: e.Value, ModRevision: e.Revision,
			CreateRevision: e.CreateRevision, PrevModRevision: e.PrevRevision}
		if e.Deleted {
			ev.Type = kvv1.EventType_EVENT_TYPE_DELETE
		}
		if req.Secret && secrets.IsEnvelope(e.Value) {
			pt, err := s.secrets.Decrypt(ctx, e.Value, e.Key)
			if err != nil {
				return nil, toStatus(s.lg, err)
			}
			ev.Value = pt
		}
		out = append(out, ev)
	}
	return out, nil
}

// watchHTTP serves GET /api/v1/watch: the watch as JSON lines, one
// WatchResponse per line, flushed as each is written. The request runs
// through intercept with KV.Watch's rule, like a unary REST call, so it
// is refused (403) before the stream starts when the caller may not read
// the prefix.
type watchHTTP struct {
	kv        *kvService
	intercept grpc.UnaryServerInterceptor
	info      grpc.UnaryServerInfo
}

func newWatchHTTP(kv *kvService, intercept grpc.UnaryServerInterceptor) *watchHTTP {
	return &watchHTTP{kv: kv, intercept: intercept, info: grpc.UnaryServerInfo{Server: kv, FullMethod: kvv1.KV_Watch_FullMethodName}}
}

var watchParams = []string{"key", "prefix", "resume_token", "keys_only", "secret"}

// ServeHTTP implements http.Handler.
func (h *watchHTTP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	qv := r.URL.Query()
	for name := range qv {
		if !slices.Contains(watchParams, name) {
			writeError(w, status.Newf(codes.InvalidArgument, "unknown query parameter %q (known: %s)", name, strings.Join(watchParams, ", ")))
			return
		}
	}
	req := &kvv1.WatchRequest{Key: qv.Get("key"), Prefix: qv.Get("prefix"), ResumeToken: qv.Get("resume_token")}
	for name, dst := range map[string]*bool{"keys_only": &req.KeysOnly, "secret": &req.Secret} {
		switch qv.Get(name) {
		case "", "false", "0":
		case "true", "1":
			*dst = true
		default:
			writeError(w, status.Newf(codes.InvalidArgument, "%s must be true or false, got %q", name, qv.Get(name)))
			return
		}
	}
	flusher, _ := w.(http.Flusher)
	started := false
	send := func(resp *kvv1.WatchResponse) error {
		line, err := jsonMarshaler().MarshalOptions.Marshal(resp)
		if err != nil {
			return status.Convert(err).Err()
		}
		if !started {
			started = true
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusOK)
		}
		if _, err := w.Write(append(line, '\n')); err != nil {
			return err
		}
		if flusher != nil {
			flusher.Flush()
		}
		return nil
	}
	_, err := h.intercept(r.Context(), req, &h.info, func(ctx context.Context, req any) (any, error) {
		return nil, h.kv.watch(ctx, r.RemoteAddr, req.(*kvv1.WatchRequest), send)
	})
	if err == nil || r.Context().Err() != nil {
		return
	}
	st := status.Convert(err)
	if !started {
		if st.Code() == codes.OutOfRange {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusGone)
			_ = json.NewEncoder(w).Encode(errorBody{Code: st.Code(), Status: codeName(st.Code()), Message: st.Message()})
			return
		}
		writeError(w, st)
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]errorBody{"error": {Code: st.Code(), Status: codeName(st.Code()), Message: st.Message(), Reason: reasonOf(st)}})
	if flusher != nil {
		flusher.Flush()
	}
}
