package node

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/cavedb/cave/pki"
)

// raftCAFileName is where a node keeps the CA its Raft transport trusts,
// in its data dir.
const raftCAFileName = "raft-ca.crt"

// raftCAFile returns the CA file the Raft transport trusts. Dragonboat
// checks only that a peer's certificate chains to that file, not what the
// certificate is for, so trusting the cluster CA would let any client
// certificate reach the Raft port and speak Raft. When the node
// certificate file carries the intermediate CA that issued it (the node
// CA of `cave certs`), raftCAFile writes that intermediate to
// dataDir/raft-ca.crt (mode 0600, rewritten at every start so it follows
// a renewed certificate) and returns its path: only certificates of the
// node CA, node certificates, can then connect. Otherwise it returns the
// cluster CA file and logs a warning.
func raftCAFile(f TLSFiles, dataDir string, lg *slog.Logger) (string, error) {
	chain, err := os.ReadFile(f.CertFile)
	if err != nil {
		return "", fmt.Errorf("node: read --tls-cert: %w", err)
	}
	issuer, ok := pki.IssuerPEM(chain)
	if !ok {
		lg.Warn("the node certificate is signed by the cluster CA itself: the Raft port accepts every certificate of that CA, client certificates included; issue node certificates with `cave certs node`")
		return f.CAFile, nil
	}
	path := filepath.Join(dataDir, raftCAFileName)
	if err := os.WriteFile(path+".tmp", issuer, 0o600); err != nil {
		return "", fmt.Errorf("node: write the Raft CA: %w", err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		return "", fmt.Errorf("node: write the Raft CA: %w", err)
	}
	return path, nil
}
