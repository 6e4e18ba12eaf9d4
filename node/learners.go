package node

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cavedb/cave/ring"
)

// A replica that joined its shard as a learner must be restarted as a
// learner until it has been promoted: dragonboat stops the process when a
// replica started as a voter replays the entry that added it as a
// non-voting member. Which local replicas are learners is known only from
// the shard's membership, which is not readable before the replica runs,
// so the node keeps a marker file per learner replica in
// DATA_DIR/learners, written (durably) before the replica first starts and
// removed once the running replica reports that it votes. A crash between
// promotion and removal restarts a voter as a learner, which dragonboat
// handles: the replica becomes a follower when it replays or restores the
// promotion.

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
