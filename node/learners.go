package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/lni/dragonboat/v4"

	"github.com/cavedb/cave/ring"
)

// A replica that joined its shard as a learner must be restarted as a
// learner until it has been promoted: dragonboat stops the process when a
// replica started as a voter replays the entry that added it as a
// non-voting member. Which local replicas are learners is known only from
// the shard's membership, which is not readable before the replica runs,
// so the node keeps a marker file per learner replica in
// DATA_DIR/learners, written (durably) before the replica first starts.
//
// The marker outlives the promotion until a local snapshot covers it
// (settlePromotion): a restart replays the log from the newest snapshot
// on, so a promoted replica whose log still holds the entry that added it
// as a learner must restart as a learner too, and becomes a follower when
// it replays the promotion. Once a snapshot taken after the promotion
// exists, the replay starts past both entries and the snapshot's
// membership lists the replica as a voter, so it must restart as a voter:
// a learner start would leave it unable to vote. A crash between the
// snapshot and the marker's removal restarts a voter as a learner, which
// dragonboat also handles: the replica becomes a follower when it restores
// the snapshot's membership.

const learnersDir = "learners"

func (n *Node) learnerMarker(id ring.ShardID, rid uint64) string {
	return filepath.Join(n.cfg.DataDir, learnersDir, fmt.Sprintf("%d-%d", uint64(id), rid))
}

// markLearner records that replica rid of shard id runs as a learner.
func (n *Node) markLearner(id ring.ShardID, rid uint64) error {
	path := n.learnerMarker(id, rid)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("node: learner marker: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("node: learner marker: %w", err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		return fmt.Errorf("node: learner marker: %w", err)
	}
	return nil
}

// isLearner reports whether replica rid of shard id was started as a
// learner and not seen promoted since.
func (n *Node) isLearner(id ring.ShardID, rid uint64) bool {
	_, err := os.Stat(n.learnerMarker(id, rid))
	return err == nil
}

// settlePromotion makes the promotion of the local replica rid of shard id,
// which the running replica's applied membership lists as a voter, part of
// a local snapshot and then removes its learner marker, so it restarts as
// a voter from then on. A failed snapshot keeps the marker; the next
// reconcile round tries again. dragonboat rejects the request when a
// snapshot at or past the applied index exists already, which covers the
// promotion just as well.
func (n *Node) settlePromotion(ctx context.Context, id ring.ShardID, rid uint64) {
	ctx, cancel := n.deadline(ctx)
	defer cancel()
	index, err := n.nh.SyncRequestSnapshot(ctx, uint64(id), dragonboat.SnapshotOption{})
	if err != nil && !errors.Is(err, dragonboat.ErrRejected) {
		n.lg.Warn("snapshot after promotion", "shard_id", id, "replica_id", rid, "err", err)
		return
	}
	n.clearLearner(id, rid)
	n.lg.Info("promotion settled", "shard_id", id, "replica_id", rid, "snapshot_index", index)
}

// clearLearner forgets the marker of replica rid of shard id, once it
// votes or has been removed.
func (n *Node) clearLearner(id ring.ShardID, rid uint64) {
	if err := os.Remove(n.learnerMarker(id, rid)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		n.lg.Warn("remove learner marker", "shard_id", id, "replica_id", rid, "err", err)
	}
}

// syncDir fsyncs a directory, so a file created in it survives a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
