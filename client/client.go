package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	clusterv1 "github.com/cavedb/cave/proto/cave/cluster/v1"
	kvv1 "github.com/cavedb/cave/proto/cave/kv/v1"
)

// Client is a connection to a cave cluster; see the package doc. It is
// safe for concurrent use.
//
// The refresher goroutine, started by New and stopped by Close, is the
// only writer of routes and lastGood; requests only read them.
type Client struct {
	cfg  Config
	pool *pool

	routes   atomic.Pointer[routes] // nil while the routing is unknown
	lastGood atomic.Pointer[string] // the node that last answered Routing
	turn     atomic.Uint64          // round robin over replicas and nodes
	kick     chan struct{}          // capacity 1: asks for a refresh now

	stop      context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// New returns a client of the cluster behind cfg.Endpoints. It validates
// cfg (returning Validate's error) and asks the endpoints for the routing
// under ctx; when none answers it still returns a working client, which
// sends requests to the endpoints until a background refresh succeeds.
// Close it when done.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	creds := insecure.NewCredentials()
	if cfg.TLS != nil {
		creds = credentials.NewTLS(cfg.TLS)
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(cfg.MaxMessageBytes), grpc.MaxCallSendMsgSize(cfg.MaxMessageBytes)),
	}
	if tok := cfg.Token; tok != "" {
		opts = append(opts, grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			return invoker(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok), method, req, reply, cc, opts...)
		}), grpc.WithStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			return streamer(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok), desc, cc, method, opts...)
		}))
	}
	opts = append(opts, cfg.DialOptions...)
	c := &Client{cfg: cfg, pool: newPool(opts), kick: make(chan struct{}, 1), done: make(chan struct{})}
	for _, e := range cfg.Endpoints {
		if _, err := c.pool.get(e); err != nil {
			return nil, errors.Join(fmt.Errorf("client: Endpoints %q: %w", e, err), c.pool.close())
		}
	}
	_ = c.refresh(ctx) // without an answer the endpoints serve until a later refresh
	bg, stop := context.WithCancel(context.Background())
	c.stop = stop
	go c.refreshLoop(bg)
	return c, nil
}

// Close stops the background refresh and closes every connection; calls
// in flight fail. It is idempotent and returns the first call's result.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.stop()
		<-c.done
		c.closeErr = c.pool.close()
	})
	return c.closeErr
}

// KeyValue is a key with its value and revisions.
type KeyValue struct {
	Key   string
	Value []byte
	// CreateRevision is the shard's revision when the key was created,
	// ModRevision the one of its last write; Version counts its writes
	// since creation.
	CreateRevision, ModRevision, Version int64
}

// Get returns the key's value. Without Stale the read is linearizable: it
// sees every write acknowledged before it began. It fails with ErrNotFound
// when the key does not exist.
func (c *Client) Get(ctx context.Context, key string, opts ...GetOption) (*KeyValue, error) {
	var o getOptions
	for _, opt := range opts {
		opt.applyGet(&o)
	}
	req := &kvv1.GetRequest{Key: key, Secret: o.secret}
	t := toLeader
	if o.stale {
		req.Consistency, t = kvv1.Consistency_CONSISTENCY_STALE, toReplica
	}
	var resp *kvv1.GetResponse
	err := c.do(ctx, t, key, false, func(ctx context.Context, kv kvv1.KVClient) (err error) {
		resp, err = kv.Get(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &KeyValue{Key: resp.Key, Value: resp.Value, CreateRevision: resp.CreateRevision,
		ModRevision: resp.ModRevision, Version: resp.Version}, nil
}

// Put writes the value of key and returns the write's revision, the key's
// new mod_revision. With PrevRevision or CreateOnly it fails with
// ErrConditionFailed when the condition does not hold. A failure that is
// neither ErrNotApplied nor a refusal (ErrConditionFailed, invalid
// argument, access denied) may have been applied: see ErrOutcomeUnknown.
func (c *Client) Put(ctx context.Context, key string, value []byte, opts ...PutOption) (int64, error) {
	var o putOptions
	for _, opt := range opts {
		opt.applyPut(&o)
	}
	req := &kvv1.PutRequest{Key: key, Value: value, Secret: o.secret}
	if o.prev != nil {
		req.PrevRevision = proto.Int64(*o.prev)
	}
	var resp *kvv1.PutResponse
	err := c.do(ctx, toLeader, key, true, func(ctx context.Context, kv kvv1.KVClient) (err error) {
		resp, err = kv.Put(ctx, req)
		return err
	})
	if err != nil {
		return 0, err
	}
	return resp.Revision, nil
}

// Delete deletes key and returns the revision of the delete. It fails with
// ErrNotFound when the key does not exist, and with PrevRevision with
// ErrConditionFailed when the condition does not hold. Like Put, a failure
// may leave the outcome unknown.
func (c *Client) Delete(ctx context.Context, key string, opts ...DeleteOption) (int64, error) {
	var o deleteOptions
	for _, opt := range opts {
		opt.applyDelete(&o)
	}
	req := &kvv1.DeleteRequest{Key: key}
	if o.prev != nil {
		req.PrevRevision = proto.Int64(*o.prev)
	}
	var resp *kvv1.DeleteResponse
	err := c.do(ctx, toLeader, key, true, func(ctx context.Context, kv kvv1.KVClient) (err error) {
		resp, err = kv.Delete(ctx, req)
		return err
	})
	if err != nil {
		return 0, err
	}
	return resp.Revision, nil
}

// ListItem is one key of a List page.
type ListItem struct {
	Key         string
	ModRevision int64
	// Size is the value's length in bytes.
	Size int64
}

// Page is one page of a List.
type Page struct {
	// Items are the page's keys in lexicographic order, across every shard.
	Items []ListItem
	// NextPageToken, passed to PageToken, gives the next page; "" on the
	// last page.
	NextPageToken string
}

// List returns one page of the keys that start with prefix ("" lists
// every key), in lexicographic order. Limit sets the page size, PageToken
// continues after a page, Stale reads from any replica.
func (c *Client) List(ctx context.Context, prefix string, opts ...ListOption) (*Page, error) {
	var o listOptions
	for _, opt := range opts {
		opt.applyList(&o)
	}
	req := &kvv1.ListRequest{Prefix: prefix, Limit: o.limit, PageToken: o.token}
	if o.stale {
		req.Consistency = kvv1.Consistency_CONSISTENCY_STALE
	}
	var resp *kvv1.ListResponse
	err := c.do(ctx, toAny, "", false, func(ctx context.Context, kv kvv1.KVClient) (err error) {
		resp, err = kv.List(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	p := &Page{Items: make([]ListItem, len(resp.Items)), NextPageToken: resp.NextPageToken}
	for i, it := range resp.Items {
		p.Items[i] = ListItem{Key: it.Key, ModRevision: it.ModRevision, Size: it.Size}
	}
	return p, nil
}

// errRepeatedToken is returned by ListAll when a page names itself as
// the next one, which would loop forever.
var errRepeatedToken = errors.New("client: the server returned the same page token twice")

// ListAll returns every key under prefix, following the pages; Limit sets
// the page size. Pages are read one after another, so under concurrent
// writes the result is not one snapshot. It fails with the first page's
// error, and when the server returns the same page token twice.
func (c *Client) ListAll(ctx context.Context, prefix string, opts ...ListOption) ([]ListItem, error) {
	var all []ListItem
	token := ""
	for {
		p, err := c.List(ctx, prefix, append(opts, PageToken(token))...)
		if err != nil {
			return nil, err
		}
		all = append(all, p.Items...)
		if p.NextPageToken == "" {
			return all, nil
		}
		if p.NextPageToken == token {
			return nil, errRepeatedToken
		}
		token = p.NextPageToken
	}
}

// do runs call on the best node for the request and, while the failure
// says nothing was applied (or the request is a read and the node is
// unavailable), on the next node of its list, after a backoff, at most
// cfg.MaxAttempts times. It returns nil or the last attempt's *Error.
func (c *Client) do(ctx context.Context, t target, key string, write bool, call func(context.Context, kvv1.KVClient) error) error {
	var last *Error
	var tried []string
	for attempt := range c.cfg.MaxAttempts {
		if attempt > 0 {
			c.requestRefresh()
			if !sleep(ctx, c.backoff(attempt)) {
				return last
			}
		}
		if ctx.Err() != nil {
			return ctxError(ctx)
		}
		addr := next(c.routes.Load().candidates(t, key, c.turn.Add(1), c.cfg.Endpoints), &tried)
		conn, err := c.pool.get(addr)
		if err != nil {
			return err
		}
		actx, flag := withSentFlag(ctx)
		err = call(actx, kvv1.NewKVClient(conn))
		if err == nil {
			return nil
		}
		last = classify(ctx, err, flag.sent.Load(), write)
		if !retryable(last, write) || ctx.Err() != nil {
			return last
		}
	}
	return last
}

// next returns the first candidate not in tried and adds it there; when
// every one was tried it starts over from the first.
func next(candidates []string, tried *[]string) string {
	for _, a := range candidates {
		if !slices.Contains(*tried, a) {
			*tried = append(*tried, a)
			return a
		}
	}
	*tried = append((*tried)[:0], candidates[0])
	return candidates[0]
}

// retryable reports whether a failed attempt may be sent again: it was
// not applied or, for a read, its node was unavailable. It is the
// client's only list of retried failures.
func retryable(e *Error, write bool) bool {
	return errors.Is(e, ErrNotApplied) || !write && e.st.Code() == codes.Unavailable
}

// backoff returns the wait before attempt (from 1): cfg.Backoff doubled
// attempt-1 times, at most cfg.MaxBackoff.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.cfg.Backoff
	for i := 1; i < attempt && d < c.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, c.cfg.MaxBackoff)
}

// sleep waits d or until ctx ends, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// requestRefresh asks the refresher for a refresh now; it never blocks.
func (c *Client) requestRefresh() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// refreshLoop refreshes the routing every cfg.RefreshInterval and on
// request, at most once per cfg.MinRefreshInterval, until ctx ends.
func (c *Client) refreshLoop(ctx context.Context) {
	defer close(c.done)
	tick := time.NewTimer(c.cfg.RefreshInterval)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-c.kick:
			if !sleep(ctx, c.cfg.MinRefreshInterval-time.Since(last)) {
				return
			}
		}
		_ = c.refresh(ctx) // on failure the old snapshot stays, and the next tick retries
		last = time.Now()
		tick.Reset(c.cfg.RefreshInterval)
	}
}

// refresh asks for the routing, in turn, the node that last answered, the
// endpoints and every node of the current snapshot, and stores the first
// valid answer. It returns every node's error when none answered.
func (c *Client) refresh(ctx context.Context) error {
	cur := c.routes.Load()
	var order []string
	if p := c.lastGood.Load(); p != nil {
		order = append(order, *p)
	}
	order = append(order, c.cfg.Endpoints...)
	if cur != nil {
		order = append(order, cur.nodes...)
	}
	var errs []error
	var tried []string
	for _, addr := range order {
		if slices.Contains(tried, addr) {
			continue
		}
		tried = append(tried, addr)
		r, err := c.fetch(ctx, addr, cur)
		if err == nil {
			if r != cur {
				c.routes.Store(r)
			}
			c.lastGood.Store(&addr)
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", addr, err))
		if ctx.Err() != nil {
			break
		}
	}
	return errors.Join(errs...)
}

// fetch asks addr for the routing under cfg.RefreshTimeout and returns
// the snapshot: cur itself when the version is unchanged.
func (c *Client) fetch(ctx context.Context, addr string, cur *routes) (*routes, error) {
	conn, err := c.pool.get(addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RefreshTimeout)
	defer cancel()
	resp, err := clusterv1.NewClusterClient(conn).Routing(ctx, &clusterv1.RoutingRequest{})
	if err != nil {
		return nil, err
	}
	if cur != nil && cur.version == resp.GetVersion() {
		return cur, nil
	}
	return newRoutes(resp)
}
