package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/cavedb/cave/audit"
)

// openAudit returns the audit logger of --audit-log path ("-" for stdout)
// and the function that flushes and closes it, which logs its own errors;
// for an empty path, a nil logger (no audit log) and a no-op.
func openAudit(path string, lg *slog.Logger) (*audit.Logger, func(), error) {
	if path == "" {
		return nil, func() {}, nil
	}
	var w io.Writer = os.Stdout
	var f *os.File
	if path != "-" {
		var err error
		if f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); err != nil {
			return nil, nil, fmt.Errorf("--audit-log: %w", err)
		}
		w = f
	}
	cfg := audit.DefaultConfig()
	cfg.Writer, cfg.Logger = w, lg
	al, err := audit.New(cfg)
	if err != nil {
		if f != nil {
			f.Close()
		}
		return nil, nil, fmt.Errorf("--audit-log: %w", err)
	}
	lg.Info("audit log on", "path", path)
	return al, func() {
		if err := al.Close(); err != nil {
			lg.Error("audit log incomplete: a write failed", "err", err, "dropped", al.Dropped())
		}
		if f != nil {
			if err := f.Close(); err != nil {
				lg.Error("close audit log", "err", err)
			}
		}
	}, nil
}
