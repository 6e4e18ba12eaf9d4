package shard

import "errors"

var (
	// ErrClosed is returned by Store methods and by StateMachine.Lookup and
	// Update when the Store has been closed, and by Lookup when the
	// StateMachine has been closed. Nothing was read or written.
	ErrClosed = errors.New("shard: store closed")

	// ErrBadCommand is returned by DecodeCommand when a command is malformed:
	// truncated, of an unknown format, with an unknown op kind or flag, with an
	// empty or oversize key, or with trailing bytes. Update never returns it;
	// it reports such an entry as ResultBadCommand instead.
	ErrBadCommand = errors.New("shard: bad command")

	// ErrBadResult is returned by DecodeResults when a Result was not
	// produced by this package's Update (or by a different format version).
	ErrBadResult = errors.New("shard: bad result")

	// ErrUnknownQuery is returned by StateMachine.Lookup when the query is not
	// one of GetQuery, ListQuery, HistoryQuery or StatsQuery (or a pointer to one).
	ErrUnknownQuery = errors.New("shard: unknown query")

	// ErrRecovering is returned by StateMachine.Lookup while the state machine
	// is loading a snapshot, when its data is incomplete. The query was not
	// served; retrying later, or on another replica, is safe.
	ErrRecovering = errors.New("shard: recovering from snapshot")

	// ErrBadSnapshot is returned by StateMachine.RecoverFromSnapshot when the
	// snapshot stream is truncated or malformed. The shard's data is then
	// incomplete and its applied index is absent, so the next Open reports 0.
	ErrBadSnapshot = errors.New("shard: bad snapshot")

	// ErrCompacted is returned by StateMachine.Lookup for a HistoryQuery
	// whose After is below the history's floor: the events after it are no
	// longer retained on this replica (trimmed, or before the snapshot it
	// loaded). Another replica may still hold them.
	ErrCompacted = errors.New("shard: history compacted")

	// ErrCorrupt is returned by Update, Lookup, Stats and Open when a stored
	// record cannot be decoded: the disk, or a bug, has damaged the data.
	ErrCorrupt = errors.New("shard: corrupt record")
)

// ErrShardOpen is returned by Store.RemoveShardData when a StateMachine of
// that shard is open on the Store (opened and not yet closed). Nothing was
// changed; dragonboat closes a stopped replica's state machine
// asynchronously, so retrying shortly is safe.
var ErrShardOpen = errors.New("shard: shard is open")
