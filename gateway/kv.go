package gateway

import (
	"context"
	"log/slog"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	kvv1 "github.com/cavedb/cave/proto/cave/kv/v1"
	"github.com/cavedb/cave/router"
	"github.com/cavedb/cave/secrets"
)

// kvService implements cave.kv.v1.KV over the router. REST requests reach
// the same methods, through the same interceptor (kvHTTP for the key
// routes, grpc-gateway for /api/v1/keys), so both APIs validate and map
// errors identically.
type kvService struct {
	kvv1.UnimplementedKVServer
	r             *router.Router
	lg            *slog.Logger
	maxValueBytes int // of the plaintext; a secret's envelope may add secrets.EnvelopeOverhead
	secrets       *secrets.Manager
	// watches limits and counts the open watches.
	watches *watchers
	// clusterID names the cluster in resume tokens.
	clusterID func(ctx context.Context) (string, error)
	// mayRead reports whether the caller of ctx may read key; a watch
	// delivers only such keys' events.
	mayRead func(ctx context.Context, key string) bool
}

func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

func stale(c kvv1.Consistency) bool { return c == kvv1.Consistency_CONSISTENCY_STALE }

// Get implements kvv1.KVServer.
func (s *kvService) Get(ctx context.Context, req *kvv1.GetRequest) (*kvv1.GetResponse, error) {
	if err := validateKey(req.Key); err != nil {
		return nil, invalid("%v", err)
	}
	switch req.Format {
	case "", "raw", "json":
	default:
		return nil, invalid("format must be raw or json, got %q", req.Format)
	}
	kv, err := s.r.Get(ctx, req.Key, stale(req.Consistency))
	if err != nil {
		return nil, toStatus(s.lg, err)
	}
	value, err := s.unseal(ctx, req.Key, kv.Value, req.Secret)
	if err != nil {
		return nil, err
	}
	return &kvv1.GetResponse{Key: req.Key, Value: value, CreateRevision: kv.CreateRevision,
		ModRevision: kv.ModRevision, Version: kv.Version}, nil
}

// Put implements kvv1.KVServer.
func (s *kvService) Put(ctx context.Context, req *kvv1.PutRequest) (*kvv1.PutResponse, error) {
	if err := validateKey(req.Key); err != nil {
		return nil, invalid("%v", err)
	}
	if len(req.Value) > s.maxValueBytes {
		return nil, status.Errorf(codes.ResourceExhausted, "value is %d bytes, the limit is %d (--max-value-bytes)", len(req.Value), s.maxValueBytes)
	}
	if req.PrevRevision != nil && *req.PrevRevision < 0 {
		return nil, invalid("prev_revision must be >= 0, got %d", *req.PrevRevision)
	}
	value, err := s.seal(ctx, req.Key, req.Value, req.Secret)
	if err != nil {
		return nil, err
	}
	rev, err := s.r.Put(ctx, req.Key, value, req.PrevRevision)
	if err != nil {
		return nil, toStatus(s.lg, err)
	}
	return &kvv1.PutResponse{Key: req.Key, Revision: rev}, nil
}

// Delete implements kvv1.KVServer.
func (s *kvService) Delete(ctx context.Context, req *kvv1.DeleteRequest) (*kvv1.DeleteResponse, error) {
	if err := validateKey(req.Key); err != nil {
		return nil, invalid("%v", err)
	}
	if req.PrevRevision != nil && *req.PrevRevision < 0 {
		return nil, invalid("prev_revision must be >= 0, got %d", *req.PrevRevision)
	}
	rev, err := s.r.Delete(ctx, req.Key, req.PrevRevision)
	if err != nil {
		return nil, toStatus(s.lg, err)
	}
	return &kvv1.DeleteResponse{Deleted: true, Revision: rev}, nil
}

// HeaderLimitCapped is the response header (gRPC metadata, and HTTP
// X-Cave-Limit-Capped) of a List whose limit was over the largest page a
// node returns: its value is that largest page, the limit that was used.
const HeaderLimitCapped = "x-cave-limit-capped"

// List implements kvv1.KVServer.
func (s *kvService) List(ctx context.Context, req *kvv1.ListRequest) (*kvv1.ListResponse, error) {
	if err := validatePrefix(req.Prefix); err != nil {
		return nil, invalid("%v", err)
	}
	if req.Limit < 0 {
		return nil, invalid("limit must be >= 0, got %d", req.Limit)
	}
	items, next, err := s.r.List(ctx, req.Prefix, req.PageToken, int(req.Limit), stale(req.Consistency))
	if err != nil {
		return nil, toStatus(s.lg, err)
	}
	if limit := s.r.ListLimit(); int(req.Limit) > limit {
		// Failing to set it only loses the hint: the page is right.
		_ = grpc.SetHeader(ctx, metadata.Pairs(HeaderLimitCapped, strconv.Itoa(limit)))
	}
	out := &kvv1.ListResponse{NextPageToken: next, Items: make([]*kvv1.ListItem, len(items))}
	for i, it := range items {
		out.Items[i] = &kvv1.ListItem{Key: it.Key, ModRevision: it.ModRevision, Size: it.Size}
	}
	return out, nil
}
