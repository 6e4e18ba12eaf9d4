package client

import (
	"context"
	"errors"
	"io"

	"google.golang.org/grpc/codes"

	kvv1 "github.com/cavedb/cave/proto/cave/kv/v1"
)

// ErrCompacted is the error of a watch whose resume token is older than
// the history the shards keep (the server's OUT_OF_RANGE): the changes
// since the token are gone. Read the keys again and watch from now.
var ErrCompacted = errors.New("client: resume token compacted")

// EventType is the kind of change an Event reports.
type EventType uint8

const (
	// EventPut is a put: the key was created or its value replaced.
	EventPut EventType = iota + 1
	// EventDelete is a delete of the key.
	EventDelete
)

// String returns "PUT" or "DELETE".
func (t EventType) String() string {
	switch t {
	case EventPut:
		return "PUT"
	case EventDelete:
		return "DELETE"
	}
	return "UNKNOWN"
}

// Event is one change seen by a watch.
type Event struct {
	Type EventType
	Key  string
	// Value is the value a put wrote: nil for a delete and with KeysOnly, a
	// secret's envelope unless the watch asked for Secret.
	Value []byte
	// ModRevision is the change's revision; CreateRevision the key's
	// create_revision (for a delete, that of the deleted key);
	// PrevModRevision the key's mod_revision before the change (0 when a
	// put created the key).
	ModRevision, CreateRevision, PrevModRevision int64
}

// WatchResponse is one batch of a watch: events, or a progress
// notification that only moves the token on, or the watch's end.
type WatchResponse struct {
	// Events are the batch's changes, in revision order per key.
	Events []Event
	// ResumeToken resumes the watch after this batch: FromToken with it,
	// on any client of the cluster, delivers exactly the later changes.
	// "" only on a response that carries an error.
	ResumeToken string
	// Progress marks a response without events, sent so that an idle
	// watch's token keeps up.
	Progress bool

	err error
}

// Err returns the error that ended the watch, on the channel's last
// response; nil on every other. It is an *Error (status.Code works on it)
// that errors.Is matches with ErrCompacted when the token was compacted,
// ErrClosed when the client was closed between two streams (a stream in
// flight at Close ends with Canceled).
func (r WatchResponse) Err() error { return r.err }

// WatchChan delivers the responses of one watch; see Client.Watch.
type WatchChan <-chan WatchResponse

// WatchOption changes what Watch watches: Key, FromToken, KeysOnly,
// Secret.
type WatchOption interface{ applyWatch(*watchOptions) }

type watchOptions struct {
	key, keysOnly, secret bool
	token                 string
}

// watchOption is an option of Watch alone.
type watchOption func(*watchOptions)

func (f watchOption) applyWatch(o *watchOptions) { f(o) }

// Key makes Watch watch exactly the key it is given instead of every key
// under it as a prefix.
func Key() WatchOption { return watchOption(func(o *watchOptions) { o.key = true }) }

// FromToken starts the watch after the response whose ResumeToken is
// token, instead of from now. The token must come from a watch of the same
// key or prefix; another fails the watch with InvalidArgument. "" starts
// from now, as without FromToken.
func FromToken(token string) WatchOption {
	return watchOption(func(o *watchOptions) { o.token = token })
}

// KeysOnly leaves the values out of the events.
func KeysOnly() WatchOption { return watchOption(func(o *watchOptions) { o.keysOnly = true }) }

func (SecretOption) applyWatch(o *watchOptions) { o.secret = true }

// Watch watches the changes of every key under prefix ("" is every key
// the caller may read; with Key, of the key prefix alone) and returns the
// channel of its responses. The first response comes as soon as the
// watch runs: a Progress one with the token of "now" (or of FromToken's
// position).
//
// The watch survives a broken stream: when its node stops, goes
// unreachable or cuts it (UNAVAILABLE, ABORTED, or RESOURCE_EXHAUSTED for
// a watcher that read too slowly or a node at its watch limit), it starts again on
// the next node, after a backoff (Config.Backoff doubling up to
// MaxBackoff, reset once a stream delivers), from the token of the last
// response it delivered. So each key's events arrive in revision order
// and each change exactly once, across resumes; changes of keys on
// different shards carry no order among them.
//
// The channel is closed when ctx ends (with no error response: the caller
// ended it) or after a last response whose Err is set: ErrCompacted when
// the token was compacted, or the server's refusal (InvalidArgument for a
// bad prefix or token, PermissionDenied, ...), which a new stream would
// meet again. The caller must read the channel until it is closed or end
// ctx; a watch that is not read holds its stream open.
func (c *Client) Watch(ctx context.Context, prefix string, opts ...WatchOption) WatchChan {
	var o watchOptions
	for _, opt := range opts {
		opt.applyWatch(&o)
	}
	req := &kvv1.WatchRequest{Prefix: prefix, ResumeToken: o.token, KeysOnly: o.keysOnly, Secret: o.secret}
	if o.key {
		req.Key, req.Prefix = prefix, ""
	}
	ch := make(chan WatchResponse)
	go func() {
		defer close(ch)
		if err := c.watch(ctx, req, ch); err != nil && ctx.Err() == nil {
			select {
			case ch <- WatchResponse{err: err}:
			case <-ctx.Done():
			}
		}
	}()
	return ch
}

// watch runs the watch of req, resuming it after every failure that
// another stream may not meet, until ctx ends or a failure that it would.
// It keeps req.ResumeToken at the token of the last response delivered on
// ch, and returns the failure that ended it (nil when ctx did).
func (c *Client) watch(ctx context.Context, req *kvv1.WatchRequest, ch chan<- WatchResponse) error {
	var tried []string
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			c.requestRefresh()
			if !sleep(ctx, c.backoff(attempt)) {
				return nil
			}
		}
		addr := next(c.routes.Load().candidates(toAny, "", c.turn.Add(1), c.cfg.Endpoints), &tried)
		conn, err := c.pool.get(addr)
		if err != nil {
			return err
		}
		delivered, err := c.stream(ctx, kvv1.NewKVClient(conn), req, ch)
		if ctx.Err() != nil {
			return nil
		}
		if delivered {
			attempt = 0 // the next backoff starts short again
			tried = tried[:0]
		}
		if !errors.Is(err, io.EOF) {
			e := classify(ctx, err, true, false)
			switch e.st.Code() {
			case codes.Unavailable, codes.ResourceExhausted, codes.Aborted:
			case codes.OutOfRange:
				e.kind = ErrCompacted
				return e
			default:
				return e
			}
		}
	}
}

// stream runs one Watch stream of req on kv and delivers its responses on
// ch, moving req.ResumeToken on with each. It returns whether it
// delivered any, and the error that ended the stream (io.EOF when the
// server ended it without one).
func (c *Client) stream(ctx context.Context, kv kvv1.KVClient, req *kvv1.WatchRequest, ch chan<- WatchResponse) (bool, error) {
	// The stream ends when ctx does, but without ctx's deadline: sent to
	// the server, it would end the stream there first, and the error could
	// come back before ctx reports its end.
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	defer context.AfterFunc(ctx, cancel)()
	st, err := kv.Watch(sctx, req)
	if err != nil {
		return false, err
	}
	delivered := false
	for {
		resp, err := st.Recv()
		if err != nil {
			return delivered, err
		}
		out := WatchResponse{ResumeToken: resp.ResumeToken, Progress: resp.ProgressNotify}
		if len(resp.Events) > 0 {
			out.Events = make([]Event, len(resp.Events))
			for i, e := range resp.Events {
				t := EventPut
				if e.Type == kvv1.EventType_EVENT_TYPE_DELETE {
					t = EventDelete
				}
				out.Events[i] = Event{Type: t, Key: e.Key, Value: e.Value, ModRevision: e.ModRevision,
					CreateRevision: e.CreateRevision, PrevModRevision: e.PrevModRevision}
			}
		}
		select {
		case ch <- out:
		case <-ctx.Done():
			return delivered, ctx.Err()
		}
		req.ResumeToken = resp.ResumeToken
		delivered = true
	}
}
