// Package auth is cave's users, roles, grants and bearer tokens (docs/architecture.md,
// "Security"): name rules, salted slow password hashes, token issue and
// verification against stored hashes, a rate limiter for authentication
// failures, and the access policy.
//
// The access policy is one document in the meta shard, read and changed
// through a Store that the caller provides (the gateway backs it with the
// node). A Manager keeps a node's copy of it current (Run), answers
// access checks against it through an acl.Enforcer, and applies the
// policy operations (add and remove users and roles, grant and revoke,
// bind and unbind, issue and revoke tokens) with compare-and-swap
// retries. The rest of the package is pure: callers pass lookups and the
// current time in. Neither passwords nor token plaintexts ever appear in
// an error message.
package auth
