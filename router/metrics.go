package router

import (
	"github.com/prometheus/client_golang/prometheus"
)

// opKind names a router operation in the op label of the router's metrics.
type opKind int

const (
	opGet opKind = iota
	opPut
	opDelete
	opList
	opWatch
	numOps
)

var opNames = [numOps]string{"get", "put", "delete", "list", "watch"}

func (o opKind) String() string { return opNames[o] }

// metrics are the router's counters, curried per op so that the request
// path does not format labels.
type metrics struct {
	forwards [numOps]prometheus.Counter
	retries  [numOps]prometheus.Counter
}

// newMetrics registers the router's metrics on reg. Every op's series
// exists from the start, at zero, so dashboards and alerts see them before
// the first forward or retry.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	forwards := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cave_router_forwards_total",
		Help: "Shard operations forwarded to another node because this node has no replica of the shard, by op (get, put, delete, list, watch); a List counts once per forwarded shard, a watch once per forwarded history read.",
	}, []string{"op"})
	retries := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cave_router_retries_total",
		Help: "Attempts after the first of operations that failed without being applied (no leader yet, replica moving), by op.",
	}, []string{"op"})
	if err := reg.Register(forwards); err != nil {
		return nil, err
	}
	if err := reg.Register(retries); err != nil {
		reg.Unregister(forwards)
		return nil, err
	}
	m := &metrics{}
	for o := range numOps {
		m.forwards[o] = forwards.WithLabelValues(o.String())
		m.retries[o] = retries.WithLabelValues(o.String())
	}
	return m, nil
}
