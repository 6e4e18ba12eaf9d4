package node

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cavedb/cave/ring"
)

// A replica that joined its shard as a learner must always be restarted as
// a learner: dragonboat stops the process when a replica started as a voter
// replays the entry that added it as a non-voting member, and that entry
// stays in the log after a promotion until a snapshot covers it. Started as
// a learner, a promoted replica becomes a voter again as it replays the
// promotion or restores a snapshot taken after it. Which local replicas
// joined as learners is known only from the shard's membership, which is
// not readable before the replica runs, so the node keeps a marker file
// per such replica in DATA_DIR/learners, written durably before the
// replica first starts and removed with the replica's data.

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

// isLearner reports whether replica rid of shard id joined as a learner.
func (n *Node) isLearner(id ring.ShardID, rid uint64) bool {
	_, err := os.Stat(n.learnerMarker(id, rid))
	return err == nil
}

// clearLearner forgets the marker of replica rid of shard id once its data
// is removed.
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
