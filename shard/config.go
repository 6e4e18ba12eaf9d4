package shard

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Config configures a Store. Start from DefaultConfig, set Logger, and pass it
// to Open, which calls Validate.
type Config struct {
	// CacheBytes is the size of Pebble's block cache in bytes, shared by every
	// shard of the node. Default 64 MiB; it must be at least 1 MiB.
	CacheBytes int64
	// MemTableBytes is the size of one Pebble memtable in bytes. Larger
	// memtables absorb more writes between flushes. Default 16 MiB; it must be
	// at least 1 MiB and below 4 GiB.
	MemTableBytes int64
	// SnapshotBytesPerSecond caps the rate at which SaveSnapshot writes a
	// shard's snapshot stream: the bytes a new replica receives when a
	// replica moves. Zero means no cap. Default 0.
	SnapshotBytesPerSecond uint64
	// HistoryRevisions is how many of its latest revisions (Raft entries) a
	// shard keeps the change events of, for watches to resume from
	// (--watch-history-revisions). The disk cost is about one copy of every
	// key and value written in that span. Default 100,000; at least 16.
	HistoryRevisions uint64
	// Logger receives the store's and Pebble's log lines. Required: there is
	// no default.
	Logger *slog.Logger
	// Expert holds settings that operators should leave alone.
	Expert ExpertConfig
}

// ExpertConfig holds rarely-touched Store settings.
type ExpertConfig struct {
	// FS is the file system Pebble writes to. Default vfs.Default (the OS file
	// system); tests pass vfs.NewCrashableMem() to simulate crashes. Required.
	FS vfs.FS
	// RecoverBatchBytes bounds the size in bytes of one Pebble batch written
	// while a shard loads a snapshot, which bounds the memory used. Default
	// 4 MiB; it must be at least 64 KiB.
	RecoverBatchBytes int
}

// DefaultConfig returns a working Config except for Logger, which the caller
// must set.
func DefaultConfig() Config {
	return Config{
		CacheBytes:       64 << 20,
		MemTableBytes:    16 << 20,
		HistoryRevisions: 100_000,
		Expert: ExpertConfig{
			FS:                vfs.Default,
			RecoverBatchBytes: 4 << 20,
		},
	}
}

// Validate reports every problem with c at once, one per line. It does not
// change c.
func (c Config) Validate() error {
	var errs []error
	if c.CacheBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("shard: CacheBytes must be >= %d, got %d", 1<<20, c.CacheBytes))
	}
	if c.MemTableBytes < 1<<20 || c.MemTableBytes >= 4<<30 {
		errs = append(errs, fmt.Errorf("shard: MemTableBytes must be in [%d, %d), got %d", 1<<20, int64(4)<<30, c.MemTableBytes))
	}
	if c.HistoryRevisions < 16 {
		errs = append(errs, fmt.Errorf("shard: --watch-history-revisions must be >= 16, got %d", c.HistoryRevisions))
	}
	if c.Logger == nil {
		errs = append(errs, errors.New("shard: Logger must be set"))
	}
	if c.Expert.FS == nil {
		errs = append(errs, errors.New("shard: Expert.FS must be set"))
	}
	if c.Expert.RecoverBatchBytes < 64<<10 {
		errs = append(errs, fmt.Errorf("shard: Expert.RecoverBatchBytes must be >= %d, got %d", 64<<10, c.Expert.RecoverBatchBytes))
	}
	return errors.Join(errs...)
}
