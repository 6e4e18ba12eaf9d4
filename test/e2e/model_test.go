package e2e

import (
	"fmt"
	"hash/fnv"
	"sort"

	"github.com/anishathalye/porcupine"
)

// The linearizability model: every key is an independent register holding
// (value, mod_revision). Revisions are the shard's Raft index, so per key
// they only grow, and a put's revision is not known until it returns.

type opKind uint8

const (
	opGet opKind = iota + 1
	opPut        // unconditional put
	opCAS        // put with ?prev_revision=N (N=0: create only)
)

func (k opKind) String() string {
	switch k {
	case opGet:
		return "get"
	case opPut:
		return "put"
	case opCAS:
		return "cas"
	}
	return fmt.Sprintf("op(%d)", uint8(k))
}

// kvInput is what a client asked for.
type kvInput struct {
	Kind  opKind
	Key   string
	Value string // put, cas
	Prev  int64  // cas: prev_revision
}

// kvOutput is what came back.
type kvOutput struct {
	// Unknown is set when the outcome of a put or cas is unknown (timeout,
	// 5xx, connection lost after sending). Such operations are recorded with
	// an end-of-history return time. Failed reads are not recorded at all.
	Unknown bool
	// OK is, for get, whether the key was found; for put and cas, whether
	// the write was applied (false for cas means 412).
	OK bool
	// Value is what get returned.
	Value string
	// Rev is the X-Cave-Revision of a get or the revision a write returned.
	Rev int64
}

// regState is one key's register. When RevKnown is false an unknown-outcome
// write may have replaced the value, so Rev is only a lower bound: the real
// mod_revision is greater than Rev.
type regState struct {
	Exists   bool
	Value    string
	Rev      int64
	RevKnown bool
}

// kvModel is the porcupine model for cave's REST KV operations, partitioned
// by key.
var kvModel = porcupine.NondeterministicModel{
	Partition: partitionByKey,
	Init: func() []interface{} {
		return []interface{}{regState{RevKnown: true}}
	},
	Step: func(state, input, output interface{}) []interface{} {
		return kvStep(state.(regState), input.(kvInput), output.(kvOutput))
	},
	Equal: func(a, b interface{}) bool { return a.(regState) == b.(regState) },
	Hash: func(s interface{}) uint64 {
		st := s.(regState)
		h := fnv.New64a()
		fmt.Fprintf(h, "%t|%s|%d|%t", st.Exists, st.Value, st.Rev, st.RevKnown)
		return h.Sum64()
	},
	DescribeOperation: describeOp,
	DescribeState: func(s interface{}) string {
		st := s.(regState)
		if !st.Exists {
			return "absent"
		}
		if st.RevKnown {
			return fmt.Sprintf("%q@%d", st.Value, st.Rev)
		}
		return fmt.Sprintf("%q@>%d", st.Value, st.Rev)
	},
}

func kvStep(s regState, in kvInput, out kvOutput) []interface{} {
	none := []interface{}{}
	switch in.Kind {
	case opGet:
		if out.Unknown {
			return []interface{}{s}
		}
		if !out.OK {
			if s.Exists {
				return none
			}
			return []interface{}{s}
		}
		if !s.Exists || s.Value != out.Value {
			return none
		}
		if s.RevKnown {
			if out.Rev != s.Rev {
				return none
			}
			return []interface{}{s}
		}
		if out.Rev <= s.Rev {
			return none
		}
		s.Rev, s.RevKnown = out.Rev, true
		return []interface{}{s}

	case opPut:
		if out.Unknown {
			return []interface{}{regState{Exists: true, Value: in.Value, Rev: s.Rev}}
		}
		if !out.OK || out.Rev <= s.Rev {
			return none
		}
		return []interface{}{regState{Exists: true, Value: in.Value, Rev: out.Rev, RevKnown: true}}

	case opCAS:
		canMatch, canMiss := casMatch(s, in.Prev)
		if out.Unknown {
			var next []interface{}
			if canMatch {
				// Applied: the new revision exceeds the one it replaced.
				lb := s.Rev
				if in.Prev > lb {
					lb = in.Prev
				}
				next = append(next, regState{Exists: true, Value: in.Value, Rev: lb})
			}
			if canMiss {
				next = append(next, s)
			}
			return next
		}
		if !out.OK {
			if !canMiss {
				return none
			}
			return []interface{}{s}
		}
		if !canMatch || out.Rev <= s.Rev || out.Rev <= in.Prev {
			return none
		}
		return []interface{}{regState{Exists: true, Value: in.Value, Rev: out.Rev, RevKnown: true}}
	}
	return none
}

// casMatch reports whether a put with prev_revision=prev could succeed
// (canMatch) and could fail (canMiss) in state s.
func casMatch(s regState, prev int64) (canMatch, canMiss bool) {
	if prev == 0 { // create only
		return !s.Exists, s.Exists
	}
	if !s.Exists {
		return false, true
	}
	if s.RevKnown {
		return s.Rev == prev, s.Rev != prev
	}
	return prev > s.Rev, true
}

func partitionByKey(history []porcupine.Operation) [][]porcupine.Operation {
	byKey := map[string][]porcupine.Operation{}
	for _, op := range history {
		k := op.Input.(kvInput).Key
		byKey[k] = append(byKey[k], op)
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([][]porcupine.Operation, 0, len(keys))
	for _, k := range keys {
		out = append(out, byKey[k])
	}
	return out
}

func describeOp(input, output interface{}) string {
	in, out := input.(kvInput), output.(kvOutput)
	var res string
	switch {
	case out.Unknown:
		res = "?"
	case in.Kind == opGet && !out.OK:
		res = "404"
	case in.Kind == opGet:
		res = fmt.Sprintf("%q@%d", out.Value, out.Rev)
	case !out.OK:
		res = "412"
	default:
		res = fmt.Sprintf("rev %d", out.Rev)
	}
	switch in.Kind {
	case opGet:
		return fmt.Sprintf("get(%s) -> %s", in.Key, res)
	case opPut:
		return fmt.Sprintf("put(%s, %q) -> %s", in.Key, in.Value, res)
	default:
		return fmt.Sprintf("put(%s, %q, prev=%d) -> %s", in.Key, in.Value, in.Prev, res)
	}
}
