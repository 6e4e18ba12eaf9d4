package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/cavedb/cave/tlsconfig"
)

// loadTLS returns the node's TLS material from the --tls-* files, or nil
// when TLS is off (--insecure, dev mode).
func loadTLS(s settings, lg *slog.Logger) (*tlsconfig.Source, error) {
	if !s.tlsSet() {
		return nil, nil
	}
	return tlsconfig.Load(s.TLSCA, s.TLSCert, s.TLSKey, lg)
}

// reloadTLS reloads src on SIGHUP and whenever the files' contents change,
// until ctx is done. The gRPC and HTTP ports use the new certificate and CA
// from their next handshake; the Raft transport reads the files only at
// start-up. A failed reload keeps the previous material and is logged.
func reloadTLS(ctx context.Context, src *tlsconfig.Source, lg *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go src.Watch(ctx, tlsconfig.DefaultWatchInterval)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if err := src.Reload(); err != nil {
				lg.Error("tls reload on SIGHUP failed; keeping the previous certificate", "err", err)
			}
		}
	}
}
