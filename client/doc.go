// Package client is cave's Go client. It talks gRPC to the nodes of a
// cluster and sends every request straight to the node that serves it
// best, saving the forwarding hop that a node takes for a request it does
// not lead (see docs/architecture.md, "The path of a put").
//
// The client learns the cluster's routing from cave.cluster.v1.Cluster/
// Routing: the slot table (a key's shard is fixed: ring.SlotOf, then the
// table) and each shard's leader and replicas with their gRPC addresses.
// Writes and linearizable reads go to the leader's node, stale reads to
// the shard's replicas in turn, lists (which span every shard) to the known
// nodes in turn. The routing is refreshed in the background every
// Config.RefreshInterval and soon after any failed attempt; while it is
// unknown, requests go to Config.Endpoints, and any node serves them by
// forwarding.
//
// # Retries
//
// A request is sent again, on the next node of its list and after a short
// backoff, only when the failure says that nothing was applied: the server
// answered UNAVAILABLE with reason NOT_APPLIED, or the request never left
// this process (no connection to the node). Reads are also retried on any
// other UNAVAILABLE. Every attempt runs under the caller's ctx, and there
// are at most Config.MaxAttempts of them.
//
// # Watch
//
// Watch streams the changes of a key or a prefix (cave.kv.v1.KV/Watch)
// as a channel of batches, each with the resume token after it. A watch
// goes to the known nodes in turn; when its stream breaks it starts
// again on the next node, after a backoff, from the token of the last
// batch it delivered, so no change is lost or repeated. It ends only
// with its ctx, or with an error that a new stream would meet again:
// ErrCompacted when the token is older than the shards' history, or the
// server's refusal.
//
// # Errors
//
// Every error of a request, but ErrClosed, is an *Error carrying the gRPC
// status (so status.Code and status.Convert work on it), and errors.Is
// tells the cases a caller acts on: ErrNotFound, ErrConditionFailed (with
// the key's current revision in Error.CurrentRevision), ErrNotApplied
// (safe to retry) and ErrOutcomeUnknown (a write that may or may not have
// been applied: read before retrying it). The client reads the reasons
// from the status details, never from messages.
//
// A Client is safe for concurrent use by many goroutines; create one per
// cluster and share it.
package client
