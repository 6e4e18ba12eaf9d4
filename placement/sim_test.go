package placement

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/cavedb/cave/ring"
)

// sim is a cluster and a toy executor: it applies actions the way the
// reconciler would, catches learners up one round after they are added, and
// elects a leader where Raft would.
type sim struct {
	c Cluster
	// next is the next replica id handed out; ids are never reused.
	next uint64
}

func newSim(c Cluster) *sim {
	s := &sim{c: c, next: 1}
	for _, sh := range c.Shards {
		for _, r := range sh.Replicas {
			s.next = max(s.next, r.ID+1)
		}
	}
	return s
}

func (s *sim) state(name string) NodeState {
	for _, n := range s.c.Nodes {
		if n.Name == name {
			return n.State
		}
	}
	return NodeRemoved
}

func (s *sim) shard(id ring.ShardID) *Shard {
	for i := range s.c.Shards {
		if s.c.Shards[i].ID == id {
			return &s.c.Shards[i]
		}
	}
	return nil
}

// apply catches up every learner on a reachable node, then applies acts,
// then elects leaders. It returns the ids of the shards it changed.
func (s *sim) apply(acts []Action) ([]ring.ShardID, error) {
	var changed []ring.ShardID
	for i := range s.c.Shards {
		sh := &s.c.Shards[i]
		for j := range sh.Replicas {
			r := &sh.Replicas[j]
			if st := s.state(r.Node); r.Role == RoleLearner && !r.CaughtUp && (st == NodeAlive || st == NodeDraining) {
				r.CaughtUp = true
				changed = append(changed, sh.ID)
			}
		}
	}
	for _, a := range acts {
		sh := s.shard(a.Shard)
		if sh == nil {
			return nil, fmt.Errorf("%s: no such shard", a)
		}
		changed = append(changed, sh.ID)
		i := slices.IndexFunc(sh.Replicas, func(r Replica) bool { return r.ID == a.Replica })
		switch {
		case a.Kind == AddLearner:
			var size Replica
			for _, r := range sh.Replicas {
				if r.Bytes > size.Bytes {
					size = r
				}
			}
			sh.Replicas = append(sh.Replicas, Replica{ID: s.next, Node: a.Node, Role: RoleLearner, Bytes: size.Bytes, Keys: size.Keys})
			s.next++
		case i < 0:
			return nil, fmt.Errorf("%s: no such replica", a)
		case a.Kind == Promote:
			sh.Replicas[i].Role = RoleVoter
		case a.Kind == RemoveReplica:
			if sh.Leader == a.Replica {
				return nil, fmt.Errorf("%s: removes the leader", a)
			}
			sh.Replicas = slices.Delete(sh.Replicas, i, i+1)
		case a.Kind == TransferLeader:
			sh.Leader = a.Replica
		}
	}
	for i := range s.c.Shards {
		if s.elect(&s.c.Shards[i]) {
			changed = append(changed, s.c.Shards[i].ID)
		}
	}
	slices.Sort(changed)
	return slices.Compact(changed), nil
}

// elect gives a shard whose leader is gone the voter with the lowest id on
// an alive node (else on a draining one), when a quorum can vote.
func (s *sim) elect(sh *Shard) bool {
	i := slices.IndexFunc(sh.Replicas, func(r Replica) bool { return r.ID == sh.Leader })
	if i >= 0 && sh.Replicas[i].Role == RoleVoter {
		if st := s.state(sh.Replicas[i].Node); st != NodeDown && st != NodeDead {
			return false
		}
	}
	voters, live := 0, 0
	var alive, draining uint64
	for _, r := range sh.Replicas {
		if r.Role != RoleVoter {
			continue
		}
		voters++
		switch s.state(r.Node) {
		case NodeAlive:
			live++
			if alive == 0 || r.ID < alive {
				alive = r.ID
			}
		case NodeDraining:
			live++
			if draining == 0 || r.ID < draining {
				draining = r.ID
			}
		}
	}
	if live < voters/2+1 {
		return false
	}
	sh.Leader = cmp.Or(alive, draining)
	return true
}

// catching reports whether a learner on an alive node is still behind.
func (s *sim) catching() bool {
	for _, sh := range s.c.Shards {
		for _, r := range sh.Replicas {
			if r.Role == RoleLearner && !r.CaughtUp && s.state(r.Node) == NodeAlive {
				return true
			}
		}
	}
	return false
}

// stats are one shard's counts, computed naively for the checks.
type stats struct {
	good    int  // distinct alive or down nodes holding a voter
	quorum  bool // a known leader and a quorum of voters on alive or draining nodes (or leading)
	solid   bool // quorum without counting a leader on a removed node
	perNode map[string]int
}

func (s *sim) stats(sh Shard) stats {
	st := stats{perNode: map[string]int{}}
	good := map[string]bool{}
	voters, live, removedLeader, leader := 0, 0, 0, false
	for _, r := range sh.Replicas {
		st.perNode[r.Node]++
		if r.Role != RoleVoter {
			continue
		}
		voters++
		ns := s.state(r.Node)
		if ns == NodeAlive || ns == NodeDown {
			good[r.Node] = true
		}
		if ns == NodeAlive || ns == NodeDraining || (r.ID == sh.Leader && ns == NodeRemoved) {
			live++
		}
		if r.ID == sh.Leader && ns == NodeRemoved {
			removedLeader = 1
		}
		if r.ID == sh.Leader && ns != NodeDown && ns != NodeDead {
			leader = true
		}
	}
	st.good = len(good)
	st.quorum = leader && live >= voters/2+1
	st.solid = leader && live-removedLeader >= voters/2+1
	return st
}

// wanted is the shard's voter target: Voters capped by alive and down nodes.
func (s *sim) wanted(sh Shard) int {
	n := 0
	for _, nd := range s.c.Nodes {
		if nd.State == NodeAlive || nd.State == NodeDown {
			n++
		}
	}
	return min(sh.Voters, n)
}

// checkPlan checks the promises Plan makes about one plan of s.c.
func (s *sim) checkPlan(acts []Action) error {
	var errs []error
	seen := map[ring.ShardID]bool{}
	for _, a := range acts {
		bad := func(why string) { errs = append(errs, fmt.Errorf("%s: %s", a, why)) }
		sh := s.shard(a.Shard)
		if sh == nil {
			bad("no such shard")
			continue
		}
		if seen[a.Shard] {
			bad("second action for the shard")
		}
		seen[a.Shard] = true
		if sh.Busy {
			bad("shard is busy")
		}
		i := slices.IndexFunc(sh.Replicas, func(r Replica) bool { return r.ID == a.Replica })
		var r Replica
		if i >= 0 {
			r = sh.Replicas[i]
		}
		switch {
		case a.Kind == AddLearner:
			if s.state(a.Node) != NodeAlive {
				bad("node is not alive")
			}
			if slices.ContainsFunc(sh.Replicas, func(r Replica) bool { return r.Node == a.Node }) {
				bad("node already holds a replica")
			}
		case i < 0:
			bad("no such replica")
		case r.Node != a.Node:
			bad("replica is on " + r.Node)
		case a.Kind == Promote && (r.Role != RoleLearner || !r.CaughtUp || s.state(r.Node) != NodeAlive):
			bad("promotes a replica that is not a caught-up learner on an alive node")
		case a.Kind == RemoveReplica && r.ID == sh.Leader:
			bad("removes the leader")
		case a.Kind == TransferLeader && (r.Role != RoleVoter || r.ID == sh.Leader || s.state(r.Node) != NodeAlive):
			bad("leadership to a replica that is not another voter on an alive node")
		}
	}
	return errors.Join(errs...)
}

// checkStep checks that applying a plan to before kept every shard's
// quorum and voters, and made no node hold two replicas of a shard.
func checkStep(before, after *sim) error {
	var errs []error
	for _, sh := range before.c.Shards {
		b, a := before.stats(sh), after.stats(*after.shard(sh.ID))
		if b.quorum && !a.quorum {
			errs = append(errs, fmt.Errorf("shard %d lost its quorum", sh.ID))
		}
		if want := min(before.wanted(sh), b.good); a.good < want {
			errs = append(errs, fmt.Errorf("shard %d: %d voters on staying nodes, had %d, wants %d", sh.ID, a.good, b.good, before.wanted(sh)))
		}
		for n, k := range a.perNode {
			if k > max(1, b.perNode[n]) {
				errs = append(errs, fmt.Errorf("shard %d: %d replicas on %s", sh.ID, k, n))
			}
		}
	}
	return errors.Join(errs...)
}

func (s *sim) clone() *sim {
	c := Cluster{Nodes: slices.Clone(s.c.Nodes), Shards: slices.Clone(s.c.Shards)}
	for i := range c.Shards {
		c.Shards[i].Replicas = slices.Clone(c.Shards[i].Replicas)
	}
	return &sim{c: c, next: s.next}
}

// balance is one node's load as the planner counts it.
type balance struct {
	replicas, leaders int
	bytes             int64
}

func (s *sim) balance() map[string]balance {
	b := map[string]balance{}
	for _, sh := range s.c.Shards {
		for _, r := range sh.Replicas {
			nb := b[r.Node]
			if !(sh.LearnersOnRest && r.Role == RoleLearner) {
				nb.replicas++
				nb.bytes += r.Bytes
			}
			if r.ID == sh.Leader {
				nb.leaders++
			}
			b[r.Node] = nb
		}
	}
	return b
}

// formatBalance prints one line per node: state, replicas, leaders, bytes.
func (s *sim) formatBalance() string {
	b := s.balance()
	var out strings.Builder
	tw := tabwriter.NewWriter(&out, 0, 0, 1, ' ', 0)
	fmt.Fprintln(tw, "node\tstate\treplicas\tleaders\tbytes")
	names := make([]string, 0, len(s.c.Nodes))
	for _, n := range s.c.Nodes {
		names = append(names, n.Name)
	}
	for n := range b {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", n, s.state(n), b[n].replicas, b[n].leaders, formatBytes(b[n].bytes))
	}
	_ = tw.Flush()
	return out.String()
}

// The script language of testdata/*.txt, one line per node or shard:
//
//	node n1 alive
//	shard 1 voters=3 leader=1 [rest] [busy]: 1@n1=10MiB 2@n2 3@n3/learner 4@n4/behind
//	shards 1-16 voters=3 nodes=n1,n2,n3 [bytes=1MiB] [lead=n1] [rest]
//
// A replica is id@node, a voter unless /learner (caught up) or /behind (a
// learner still catching up), with =size for its bytes. "shards" makes
// shards from-to with voters on nodes rotated by shard id (replica ids
// 1..voters) and the leader on the first, or on lead's node.

func (s *sim) update(text string) error {
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		var err error
		switch f[0] {
		case "node":
			err = s.setNode(f[1:])
		case "shard":
			err = s.setShard(line)
		case "shards":
			err = s.makeShards(f[1:])
		default:
			err = fmt.Errorf("unknown line %q", line)
		}
		if err != nil {
			return fmt.Errorf("%q: %w", line, err)
		}
	}
	slices.SortFunc(s.c.Nodes, func(a, b Node) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(s.c.Shards, func(a, b Shard) int { return cmp.Compare(a.ID, b.ID) })
	s.next = max(s.next, newSim(s.c).next)
	return s.c.Validate()
}

func parseState(word string) (NodeState, error) {
	for st := NodeAlive; st <= NodeRemoved; st++ {
		if st.String() == word {
			return st, nil
		}
	}
	return 0, fmt.Errorf("unknown node state %q", word)
}

func (s *sim) setNode(f []string) error {
	if len(f) != 2 {
		return errors.New("want: node NAME STATE")
	}
	st, err := parseState(f[1])
	if err != nil {
		return err
	}
	if i := slices.IndexFunc(s.c.Nodes, func(n Node) bool { return n.Name == f[0] }); i >= 0 {
		s.c.Nodes[i].State = st
	} else {
		s.c.Nodes = append(s.c.Nodes, Node{Name: f[0], State: st})
	}
	return nil
}

// putShard adds sh or replaces the shard with its id.
func (s *sim) putShard(sh Shard) {
	if old := s.shard(sh.ID); old != nil {
		*old = sh
	} else {
		s.c.Shards = append(s.c.Shards, sh)
	}
}

func (s *sim) setShard(line string) error {
	head, reps, ok := strings.Cut(line, ":")
	if !ok {
		return errors.New("want: shard ID voters=N [leader=ID] [rest] [busy]: REPLICAS")
	}
	f := strings.Fields(head)[1:]
	id, err := strconv.ParseUint(f[0], 10, 64)
	if err != nil {
		return err
	}
	sh := Shard{ID: ring.ShardID(id)}
	for _, kv := range f[1:] {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "voters":
			sh.Voters, err = strconv.Atoi(v)
		case "leader":
			sh.Leader, err = strconv.ParseUint(v, 10, 64)
		case "rest":
			sh.LearnersOnRest = true
		case "busy":
			sh.Busy = true
		default:
			err = fmt.Errorf("unknown shard field %q", kv)
		}
		if err != nil {
			return err
		}
	}
	for _, tok := range strings.Fields(reps) {
		r, err := parseReplica(tok)
		if err != nil {
			return err
		}
		sh.Replicas = append(sh.Replicas, r)
	}
	s.putShard(sh)
	return nil
}

func parseReplica(tok string) (Replica, error) {
	var r Replica
	tok, size, sized := strings.Cut(tok, "=")
	if sized {
		n, err := parseSize(size)
		if err != nil {
			return r, err
		}
		r.Bytes = n
	}
	tok, role, _ := strings.Cut(tok, "/")
	switch role {
	case "":
	case "learner":
		r.Role, r.CaughtUp = RoleLearner, true
	case "behind":
		r.Role = RoleLearner
	default:
		return r, fmt.Errorf("unknown role %q", role)
	}
	id, node, ok := strings.Cut(tok, "@")
	if !ok {
		return r, fmt.Errorf("want ID@NODE, got %q", tok)
	}
	var err error
	r.ID, err = strconv.ParseUint(id, 10, 64)
	r.Node = node
	return r, err
}

var units = []struct {
	suffix string
	n      int64
}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}

func parseSize(s string) (int64, error) {
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseInt(num, 10, 64)
			return n * u.n, err
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

func formatSize(n int64) string {
	for _, u := range units {
		if n >= u.n && n%u.n == 0 {
			return strconv.FormatInt(n/u.n, 10) + u.suffix
		}
	}
	return "0"
}

func (s *sim) makeShards(f []string) error {
	if len(f) < 1 {
		return errors.New("want: shards FROM-TO voters=N nodes=A,B,...")
	}
	from, to, _ := strings.Cut(f[0], "-")
	lo, err1 := strconv.Atoi(from)
	hi, err2 := strconv.Atoi(to)
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	var (
		voters     int
		nodes      []string
		bytes      int64
		lead       string
		rest       bool
		err        error
		leadOnNode bool
	)
	for _, kv := range f[1:] {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "voters":
			voters, err = strconv.Atoi(v)
		case "nodes":
			nodes = strings.Split(v, ",")
		case "bytes":
			bytes, err = parseSize(v)
		case "lead":
			lead, leadOnNode = v, true
		case "rest":
			rest = true
		default:
			err = fmt.Errorf("unknown shards field %q", kv)
		}
		if err != nil {
			return err
		}
	}
	if voters < 1 || voters > len(nodes) {
		return fmt.Errorf("voters=%d on %d nodes", voters, len(nodes))
	}
	for id := lo; id <= hi; id++ {
		sh := Shard{ID: ring.ShardID(id), Voters: voters, LearnersOnRest: rest, Leader: 1}
		for j := range voters {
			n := nodes[(id-lo+j)%len(nodes)]
			sh.Replicas = append(sh.Replicas, Replica{ID: uint64(j + 1), Node: n, Bytes: bytes})
			if leadOnNode && n == lead {
				sh.Leader = uint64(j + 1)
			}
		}
		s.putShard(sh)
	}
	return nil
}

// show prints the cluster in the script language.
func (s *sim) show() string {
	var out strings.Builder
	for _, n := range s.c.Nodes {
		fmt.Fprintf(&out, "node %s %s\n", n.Name, n.State)
	}
	for _, sh := range s.c.Shards {
		out.WriteString(formatShard(sh))
	}
	return out.String()
}

func formatShard(sh Shard) string {
	var out strings.Builder
	fmt.Fprintf(&out, "shard %d voters=%d leader=%d", sh.ID, sh.Voters, sh.Leader)
	if sh.LearnersOnRest {
		out.WriteString(" rest")
	}
	if sh.Busy {
		out.WriteString(" busy")
	}
	out.WriteString(":")
	rs := slices.Clone(sh.Replicas)
	slices.SortFunc(rs, func(a, b Replica) int { return cmp.Compare(a.ID, b.ID) })
	for _, r := range rs {
		fmt.Fprintf(&out, " %d@%s", r.ID, r.Node)
		switch {
		case r.Role == RoleLearner && r.CaughtUp:
			out.WriteString("/learner")
		case r.Role == RoleLearner:
			out.WriteString("/behind")
		}
		if r.Bytes > 0 {
			out.WriteString("=" + formatSize(r.Bytes))
		}
	}
	out.WriteString("\n")
	return out.String()
}
