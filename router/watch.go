package router

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cavedb/cave/node"
	"github.com/cavedb/cave/ring"
	"github.com/cavedb/cave/shard"
)

// WatchQuery says which changes a watch delivers.
type WatchQuery struct {
	// Key, when set, selects this key's changes only; it lives on one shard.
	Key string
	// Prefix selects the changes of keys that start with it when Key is
	// empty; empty selects every key.
	Prefix string
	// KeysOnly leaves the values out.
	KeysOnly bool
}

// Position is where a watch stands in each shard's history: per shard, the
// last revision whose events were delivered (or examined and found not to
// match).
type Position map[ring.ShardID]int64

// WatchBatch is a run of one shard's events, in revision order. Next is
// the shard's position once they are delivered; a batch without events
// only moves the position on.
type WatchBatch struct {
	Shard  ring.ShardID
	Events []Event
	Next   int64
}

// Event is one change of a key, as a watch delivers it.
type Event struct {
	// Revision is the shard's revision of the change: the key's new
	// mod_revision for a put, the deletion's revision for a delete.
	Revision int64
	// Deleted is true for a delete, false for a put.
	Deleted bool
	// Key is the user key; Value the value a put wrote (nil for a delete
	// and with KeysOnly).
	Key, Value []byte
	// CreateRevision is the key's create_revision; PrevRevision its
	// mod_revision before the change, 0 when a put created it.
	CreateRevision, PrevRevision int64
}

// events converts a shard's history events, dropping those not of key
// when key is set (the shard matched them as a prefix).
func events(evs []shard.Event, key string) []Event {
	out := make([]Event, 0, len(evs))
	for _, e := range evs {
		if key != "" && string(e.Key) != key {
			continue
		}
		out = append(out, Event{Revision: e.Revision, Deleted: e.Kind == shard.OpDelete, Key: e.Key, Value: e.Value,
			CreateRevision: e.CreateRevision, PrevRevision: e.PrevRevision})
	}
	return out
}

// watchPoll is how long one history read waits for a commit, and
// watchQuiet how often, at most, a shard whose commits match nothing sends
// a batch that only moves its position.
const (
	watchPoll  = 2 * time.Second
	watchQuiet = time.Second
)

// WatchShards returns the shards that q covers: the key's shard, or every
// shard for a prefix (any shard may hold keys of any prefix). Errors:
// ErrUnavailable while the slot table cannot be read.
func (r *Router) WatchShards(ctx context.Context, q WatchQuery) ([]ring.ShardID, error) {
	t, err := r.be.Table(ctx)
	if err != nil {
		return nil, final(err)
	}
	if q.Key != "" {
		_, id := t.Route(q.Key)
		return []ring.ShardID{id}, nil
	}
	return t.Shards(), nil
}

// WatchStart returns the current position of each of shards, read on the
// shard leader's node when it is known, so that a watch from it starts
// "now". Errors: ErrUnavailable.
func (r *Router) WatchStart(ctx context.Context, shards []ring.ShardID) (Position, error) {
	pos := make(Position, len(shards))
	for _, id := range shards {
		var res *shard.HistoryResult
		err := r.retry(ctx, opWatch, func() error {
			hosts, local := r.targets(id, false)
			if local {
				var err error
				res, err = r.be.History(ctx, id, shard.HistoryQuery{After: -1}, 0)
				return err
			}
			r.met.forwards[opWatch].Inc()
			return eachHost(hosts, func(addr string) error {
				var err error
				res, err = r.fw.History(ctx, addr, id, shard.HistoryQuery{After: -1}, 0)
				return err
			})
		})
		if err != nil {
			return nil, final(err)
		}
		pos[id] = res.Next
	}
	return pos, nil
}

// WatchCheck reports whether a watch can resume from pos: it fails with
// an error wrapping ErrCompacted when no replica of some shard still holds
// the events after its position, and with ErrUnavailable when a shard
// cannot be read.
func (r *Router) WatchCheck(ctx context.Context, pos Position) error {
	for id, after := range pos {
		err := r.retry(ctx, opWatch, func() error {
			_, err := r.historyOnce(ctx, id, shard.HistoryQuery{After: after, Limit: 1, KeysOnly: true}, 0)
			return err
		})
		if errors.Is(err, node.ErrCompacted) {
			return fmt.Errorf("%w: shard %d: %w", ErrCompacted, id, err)
		}
		if err != nil {
			return final(err)
		}
	}
	return nil
}

// Watch delivers to out the changes q selects after from, one WatchBatch
// at a time, until ctx is done or the watch fails. It runs one loop per
// shard of from: each reads its shard's history after its position from a
// replica (the local one when this node hosts it, else the leader's node
// or another host, with a long poll) and sends what matches. Per shard,
// and so per key, batches come in revision order, each event once; batches
// of different shards interleave in no particular order.
//
// Watch never blocks on out: a batch with events that does not fit ends
// the watch with ErrSlowWatcher, and a batch that only moves a position is
// dropped when out is full (a later batch moves it further). Shards that
// cannot serve are retried, with backoff, for as long as ctx lasts. Watch
// returns ctx's error when ctx ends it, and an error wrapping ErrCompacted
// when no replica of a shard holds the events after its position. It
// returns only after its loops have stopped, and never closes out.
func (r *Router) Watch(ctx context.Context, q WatchQuery, from Position, out chan<- WatchBatch) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := make(chan struct{}, len(from))
	for id, after := range from {
		go func() {
			defer func() { done <- struct{}{} }()
			if err := r.watchShard(ctx, q, id, after, out); err != nil {
				cancel(err)
			}
		}()
	}
	for range from {
		<-done
	}
	return context.Cause(ctx)
}

// watchShard is Watch's loop for shard id; it returns nil only when ctx
// is done.
func (r *Router) watchShard(ctx context.Context, q WatchQuery, id ring.ShardID, after int64, out chan<- WatchBatch) error {
	hq := shard.HistoryQuery{Prefix: []byte(q.Prefix), KeysOnly: q.KeysOnly}
	if q.Key != "" {
		hq.Prefix = []byte(q.Key)
	}
	delay := r.cfg.Backoff
	var lastSent time.Time
	for ctx.Err() == nil {
		hq.After = after
		res, err := r.historyOnce(ctx, id, hq, watchPoll)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, node.ErrCompacted) {
				return fmt.Errorf("%w: shard %d: %w", ErrCompacted, id, err)
			}
			r.cfg.Logger.Debug("watch read failed, retrying", "shard_id", uint64(id), "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(delay):
			}
			delay = min(2*delay, time.Second)
			continue
		}
		delay = r.cfg.Backoff
		if res.Next <= after {
			continue
		}
		evs := events(res.Events, q.Key)
		after = res.Next
		b := WatchBatch{Shard: id, Events: evs, Next: res.Next}
		if len(evs) > 0 {
			select {
			case out <- b:
				lastSent = time.Now()
			default:
				return fmt.Errorf("%w: shard %d", ErrSlowWatcher, id)
			}
		} else if time.Since(lastSent) >= watchQuiet {
			select {
			case out <- b:
				lastSent = time.Now()
			default:
			}
		}
	}
	return nil
}

// historyOnce reads shard id's history after q.After once, waiting up to
// wait for a commit: from the local replica when there is one, else
// from the leader's node first and then the other hosts. A replica that no
// longer holds the events (it loaded a snapshot past them) hands over to
// the next host; ErrCompacted comes back only when the last one says so.
func (r *Router) historyOnce(ctx context.Context, id ring.ShardID, q shard.HistoryQuery, wait time.Duration) (*shard.HistoryResult, error) {
	var lastErr error
	if r.be.HasReplica(id) {
		res, err := r.be.History(ctx, id, q, wait)
		if !errors.Is(err, node.ErrCompacted) {
			return res, err
		}
		lastErr = err
	}
	hosts := r.hosts(id)
	if h, ok := r.be.LeaderHost(id); ok {
		hosts = append([]node.Host{h}, hosts...)
	}
	if len(hosts) == 0 && lastErr == nil {
		return nil, errNoHost
	}
	for _, h := range hosts {
		r.met.forwards[opWatch].Inc()
		cctx, cancel := context.WithTimeout(ctx, wait+5*time.Second)
		res, err := r.fw.History(cctx, h.GRPCAddr, id, q, wait)
		cancel()
		if err == nil {
			return res, nil
		}
		lastErr = err
		if !errors.Is(err, node.ErrNoReplica) && !errors.Is(err, node.ErrCompacted) {
			return nil, err
		}
	}
	return nil, lastErr
}
