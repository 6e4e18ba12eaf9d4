package gateway

import (
	"context"
	"io/fs"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// SystemInfo is the static part of GET /api/v1/system/info: what the
// binary and its command line say about this node.
type SystemInfo struct {
	// Version, Commit and BuildDate identify the build (set by the linker).
	Version, Commit, BuildDate string
	// Mode is dev or prod (--mode).
	Mode string
	// Insecure reports --insecure (or dev mode): no TLS, no access control.
	Insecure bool
	// DataDir is the node's data directory (--data-dir); its disk usage is
	// measured on every request.
	DataDir string
	// Started is when the process started; zero means when New ran.
	Started time.Time
}

// ConfigEntry is one setting in GET /api/v1/system/config.
type ConfigEntry struct {
	// Name is the flag's name, without dashes: "http-addr".
	Name string `json:"name"`
	// Value is the effective value as text. Values of secret settings (see
	// secretSetting) are replaced by "[redacted]" when served.
	Value string `json:"value"`
	// Source says where the value came from: "flag", "env" (its CAVE_*
	// variable), "file" (the --config YAML), "default", or "mode" when
	// --mode=dev overrides it.
	Source string `json:"source"`
}

// redacted replaces the value of a secret setting.
const redacted = "[redacted]"

// secretWords mark a setting as secret when its name contains one of them:
// the value may be, or point to, key material or credentials.
var secretWords = []string{"key", "kek", "secret", "token", "password", "passwd", "credential"}

// secretSetting reports whether the setting called name is redacted in
// /api/v1/system/config. The rule is by name, so settings added later
// (--tls-key, --kek-file, tokens) are covered without a list to update.
func secretSetting(name string) bool {
	n := strings.ToLower(name)
	for _, w := range secretWords {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// redact returns a copy of entries with the values of secret settings
// replaced; an empty value stays empty, which shows only that it is unset.
func redact(entries []ConfigEntry) []ConfigEntry {
	out := make([]ConfigEntry, len(entries))
	for i, e := range entries {
		if secretSetting(e.Name) && e.Value != "" {
			e.Value = redacted
		}
		out[i] = e
	}
	return out
}

type configResponse struct {
	Config []ConfigEntry `json:"config"`
}

// configHandler serves GET /api/v1/system/config.
func configHandler(entries []ConfigEntry) http.HandlerFunc {
	body := configResponse{Config: redact(entries)}
	return func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, body)
	}
}

// infoResponse is the body of GET /api/v1/system/info. It never holds
// environment variables or setting values beyond the ones listed.
type infoResponse struct {
	Version        string   `json:"version"`
	Commit         string   `json:"commit"`
	BuildDate      string   `json:"build_date"`
	GoVersion      string   `json:"go_version"`
	OS             string   `json:"os"`
	Arch           string   `json:"arch"`
	CPUs           int      `json:"cpus"`
	Goroutines     int      `json:"goroutines"`
	Node           string   `json:"node"`
	ClusterID      string   `json:"cluster_id"`
	StartTime      string   `json:"start_time"`
	UptimeSeconds  int64    `json:"uptime_seconds"`
	DataDir        string   `json:"data_dir"`
	DataDirBytes   int64    `json:"data_dir_bytes"`
	ShardsLed      int      `json:"shards_led"`
	ShardsFollowed int      `json:"shards_followed"`
	Mode           string   `json:"mode"`
	Insecure       bool     `json:"insecure"`
	Warnings       []string `json:"warnings"`
}

// infoHandler serves GET /api/v1/system/info.
func (s *Server) infoHandler(w http.ResponseWriter, r *http.Request) {
	si := s.cfg.System
	started := si.Started
	// The cluster id is cached once the node has read the placement; the
	// timeout only matters on a node that is still joining.
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	clusterID, _ := s.cfg.Cluster.ClusterID(ctx)
	led, followed := s.cfg.Cluster.LocalShards()
	resp := infoResponse{
		Version:        si.Version,
		Commit:         si.Commit,
		BuildDate:      si.BuildDate,
		GoVersion:      runtime.Version(),
		OS:             runtime.GOOS,
		Arch:           runtime.GOARCH,
		CPUs:           runtime.NumCPU(),
		Goroutines:     runtime.NumGoroutine(),
		Node:           s.cfg.Cluster.Name(),
		ClusterID:      clusterID,
		StartTime:      started.UTC().Format(time.RFC3339),
		UptimeSeconds:  int64(time.Since(started).Seconds()),
		DataDir:        si.DataDir,
		DataDirBytes:   dirBytes(si.DataDir),
		ShardsLed:      led,
		ShardsFollowed: followed,
		Mode:           si.Mode,
		Insecure:       si.Insecure,
		Warnings:       []string{},
	}
	if si.Insecure {
		resp.Warnings = append(resp.Warnings, "insecure: no TLS and no access control on any port; do not use in production")
	}
	writeJSON(w, http.StatusOK, resp)
}

// dirBytes returns the total size of the regular files under dir, skipping
// what it cannot read (files come and go while Pebble and Raft work); 0 for
// an empty dir name.
func dirBytes(dir string) int64 {
	if dir == "" {
		return 0
	}
	var total int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				total += fi.Size()
			}
		}
		return nil
	})
	return total
}
