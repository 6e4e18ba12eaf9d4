// Package dashboard holds cave's Grafana dashboard, served by the gateway
// at /api/v1/perf/dashboard for import into Grafana.
//
// cave.json is the dashboard as Grafana exports it (schemaVersion 39): a
// Prometheus data source variable, a node variable over the instance label,
// and timeseries and stat panels. Every query may use only metric families
// that cave exports at /api/v1/perf/metrics (cave_*, go_*, process_*); the
// gateway's tests check each one against a live node's scrape. To change
// it, edit the panels in Grafana, export the JSON ("Export for sharing
// externally" off) and replace cave.json.
package dashboard

import _ "embed" // for go:embed

// JSON is the Grafana dashboard. Callers must not modify the slice.
//
//go:embed cave.json
var JSON []byte
