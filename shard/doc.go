// Package shard is cave's replicated state machine: one dragonboat
// IOnDiskStateMachine (StateMachine) per shard replica, with the data of all
// the shards of a node in one Pebble database (Store).
//
// A write reaches a shard as one Raft entry holding a batch of Ops, encoded
// by EncodeCommand. Update applies each entry and reports one OpResult per
// Op, decoded from the entry's sm.Result by DecodeResults. Reads are Lookup
// queries (GetQuery, ListQuery, StatsQuery) passed to NodeHost.SyncRead or
// StaleRead.
//
// Each key carries create_revision, mod_revision (the Raft index of the entry
// that wrote it) and version (writes since creation), as docs/architecture.md ("Data model") defines.
// Revisions are per shard.
//
// In Pebble, a shard's data lives under a namespace byte and its ID (8 bytes,
// big-endian), followed by the user key; its applied index and its key and
// byte counters live in one meta record under another namespace. Every Update
// commits both in one batch, so the data on disk always matches the applied
// index that Open reports.
package shard
