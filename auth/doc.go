// Package auth is the pure logic of cave's users, passwords and bearer
// tokens (docs/architecture.md, "Security"): name rules, salted slow password hashes,
// token issue and verification against stored hashes, and a rate limiter
// for authentication failures.
//
// The package stores nothing and does no I/O. Callers keep User and
// TokenRecord values (the gateway keeps them in the meta shard) and pass
// a lookup function and the current time in. Neither passwords nor token
// plaintexts ever appear in an error message.
package auth
