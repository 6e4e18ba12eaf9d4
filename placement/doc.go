// Package placement decides where the replicas and leaderships of cave's
// shards go. Plan is a pure function of a Cluster (nodes and their states,
// shards and their replicas) and returns the next Actions toward the
// wanted placement; the reconciler executes them through Raft, records
// each move step in the meta shard, and plans again with the new state.
// Nothing here reads clocks, the network or the disk.
//
// # Terms
//
// A node is alive, down (not alive for less than the grace period), dead
// (down longer), draining (alive, asked to shed everything) or removed. The
// replicas on alive and down nodes are staying; those on dead, draining and
// removed nodes are leaving. A shard wants min(Voters, alive + down nodes)
// voters on staying nodes. Replicas on alive and draining nodes can vote
// now, and so can the leader wherever it is; a shard needs a quorum of
// those for any change. A node's load is its replica count (not counting
// the learners of a LearnersOnRest shard), then its bytes, then its name.
//
// # Rules
//
// Each call plans at most one action per shard (one membership change per
// shard at a time) and none for a shard that is Busy, whose leader is
// unknown, or that has no quorum. For each other shard the first rule that
// applies gives its action:
//
//  1. Replication factor. Two replicas on one node: remove one, a learner
//     first, never the leader. While a learner on an alive node catches
//     up, wait. With fewer voters on staying nodes than wanted, promote a
//     caught-up learner on an alive node, else add a learner on the least
//     loaded alive node without a replica.
//  2. Leaving nodes. Remove learners there. Remove a voter there once the
//     shard has Voters voters on staying nodes without it, so a move never
//     lowers the voter count. Short of that a draining node keeps it (the
//     drain waits for a node that can take it), and so does a dead or
//     removed node while a spare node can replace it; with no spare, a dead
//     or removed voter goes only when the voter count is even and above
//     two (3 live of 4 tolerate no failure, 3 of 3 tolerate one). A leader
//     on a draining or removed node hands its leadership to an alive voter
//     first; a removed one only while a quorum remains without it.
//  3. Moves half done. A shard with a voter too many gives up its outgoing
//     voter: of the non-leader voters on alive nodes, the one whose node
//     holds the most replicas, the oldest (lowest id) on ties. The leader's
//     goes instead (leadership first) when its node holds two replicas
//     more, or more than the node of the newest voter; a down voter when
//     no alive one can go. A caught-up learner
//     of a shard with all its voters is promoted when it would not be the
//     one to go, else removed. Which voter goes is chosen on the replica
//     counts before the plan, never on bytes or leadership, so a move ends
//     on the node it started from while other moves shift bytes and
//     leaders.
//  4. A LearnersOnRest shard (the meta shard) keeps a learner on every
//     alive node without a voter.
//
// Then, over the shards left, in shard id order with loads updated by each
// chosen action:
//
//  5. Replica balance. Start a move (a learner, or the promotion of a meta
//     learner) from the outgoing voter's node to the least loaded alive
//     node without a voter of the shard when the first holds at least two
//     replicas more; so a move never reverses. When only the leader's node
//     holds that many more, the move starts with its leadership.
//  6. Leader balance. Hand a leadership to the alive voter whose node leads
//     the fewest shards when the leader's node leads at least two more.
//     Leader counts include the meta shard.
//  7. Byte balance, only when nothing else is planned or in flight and the
//     replica counts of alive nodes are one apart: the one move, from an
//     outgoing voter's node holding the most replicas to a node holding
//     one fewer, that shrinks their byte gap most, by at least
//     Config.MinByteGapBytes and a tenth of the mean bytes per alive node.
//     It swaps the two nodes' counts, so rule 5 has nothing to undo.
//
// Each balancing step strictly lowers the sum of squared replica counts
// (rule 5), of squared leader counts (rule 6) or of squared byte totals
// (rule 7) without raising the ones before it, so repeated plan and apply
// converge, and a balanced cluster plans nothing.
//
// # Throttles
//
// Config.MaxActions bounds a plan and Config.MaxMovesPerNode the shards at
// work on one node; actions are taken most urgent first (missing voters,
// duplicates, leaving nodes, moves half done, meta learners, then rules 5,
// 6 and 7), shard id breaking ties.
//
// # Limits
//
// Planning is stateless: a move is recognised from the shape of its shard
// (a learner, or a voter too many). When repairs that share a node with a
// move shift its counts between the move's start and its end, the end may
// drop another voter than the start meant, or a later move may put a
// replica back where one just left; the cluster still converges. Replica
// ids are taken to grow with time (the executor allocates them from a
// counter): ties keep the newer replica. Byte balance needs two nodes one
// replica apart; when all counts are equal it waits. A voter on a leaving
// node whose removal would cost the quorum, because another voter is on a
// down node, waits until that node comes back or is declared dead.
package placement
