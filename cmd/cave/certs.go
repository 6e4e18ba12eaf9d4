package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cavedb/cave/auth"
	"github.com/cavedb/cave/pki"
	"github.com/cavedb/cave/secrets"
)

// Base names of the CAs' files in a certs dir: the cluster CA (ca.crt,
// ca.key), which signs client certificates and the node CA, and the node
// CA (nodes-ca.crt, nodes-ca.key), which signs node certificates only.
// Every port trusts the cluster CA; the Raft transport trusts only the
// node CA, so no client certificate reaches it.
const (
	caFileName      = "ca"
	nodesCAFileName = "nodes-ca"
)

// Default validity of the certificates `cave certs` creates.
const (
	defaultCAValidity   = 10 * 365 * 24 * time.Hour
	defaultLeafValidity = 2 * 365 * 24 * time.Hour
)

// certsCommand is `cave certs`: it creates the cluster CA and the node and
// client certificates signed by it, as PEM files with mode 0600 in a
// directory of mode 0700, and the key-encryption key for --kek-file. It
// never overwrites a file.
func certsCommand() *cli.Command {
	dir := func(usage string) *cli.StringFlag {
		return &cli.StringFlag{Name: "dir", Usage: usage, Required: true}
	}
	caDir := dir("`DIR` of the CAs (made by: cave certs init), where the new files are written")
	validity := func(def time.Duration) *cli.DurationFlag {
		return &cli.DurationFlag{Name: "validity", Value: def, Usage: "how long the certificate is valid"}
	}
	return &cli.Command{
		Name:  "certs",
		Usage: "create the CAs, node and client certificates (ECDSA P-256) and the key-encryption key",
		Description: "init creates two CAs in DIR: the cluster CA (ca.crt, ca.key), which signs client certificates and the node CA,\n" +
			"and the node CA (nodes-ca.crt, nodes-ca.key), which signs node certificates only. Every node trusts the\n" +
			"cluster CA (--tls-ca DIR/ca.crt); the Raft port admits node certificates only. node and client sign with\n" +
			"the CAs in DIR; kek makes the key-encryption key of secret values, which no CA is involved in.",
		Subcommands: []*cli.Command{
			{
				Name:      "init",
				Usage:     "create the cluster CA (DIR/ca.crt, DIR/ca.key; signs client certificates) and the node CA it signs (DIR/nodes-ca.crt, DIR/nodes-ca.key; signs node certificates)",
				ArgsUsage: " ",
				Flags: []cli.Flag{dir("`DIR` to create the CAs in (made with mode 0700)"), validity(defaultCAValidity),
					&cli.StringFlag{Name: "name", Value: "cave-ca", Usage: "common name of the CA"}},
				Action: func(c *cli.Context) error {
					return certsInit(c.App.Writer, c.String("dir"), c.String("name"), c.Duration("validity"), time.Now())
				},
			},
			{
				Name:      "node",
				Usage:     "create a node certificate DIR/NAME.crt and DIR/NAME.key, signed by the node CA DIR/nodes-ca.*; pass it as --tls-cert and --tls-key",
				ArgsUsage: " ",
				Flags: []cli.Flag{caDir, validity(defaultLeafValidity),
					&cli.StringFlag{Name: "name", Usage: "the node's name (its --node-name); the certificate's common name", Required: true},
					&cli.StringSliceFlag{Name: "hosts", Usage: "every DNS name and IP address peers and clients dial this node at, comma-separated (the hosts of --advertise-host or of the listen addresses)", Required: true}},
				Action: func(c *cli.Context) error {
					return certsIssue(c.App.Writer, c.String("dir"), pki.Request{Kind: pki.KindNode, CommonName: c.String("name"),
						Hosts: splitList(c.StringSlice("hosts")), Validity: c.Duration("validity")}, time.Now())
				},
			},
			{
				Name:      "client",
				Usage:     "create a client certificate DIR/NAME.crt and DIR/NAME.key, signed by the cluster CA DIR/ca.*; the access policy knows the client as NAME",
				ArgsUsage: " ",
				Flags: []cli.Flag{caDir, validity(defaultLeafValidity),
					&cli.StringFlag{Name: "name", Usage: "the user name; the certificate's common name", Required: true}},
				Action: func(c *cli.Context) error {
					return certsIssue(c.App.Writer, c.String("dir"), pki.Request{Kind: pki.KindClient, CommonName: c.String("name"),
						Validity: c.Duration("validity")}, time.Now())
				},
			},
			{
				Name:      "kek",
				Usage:     "create a random key-encryption key DIR/kek.hex for --kek-file (every node of a cluster needs the same one)",
				ArgsUsage: " ",
				Flags:     []cli.Flag{dir("`DIR` to write kek.hex in (created with mode 0700 if missing; needs no CA)")},
				Action: func(c *cli.Context) error {
					return certsKEK(c.App.Writer, c.String("dir"))
				},
			},
		},
	}
}

// kekFileName is the file `cave certs kek` writes in its directory.
const kekFileName = "kek.hex"

// certsKEK writes a new random key-encryption key to dir/kek.hex (mode
// 0600, dir created with mode 0700). It never overwrites a file.
func certsKEK(w io.Writer, dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("certs kek: %w", err)
	}
	path := filepath.Join(dir, kekFileName)
	if _, err := secrets.GenerateKEKFile(path, rand.Reader); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("certs kek: %s exists; refusing to overwrite a key that may protect data", path)
		}
		return fmt.Errorf("certs kek: %w", err)
	}
	fmt.Fprintf(w, "created key-encryption key %s: give it to every node as --kek-file and keep a copy; without it secrets cannot be read\n", path)
	return nil
}

// certsInit creates a CA named name in dir, valid for validity from now.
func certsInit(w io.Writer, dir, name string, validity time.Duration, now time.Time) error {
	if strings.TrimSpace(name) == "" {
		return errors.New("certs init: --name must not be empty")
	}
	if validity <= 0 {
		return fmt.Errorf("certs init: --validity must be > 0, got %s", validity)
	}
	for _, f := range []string{caFileName, nodesCAFileName} {
		if err := refuseExisting(dir, f, "a CA"); err != nil {
			return fmt.Errorf("certs init: %w", err)
		}
	}
	ca, err := pki.NewCA(name, validity, now)
	if err != nil {
		return fmt.Errorf("certs init: %w", err)
	}
	nodes, err := pki.NewIntermediate(ca, name+" nodes", validity, now)
	if err != nil {
		return fmt.Errorf("certs init: %w", err)
	}
	if err := pki.Write(dir, caFileName, ca); err != nil {
		return fmt.Errorf("certs init: %w", err)
	}
	if err := pki.Write(dir, nodesCAFileName, nodes); err != nil {
		return fmt.Errorf("certs init: %w", err)
	}
	fmt.Fprintf(w, "created CA %q valid until %s: %s (give to every node and client as --tls-ca) and %s (keep offline; it signs client certificates)\n",
		name, ca.Cert.NotAfter.UTC().Format(time.RFC3339), filepath.Join(dir, caFileName+".crt"), filepath.Join(dir, caFileName+".key"))
	fmt.Fprintf(w, "created node CA %q signed by it: %s and %s (keep offline; it signs node certificates)\n",
		nodes.Cert.Subject.CommonName, filepath.Join(dir, nodesCAFileName+".crt"), filepath.Join(dir, nodesCAFileName+".key"))
	return nil
}

// certsIssue signs req with the CA in dir and writes it there as
// COMMONNAME.crt and COMMONNAME.key.
func certsIssue(w io.Writer, dir string, req pki.Request, now time.Time) error {
	cmd := "certs client"
	if req.Kind == pki.KindNode {
		cmd = "certs node"
	}
	if err := auth.ValidateName(req.CommonName); err != nil {
		return fmt.Errorf("%s: --name: %w", cmd, err)
	}
	if req.CommonName == caFileName || req.CommonName == nodesCAFileName {
		return fmt.Errorf("%s: --name %q is reserved for the CAs' files", cmd, req.CommonName)
	}
	if req.Validity <= 0 {
		return fmt.Errorf("%s: --validity must be > 0, got %s", cmd, req.Validity)
	}
	if req.Kind == pki.KindNode {
		if len(req.Hosts) == 0 {
			return fmt.Errorf("%s: --hosts must name at least one DNS name or IP address", cmd)
		}
		for _, h := range req.Hosts {
			if net.ParseIP(h) == nil && !validDNSName(h) {
				return fmt.Errorf("%s: --hosts: %q is neither an IP address nor a DNS name", cmd, h)
			}
		}
	}
	issuer := caFileName
	if req.Kind == pki.KindNode {
		issuer = nodesCAFileName
	}
	ca, err := pki.Load(dir, issuer)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: no CA in %s (run `cave certs init --dir %s` first): %w", cmd, dir, dir, err)
	}
	if err != nil {
		return fmt.Errorf("%s: load the CA from %s: %w", cmd, dir, err)
	}
	if err := refuseExisting(dir, req.CommonName, "a certificate"); err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	b, err := ca.Issue(req, now)
	if err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	if err := pki.Write(dir, req.CommonName, b); err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	fmt.Fprintf(w, "created %s certificate %q valid until %s: %s and %s\n", strings.TrimPrefix(cmd, "certs "), req.CommonName,
		b.Cert.NotAfter.UTC().Format(time.RFC3339), filepath.Join(dir, req.CommonName+".crt"), filepath.Join(dir, req.CommonName+".key"))
	return nil
}

// refuseExisting fails when NAME.crt or NAME.key exists in dir, so that no
// command replaces a key silently.
func refuseExisting(dir, name, what string) error {
	for _, ext := range []string{".crt", ".key"} {
		p := filepath.Join(dir, name+ext)
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s already exists; refusing to overwrite %s (move the old files away first)", p, what)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// validDNSName reports whether h is a plausible DNS name for a SAN: dot
// separated labels of letters, digits and hyphens, or a leading "*." wildcard.
func validDNSName(h string) bool {
	h = strings.TrimPrefix(h, "*.")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// splitList splits every comma-separated entry of in and drops empty ones.
func splitList(in []string) []string {
	var out []string
	for _, s := range in {
		for _, part := range strings.Split(s, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}
