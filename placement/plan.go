package placement

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/cavedb/cave/ring"
)

// Plan returns the next actions toward the wanted placement of c, in the
// order it chose them: most urgent goal first, then shard id. It is pure
// and deterministic: the order of c's slices does not matter, and c is not
// changed. It plans at most one action per shard (one membership change
// per shard at a time), nothing for a Busy shard, a shard whose leader is
// unknown or a shard without a quorum of reachable voters, and nothing at
// all when c or cfg fails Validate. The rules are in the package
// documentation.
func Plan(c Cluster, cfg Config) []Action {
	if c.Validate() != nil || cfg.Validate() != nil {
		return nil
	}
	p := newPlanner(c, cfg)
	views := p.views(c.Shards)
	type need struct {
		v   *view
		urg urgency
	}
	var needs []need
	var calm []*view
	for _, v := range views {
		if v.frozen {
			continue
		}
		if _, u, ok := p.repair(v); ok {
			needs = append(needs, need{v, u})
		} else if !v.waiting {
			calm = append(calm, v)
		}
	}
	// views are in shard id order, so a stable sort keeps it within a goal.
	slices.SortStableFunc(needs, func(a, b need) int { return cmp.Compare(a.urg, b.urg) })
	for _, n := range needs {
		// Earlier actions changed the loads: choose again with them.
		if a, _, ok := p.repair(n.v); ok {
			p.try(n.v, a)
		}
	}
	p.balanceReplicas(calm)
	p.balanceLeaders(calm)
	if len(p.out) == 0 && len(needs) == 0 && !p.unsettled {
		p.balanceBytes(calm)
	}
	return p.out
}

// urgency orders per-shard repairs across shards when a throttle bites.
type urgency uint8

const (
	urgVoters    urgency = iota // rule 1: below the replication factor
	urgDuplicate                // rule 2: two replicas on one node
	urgLeaving                  // rule 3: replicas or leaders on leaving nodes
	urgFinish                   // a move half done: a surplus voter or a spare learner
	urgRest                     // learners on the rest of the nodes
)

// quorum is the number of votes a Raft group of n voters needs.
func quorum(n int) int { return n/2 + 1 }

type nodeLoad struct {
	replicas, leaders int
	bytes             int64
}

// planner holds one Plan call's view of the cluster. Loads are projected:
// each chosen action updates them, so that later choices see it.
type planner struct {
	cfg     Config
	state   map[string]NodeState
	alive   []string // NodeAlive nodes, by name
	staying int      // nodes whose replicas stay: alive or down
	load    map[string]*nodeLoad
	// held is the replica count per node before this plan. Which voter a
	// move takes away is chosen on it, not on the projected loads, so that
	// the moves that a plan finishes off one node all leave that node.
	held map[string]int
	// work holds, per node, the shards at work there: in flight before
	// this plan or given an action by it (Config.MaxMovesPerNode).
	work map[string]map[ring.ShardID]bool
	// unsettled is set when a shard is Busy or waits for a learner, so
	// that loads are about to change.
	unsettled bool
	acted     map[ring.ShardID]bool
	out       []Action
}

func newPlanner(c Cluster, cfg Config) *planner {
	p := &planner{
		cfg:   cfg,
		state: make(map[string]NodeState, len(c.Nodes)),
		load:  make(map[string]*nodeLoad, len(c.Nodes)),
		work:  map[string]map[ring.ShardID]bool{},
		acted: map[ring.ShardID]bool{},
	}
	for _, n := range c.Nodes {
		p.state[n.Name] = n.State
		p.load[n.Name] = &nodeLoad{}
		if n.State == NodeAlive {
			p.alive = append(p.alive, n.Name)
		}
		if n.State.staying() {
			p.staying++
		}
	}
	slices.Sort(p.alive)
	return p
}

// stateOf returns the state of node name; an unlisted node is removed.
func (p *planner) stateOf(name string) NodeState {
	if st, ok := p.state[name]; ok {
		return st
	}
	return NodeRemoved
}

func (p *planner) ld(name string) *nodeLoad {
	l, ok := p.load[name]
	if !ok {
		l = &nodeLoad{}
		p.load[name] = l
	}
	return l
}

// cmpLoad orders nodes least loaded first: replicas, then bytes, then name.
func (p *planner) cmpLoad(a, b string) int {
	la, lb := p.ld(a), p.ld(b)
	return cmp.Or(cmp.Compare(la.replicas, lb.replicas), cmp.Compare(la.bytes, lb.bytes), cmp.Compare(a, b))
}

// view is one shard as a Plan call sees it. Replicas are sorted by id.
type view struct {
	Shard
	want   int      // voters wanted: Voters capped by the staying nodes
	good   int      // staying (alive or down) nodes holding a voter
	voters int      // voter replicas
	live   int      // voters that can vote now: on alive or draining nodes, or the leader
	leader *Replica // nil when unknown
	on     map[string]int
	// frozen: Busy, leader unknown or no quorum: no action at all.
	frozen bool
	// waiting: a learner on an alive node is catching up.
	waiting bool
}

func (p *planner) views(shards []Shard) []*view {
	vs := make([]*view, 0, len(shards))
	for _, s := range shards {
		vs = append(vs, p.newView(s))
	}
	slices.SortFunc(vs, func(a, b *view) int { return cmp.Compare(a.ID, b.ID) })
	for _, v := range vs {
		for i := range v.Replicas {
			r := &v.Replicas[i]
			if v.counted(r) {
				l := p.ld(r.Node)
				l.replicas++
				l.bytes += r.Bytes
			}
			if v.Busy {
				p.mark(r.Node, v.ID)
			}
			if v.behind(p, r) {
				p.mark(r.Node, v.ID)
				if v.leader != nil {
					p.mark(v.leader.Node, v.ID)
				}
			}
		}
		if v.leader != nil {
			p.ld(v.leader.Node).leaders++
		}
		p.unsettled = p.unsettled || v.Busy || v.waiting
	}
	p.held = make(map[string]int, len(p.load))
	for n, l := range p.load {
		p.held[n] = l.replicas
	}
	return vs
}

func (p *planner) newView(s Shard) *view {
	s.Replicas = slices.Clone(s.Replicas)
	slices.SortFunc(s.Replicas, func(a, b Replica) int { return cmp.Compare(a.ID, b.ID) })
	v := &view{Shard: s, want: min(s.Voters, p.staying), on: map[string]int{}}
	good := map[string]bool{}
	for i := range v.Replicas {
		r := &v.Replicas[i]
		v.on[r.Node]++
		st := p.stateOf(r.Node)
		if r.Role == RoleVoter {
			v.voters++
			if st.staying() {
				good[r.Node] = true
			}
			if st == NodeAlive || st == NodeDraining {
				v.live++
			}
			if r.ID == s.Leader && st != NodeDown && st != NodeDead {
				v.leader = r
			}
		}
		v.waiting = v.waiting || v.behind(p, r)
	}
	if v.leader != nil && p.stateOf(v.leader.Node) == NodeRemoved {
		v.live++ // it reported itself leader, so it is up
	}
	v.good = len(good)
	v.frozen = s.Busy || v.leader == nil || v.live < quorum(v.voters)
	return v
}

// behind reports whether r is a learner on an alive node still catching up.
func (v *view) behind(p *planner, r *Replica) bool {
	return r.Role == RoleLearner && !r.CaughtUp && p.stateOf(r.Node) == NodeAlive
}

// counted reports whether r counts in replica and byte balance: all but
// the learners of a LearnersOnRest shard.
func (v *view) counted(r *Replica) bool {
	return !(v.LearnersOnRest && r.Role == RoleLearner)
}

// newest returns the highest voter id: the voter added last, as replica
// ids grow.
func (v *view) newest() uint64 {
	var id uint64
	for _, r := range v.Replicas {
		if r.Role == RoleVoter {
			id = max(id, r.ID)
		}
	}
	return id
}

// size is the data a new replica of the shard receives.
func (v *view) size() int64 {
	var n int64
	for _, r := range v.Replicas {
		n = max(n, r.Bytes)
	}
	return n
}

// keepsQuorum reports whether removing r leaves the shard a quorum of
// voters that can vote now.
func (v *view) keepsQuorum(p *planner, r *Replica) bool {
	if r.Role == RoleLearner {
		return true
	}
	live := v.live
	if st := p.stateOf(r.Node); st == NodeAlive || st == NodeDraining || r == v.leader {
		live--
	}
	return live >= quorum(v.voters-1)
}

// replicas returns pointers to the replicas that match keep, by id.
func (v *view) replicas(keep func(*Replica) bool) []*Replica {
	var rs []*Replica
	for i := range v.Replicas {
		if keep(&v.Replicas[i]) {
			rs = append(rs, &v.Replicas[i])
		}
	}
	return rs
}

// outgoing returns the replica that a move of v takes away: of the voters
// on alive nodes other than the leader, and extra when not nil, the one
// whose node holds the most replicas, the oldest (lowest id) on ties. It
// depends on neither bytes nor leadership, so the choice holds from the
// start of a move to its end while other moves shift bytes and leaders,
// and a newcomer (the highest id) is never chosen while an older voter's
// node holds as many. Nil when there is none.
func (p *planner) outgoing(v *view, extra *Replica) *Replica {
	var best *Replica
	for _, r := range append(v.replicas(func(r *Replica) bool {
		return r.Role == RoleVoter && r != v.leader && p.stateOf(r.Node) == NodeAlive
	}), extra) {
		if r != nil && (best == nil || p.held[r.Node] > p.held[best.Node] ||
			(p.held[r.Node] == p.held[best.Node] && r.ID < best.ID)) {
			best = r
		}
	}
	return best
}

// spares returns the alive nodes holding no replica of v, least loaded
// first.
func (p *planner) spares(v *view) []string {
	var ns []string
	for _, n := range p.alive {
		if v.on[n] == 0 {
			ns = append(ns, n)
		}
	}
	slices.SortFunc(ns, p.cmpLoad)
	return ns
}

// leaderTarget returns the voter on an alive node, other than the leader
// and not on node not, that leads the fewest shards; nil when none.
func (p *planner) leaderTarget(v *view, not string) *Replica {
	var best *Replica
	for _, r := range v.replicas(func(r *Replica) bool {
		return r.Role == RoleVoter && r != v.leader && r.Node != not && r.Node != v.leader.Node && p.stateOf(r.Node) == NodeAlive
	}) {
		if best == nil || cmp.Or(cmp.Compare(p.ld(r.Node).leaders, p.ld(best.Node).leaders), cmp.Compare(r.Node, best.Node)) < 0 {
			best = r
		}
	}
	return best
}

// repair returns the shard's most urgent action of rules 1 to 3, the next
// step of a move half done, or a missing learner of a LearnersOnRest shard.
// It returns false when there is none, and when a learner is catching up.
func (p *planner) repair(v *view) (Action, urgency, bool) {
	if a, ok := p.dedupe(v); ok {
		return a, urgDuplicate, true
	}
	if v.waiting {
		return Action{}, 0, false
	}
	if a, ok := p.fillVoters(v); ok {
		return a, urgVoters, true
	}
	if a, ok := p.evacuate(v); ok {
		return a, urgLeaving, true
	}
	if a, ok := p.finishMove(v); ok {
		return a, urgFinish, true
	}
	if a, ok := p.restLearner(v); ok {
		return a, urgRest, true
	}
	return Action{}, 0, false
}

func act(v *view, k ActionKind, r *Replica, node, reason string) Action {
	a := Action{Kind: k, Shard: v.ID, Node: node, Reason: reason}
	if r != nil {
		a.Replica, a.Node = r.ID, r.Node
	}
	return a
}

// dedupe removes one of two replicas on one node: a learner first, never
// the leader, never at the cost of the quorum (rule 2).
func (p *planner) dedupe(v *view) (Action, bool) {
	var crowded []string
	for n, k := range v.on {
		if k > 1 {
			crowded = append(crowded, n)
		}
	}
	slices.Sort(crowded)
	for _, n := range crowded {
		rs := v.replicas(func(r *Replica) bool { return r.Node == n && r != v.leader })
		// Learners first, then the newest replica.
		slices.SortFunc(rs, func(a, b *Replica) int { return cmp.Or(cmp.Compare(b.Role, a.Role), cmp.Compare(b.ID, a.ID)) })
		for _, r := range rs {
			if v.keepsQuorum(p, r) {
				return act(v, RemoveReplica, r, "", fmt.Sprintf("%d replicas on %s, one is enough", v.on[n], n)), true
			}
		}
	}
	return Action{}, false
}

// fillVoters promotes a caught-up learner or adds one while the shard has
// fewer voters on staying nodes than it wants (rule 1).
func (p *planner) fillVoters(v *view) (Action, bool) {
	if v.good >= v.want {
		return Action{}, false
	}
	short := fmt.Sprintf("%d of %d voters%s", v.good, v.want, p.gone(v))
	ls := v.replicas(func(r *Replica) bool {
		return r.Role == RoleLearner && r.CaughtUp && v.on[r.Node] == 1 && p.stateOf(r.Node) == NodeAlive
	})
	if len(ls) > 0 {
		l := slices.MinFunc(ls, func(a, b *Replica) int { return p.cmpLoad(a.Node, b.Node) })
		return act(v, Promote, l, "", fmt.Sprintf("%s; the learner on %s has caught up", short, l.Node)), true
	}
	spares := p.spares(v)
	if len(spares) == 0 {
		return Action{}, false
	}
	return p.firstFit(v, spares, func(n string) Action {
		return act(v, AddLearner, nil, n, fmt.Sprintf("%s; %s is the least loaded node without a replica (holds %d)", short, n, p.ld(n).replicas))
	}), true
}

// gone names the leaving nodes holding voters of v, for reasons.
func (p *planner) gone(v *view) string {
	s := ""
	for _, r := range v.replicas(func(r *Replica) bool { return r.Role == RoleVoter && p.stateOf(r.Node).leaving() }) {
		s += fmt.Sprintf(", %s is %s", r.Node, p.stateOf(r.Node))
	}
	return s
}

// evacuate removes replicas from leaving nodes and moves leaderships off
// them (rule 3).
func (p *planner) evacuate(v *view) (Action, bool) {
	if ls := v.replicas(func(r *Replica) bool { return r.Role == RoleLearner && p.stateOf(r.Node).leaving() }); len(ls) > 0 {
		return act(v, RemoveReplica, ls[0], "", fmt.Sprintf("learner on %s node %s", p.stateOf(ls[0].Node), ls[0].Node)), true
	}
	for _, r := range v.replicas(func(r *Replica) bool { return r.Role == RoleVoter && r != v.leader && p.stateOf(r.Node).leaving() }) {
		if why, ok := p.mayRemove(v, r); ok {
			return act(v, RemoveReplica, r, "", why), true
		}
	}
	// A removed node counts as up only while it leads: hand its leadership
	// over only when a quorum remains without it.
	if st := p.stateOf(v.leader.Node); st.leaving() && (st != NodeRemoved || v.live-1 >= quorum(v.voters)) {
		if t := p.leaderTarget(v, ""); t != nil {
			return act(v, TransferLeader, t, "", fmt.Sprintf("leader's node %s is %s", v.leader.Node, st)), true
		}
	}
	return Action{}, false
}

// mayRemove reports whether the voter r on a leaving node may go now, and
// why. It may once the shard has Voters voters on staying nodes without it.
// Short of that, a draining node keeps it (a drain never lowers the voter
// count; the meta shard's may go while three voters stay), and so does a
// dead or removed node while a spare node can take its place. With no spare, a dead or removed voter goes only when the
// voter count is even and above two: 3 live of 4 tolerate no failure, 3 of
// 3 tolerate one.
func (p *planner) mayRemove(v *view, r *Replica) (string, bool) {
	st := p.stateOf(r.Node)
	switch {
	case !v.keepsQuorum(p, r):
		return "", false
	case v.good >= v.Voters:
		return fmt.Sprintf("%s is %s and the shard has %d voters without it", r.Node, st, v.good), true
	case st == NodeDraining && v.LearnersOnRest && len(p.spares(v)) == 0 && v.good >= min(3, v.Voters):
		// The meta shard wants a voter on as many nodes as it may (up to
		// Voters): a drain shrinks it, so long as three voters stay.
		return fmt.Sprintf("%s is draining, no node can take its place and %d voters stay", r.Node, v.good), true
	case st == NodeDraining || len(p.spares(v)) > 0:
		return "", false
	case v.voters%2 == 0 && v.voters > 2:
		return fmt.Sprintf("%s is %s and no node can replace it; %d voters without it tolerate more failures than %d with it", r.Node, st, v.voters-1, v.voters), true
	}
	return "", false
}

// drops returns the voter that a shard with a voter too many (counting
// extra, a learner about to be promoted, when not nil) gives up: its
// outgoing voter, or the leader's when the leader's node holds at least two
// replicas more, or more than the node of the newest voter, which a move
// that started from the leader's node has just promoted. Short of that the
// leadership stays, so that load shifts from other moves cannot hand it
// back and forth. Nil when there is none.
func (p *planner) drops(v *view, extra *Replica) *Replica {
	out := p.outgoing(v, extra)
	if p.stateOf(v.leader.Node) != NodeAlive {
		return out
	}
	newest := v.newest()
	if extra != nil {
		newest = max(newest, extra.ID)
	}
	lead := p.held[v.leader.Node]
	if out == nil || lead >= p.held[out.Node]+2 || (lead > p.held[out.Node] && out.ID == newest) {
		return v.leader
	}
	return out
}

// finishMove takes the next step of a move half done. A shard with more
// voters than it wants gives up the voter that drops returns, the
// leader's after handing its leadership over. A caught-up learner of a
// shard with all its voters is promoted when it would not be the one to
// go, else removed.
func (p *planner) finishMove(v *view) (Action, bool) {
	if v.good > v.want {
		switch d := p.drops(v, nil); {
		case d == nil:
		case d == v.leader:
			if t := p.leaderTarget(v, ""); t != nil {
				return act(v, TransferLeader, t, "", fmt.Sprintf("%d voters, %d wanted: the leader's node %s holds the most replicas (%d) and gives its replica up", v.good, v.want, d.Node, p.ld(d.Node).replicas)), true
			}
		case v.keepsQuorum(p, d):
			return act(v, RemoveReplica, d, "", fmt.Sprintf("%d voters, %d wanted; %s holds the most replicas (%d)", v.good, v.want, d.Node, p.ld(d.Node).replicas)), true
		}
		// No alive voter can go: a down one may, being beyond the count.
		if ds := v.replicas(func(r *Replica) bool { return r.Role == RoleVoter && p.stateOf(r.Node) == NodeDown }); len(ds) > 0 {
			return act(v, RemoveReplica, ds[0], "", fmt.Sprintf("%d voters, %d wanted, and no alive voter can go", v.good, v.want)), true
		}
		return Action{}, false
	}
	if v.LearnersOnRest {
		return Action{}, false
	}
	ls := v.replicas(func(r *Replica) bool {
		return r.Role == RoleLearner && r.CaughtUp && v.on[r.Node] == 1 && p.stateOf(r.Node) == NodeAlive
	})
	if len(ls) == 0 {
		return Action{}, false
	}
	l := slices.MinFunc(ls, func(a, b *Replica) int { return p.cmpLoad(a.Node, b.Node) })
	if d := p.drops(v, l); d != l {
		return act(v, Promote, l, "", fmt.Sprintf("finishes a move: replicas %s=%d %s=%d", d.Node, p.ld(d.Node).replicas, l.Node, p.ld(l.Node).replicas)), true
	}
	return act(v, RemoveReplica, l, "", fmt.Sprintf("the learner on %s would not even out replicas: no voter's node holds as many (%d)", l.Node, p.ld(l.Node).replicas)), true
}

// restLearner adds the missing learner of a LearnersOnRest shard on an
// alive node.
func (p *planner) restLearner(v *view) (Action, bool) {
	if !v.LearnersOnRest {
		return Action{}, false
	}
	var ns []string
	for _, n := range p.alive {
		if v.on[n] == 0 {
			ns = append(ns, n)
		}
	}
	if len(ns) == 0 {
		return Action{}, false
	}
	return p.firstFit(v, ns, func(n string) Action {
		return act(v, AddLearner, nil, n, "every alive node keeps a learner of this shard")
	}), true
}

// balanceReplicas starts moves from the node of a shard's outgoing voter
// to the least loaded alive node without a voter of the shard, when the
// first holds at least two more replicas (rule 4). When only the leader's
// node holds that many more, the move starts with its leadership.
func (p *planner) balanceReplicas(calm []*view) {
	for _, v := range calm {
		if p.full() {
			return
		}
		// A LearnersOnRest shard (the meta shard) has a replica on every
		// node already: moving one of its voters for balance would take a
		// node's only copy away for a while, and with it the node's local
		// view of the cluster. Its voters move only off leaving nodes.
		if p.acted[v.ID] || v.LearnersOnRest {
			continue
		}
		var dsts []string
		for _, n := range p.alive {
			if v.on[n] == 0 || (v.LearnersOnRest && len(v.replicas(func(r *Replica) bool { return r.Node == n && r.Role == RoleVoter })) == 0) {
				dsts = append(dsts, n)
			}
		}
		if len(dsts) == 0 {
			continue
		}
		slices.SortFunc(dsts, p.cmpLoad)
		// The destination: the least loaded that the throttle allows.
		dst := p.firstFit(v, dsts, func(n string) Action { return p.moveTo(v, n, "") }).Node
		lead := v.leader.Node
		switch out := p.outgoing(v, nil); {
		case out != nil && p.ld(out.Node).replicas-p.ld(dst).replicas >= 2:
			p.try(v, p.moveTo(v, dst, out.Node))
		case p.stateOf(lead) != NodeAlive || p.ld(lead).replicas-p.ld(dst).replicas < 2:
		case p.leaderTarget(v, "") != nil:
			p.try(v, act(v, TransferLeader, p.leaderTarget(v, ""), "", fmt.Sprintf("replicas %s=%d %s=%d: the leader's node gives its leadership up first", lead, p.ld(lead).replicas, dst, p.ld(dst).replicas)))
		default: // the leader is the only voter: finishMove hands its leadership over
			p.try(v, p.moveTo(v, dst, lead))
		}
	}
}

// moveTo returns the first step of a move of v from node src (empty while
// only the destination is being chosen) to node dst: a new learner there,
// or the promotion of the learner that a LearnersOnRest shard keeps there.
func (p *planner) moveTo(v *view, dst, src string) Action {
	why := ""
	if src != "" {
		why = fmt.Sprintf("replicas %s=%d %s=%d", src, p.ld(src).replicas, dst, p.ld(dst).replicas)
	}
	if ls := v.replicas(func(r *Replica) bool { return r.Node == dst }); len(ls) > 0 {
		return act(v, Promote, ls[0], "", why)
	}
	return act(v, AddLearner, nil, dst, why)
}

// balanceLeaders hands a leadership to the alive voter leading the fewest
// shards when the leader's node leads at least two more (rule 5).
func (p *planner) balanceLeaders(calm []*view) {
	for _, v := range calm {
		if p.full() {
			return
		}
		if p.acted[v.ID] || p.stateOf(v.leader.Node) != NodeAlive {
			continue
		}
		// A shard with a voter too many that it cannot drop yet keeps the
		// leadership off the voter to drop, or finishMove would hand it
		// back.
		not := ""
		if out := p.outgoing(v, nil); v.good > v.want && out != nil {
			not = out.Node
		}
		t := p.leaderTarget(v, not)
		if t == nil {
			continue
		}
		from, to := p.ld(v.leader.Node).leaders, p.ld(t.Node).leaders
		if from-to >= 2 {
			p.try(v, act(v, TransferLeader, t, "", fmt.Sprintf("leaders %s=%d %s=%d", v.leader.Node, from, t.Node, to)))
		}
	}
}

// balanceBytes starts the one move that shrinks the byte gap between a node
// holding one replica more than another most (rule 6), when it shrinks it
// by at least MinByteGapBytes and a tenth of the mean.
func (p *planner) balanceBytes(calm []*view) {
	if len(p.alive) < 2 {
		return
	}
	var total int64
	hi, lo := p.ld(p.alive[0]).replicas, p.ld(p.alive[0]).replicas
	for _, n := range p.alive {
		l := p.ld(n)
		total += l.bytes
		hi, lo = max(hi, l.replicas), min(lo, l.replicas)
	}
	if hi != lo+1 {
		return // all even (a move would break it) or not even yet
	}
	least := max(p.cfg.MinByteGapBytes, total/int64(len(p.alive))/10, 1)
	var (
		best   Action
		bestBy int64
		bv     *view
	)
	for _, v := range calm {
		if v.LearnersOnRest {
			continue
		}
		r := p.outgoing(v, nil)
		if r == nil || p.ld(r.Node).replicas != hi {
			continue
		}
		for _, dst := range p.alive {
			if v.on[dst] != 0 || p.ld(dst).replicas != lo {
				continue
			}
			// The source loses its replica, the destination gets a copy
			// of the largest.
			from, to := p.ld(r.Node).bytes, p.ld(dst).bytes
			by := from - to - abs(from-r.Bytes-to-v.size())
			if by >= least && by > bestBy {
				bestBy, bv = by, v
				best = act(v, AddLearner, nil, dst, fmt.Sprintf("%s holds %s, %s holds %s; moving %s shrinks the gap by %s",
					r.Node, formatBytes(from), dst, formatBytes(to), formatBytes(v.size()), formatBytes(by)))
			}
		}
	}
	if bv != nil {
		p.try(bv, best)
	}
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

// full reports whether the plan holds MaxActions actions.
func (p *planner) full() bool { return p.cfg.MaxActions > 0 && len(p.out) >= p.cfg.MaxActions }

// touches returns the nodes an action loads (Config.MaxMovesPerNode).
func (p *planner) touches(v *view, a Action) []string {
	switch a.Kind {
	case AddLearner, TransferLeader:
		return []string{a.Node, v.leader.Node}
	}
	return []string{a.Node}
}

// fits reports whether shard id may touch nodes within MaxMovesPerNode.
func (p *planner) fits(id ring.ShardID, nodes ...string) bool {
	if p.cfg.MaxMovesPerNode == 0 {
		return true
	}
	for _, n := range nodes {
		if w := p.work[n]; !w[id] && len(w) >= p.cfg.MaxMovesPerNode {
			return false
		}
	}
	return true
}

// firstFit returns the action that mk makes for the first of nodes (in
// order of preference, at least one) that fits within MaxMovesPerNode,
// else the one for the first node, which try will refuse.
func (p *planner) firstFit(v *view, nodes []string, mk func(node string) Action) Action {
	for _, n := range nodes {
		if a := mk(n); p.fits(v.ID, p.touches(v, a)...) {
			return a
		}
	}
	return mk(nodes[0])
}

func (p *planner) mark(node string, id ring.ShardID) {
	w, ok := p.work[node]
	if !ok {
		w = map[ring.ShardID]bool{}
		p.work[node] = w
	}
	w[id] = true
}

// try adds a to the plan when the throttles allow, and projects its effect
// on the loads.
func (p *planner) try(v *view, a Action) bool {
	nodes := p.touches(v, a)
	if p.full() || p.acted[v.ID] || !p.fits(v.ID, nodes...) {
		return false
	}
	for _, n := range nodes {
		p.mark(n, v.ID)
	}
	p.acted[v.ID] = true
	p.out = append(p.out, a)
	var r *Replica
	for i := range v.Replicas {
		if v.Replicas[i].ID == a.Replica {
			r = &v.Replicas[i]
		}
	}
	l := p.ld(a.Node)
	switch a.Kind {
	case AddLearner:
		if !v.LearnersOnRest {
			l.replicas++
			l.bytes += v.size()
		}
	case Promote:
		if v.LearnersOnRest {
			l.replicas++
			l.bytes += r.Bytes
		}
	case RemoveReplica:
		if v.counted(r) {
			l.replicas--
			l.bytes -= r.Bytes
		}
	case TransferLeader:
		l.leaders++
		p.ld(v.leader.Node).leaders--
	}
	return true
}

// formatBytes renders n in binary units for reasons: "512 B", "1.5 GiB".
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit && n > -unit {
		return fmt.Sprintf("%d B", n)
	}
	f, i := float64(n), -1
	for (f >= unit || f <= -unit) && i < 5 {
		f /= unit
		i++
	}
	s := fmt.Sprintf("%.1f", f)
	if len(s) > 2 && s[len(s)-2:] == ".0" {
		s = s[:len(s)-2]
	}
	return s + " " + []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}[i]
}
