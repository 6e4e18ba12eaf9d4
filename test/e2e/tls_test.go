package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	kvv1 "github.com/cavedb/cave/proto/cave/kv/v1"
	peerv1 "github.com/cavedb/cave/proto/cave/peer/v1"
)

// TestTLSCluster runs a three-node prod cluster with TLS on every port,
// built from certificates made by `cave certs`, with two outsiders next to
// it: n4 holds a node certificate from a foreign CA and joins through n1's
// gRPC port; n5 runs --insecure and joins through n1's gossip port. It
// checks that the cluster serves clients of its CA over gRPC and HTTPS and
// refuses everyone else on every port, that the Peer service admits node
// certificates only, that gossip is encrypted with one key that reached the
// joiners, that neither outsider becomes a member, and that a renewed
// certificate is served after SIGHUP without a restart.
func TestTLSCluster(t *testing.T) {
	c := newProcClusterStopped(t, 5, withTLS(), withShards(2), withJoinVia(func(int) int { return 1 }))
	foreign := filepath.Join(c.dir, "foreign")
	c.certsCmd("init", "--dir", foreign, "--name", "foreign-ca")
	c.certsCmd("node", "--dir", foreign, "--name", "n4", "--hosts", "127.0.0.1,localhost")
	c.certsCmd("client", "--dir", foreign, "--name", rootUser)
	n4 := c.node(4)
	n4.args = withFlag(withFlag(withFlag(n4.args, "--tls-ca", filepath.Join(foreign, "ca.crt")),
		"--tls-cert", filepath.Join(foreign, "n4.crt")), "--tls-key", filepath.Join(foreign, "n4.key"))
	n5 := c.node(5)
	n5.args = append(withoutFlags(n5.args, "--tls-ca", "--tls-cert", "--tls-key", "--kek-file", "--join"),
		"--insecure", "--join", c.node(1).gossipAddr)

	for i := 1; i <= 3; i++ {
		c.Start(i)
		c.WaitReady(i, 60*time.Second)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	rc := c.restClient(5 * time.Second)
	defer rc.close()
	// The bootstrap policy, which makes rootUser an administrator, reaches
	// every node within a second or so.
	for i := 1; i <= 3; i++ {
		require.NoError(t, poll(ctx, 10*time.Second, 100*time.Millisecond, func() (bool, error) {
			_, _, _, err := rc.get(c.URL(i), "tls/none", false)
			return statusOf(err) != http.StatusForbidden, nil
		}), "%s never let %s read", c.Name(i), rootUser)
	}
	// Replicas on every node: Raft runs over mutual TLS.
	c.WaitShards(rc, 30*time.Second, fullyReplicated(2, 3))

	t.Run("cluster CA clients over gRPC and HTTPS", func(t *testing.T) {
		kv := kvv1.NewKVClient(grpcConn(t, c.node(2).grpcAddr, c.clientTLS(rootUser)))
		_, err := kv.Put(ctx, &kvv1.PutRequest{Key: "tls/a", Value: []byte("over grpc")})
		require.NoError(t, err, "gRPC put with a client certificate of the cluster CA")
		v, _, found, err := rc.get(c.URL(3), "tls/a", false)
		require.NoError(t, err, "HTTPS get with a client certificate of the cluster CA")
		assert.True(t, found)
		assert.Equal(t, "over grpc", string(v))
		_, _, err = rc.put(c.URL(1), "tls/b", []byte("over https"), nil)
		require.NoError(t, err)
		resp, err := kvv1.NewKVClient(grpcConn(t, c.node(3).grpcAddr, c.clientTLS(rootUser))).Get(ctx, &kvv1.GetRequest{Key: "tls/b"})
		require.NoError(t, err)
		assert.Equal(t, "over https", string(resp.GetValue()))
	})

	t.Run("foreign CA and missing certificates refused", func(t *testing.T) {
		foreignRoot := clientTLSFrom(t, c.certs, foreign, rootUser) // trusts the cluster, presents a foreign "root"
		for name, cfg := range map[string]*tls.Config{"foreign CA": foreignRoot, "no certificate": c.clientTLS("")} {
			_, err := kvv1.NewKVClient(grpcConn(t, c.node(1).grpcAddr, cfg)).Get(ctx, &kvv1.GetRequest{Key: "tls/a"})
			assert.Equal(t, codes.Unavailable, status.Code(err), "gRPC with %s: want the handshake refused, got %v", name, err)
		}
		_, _, _, err := (&restClient{hc: httpsClient(foreignRoot)}).get(c.URL(1), "tls/a", false)
		require.Error(t, err, "HTTPS with a foreign CA's client certificate")
		assert.Contains(t, err.Error(), "certificate", "HTTPS with a foreign client certificate fails in the handshake")
		_, _, _, err = (&restClient{hc: httpsClient(c.clientTLS(""))}).get(c.URL(1), "tls/a", false)
		assert.Equal(t, http.StatusUnauthorized, statusOf(err), "HTTPS with neither certificate nor token: %v", err)
		_, err = tlsHandshake(c.node(1).grpcAddr, clientTLSFrom(t, foreign, foreign, rootUser))
		assert.Error(t, err, "a client trusting only the foreign CA must not accept the node's certificate")
	})

	t.Run("peer service admits node certificates only", func(t *testing.T) {
		for _, who := range []string{rootUser, "n1"} {
			_, err := peerv1.NewDataClient(grpcConn(t, c.node(2).grpcAddr, c.clientTLS(who))).Stats(ctx, &peerv1.StatsRequest{ShardId: 0})
			if who == rootUser {
				assert.Equal(t, codes.PermissionDenied, status.Code(err), "Data.Stats with a client certificate: %v", err)
			} else {
				assert.NoError(t, err, "Data.Stats with a node certificate")
			}
		}
		_, err := peerv1.NewControlClient(grpcConn(t, c.node(2).grpcAddr, c.clientTLS(rootUser))).JoinInfo(ctx, &peerv1.JoinInfoRequest{})
		assert.Equal(t, codes.PermissionDenied, status.Code(err), "Control.JoinInfo with a client certificate: %v", err)
		info, err := peerv1.NewControlClient(grpcConn(t, c.node(2).grpcAddr, c.clientTLS("n3"))).JoinInfo(ctx, &peerv1.JoinInfoRequest{})
		require.NoError(t, err, "Control.JoinInfo with a node certificate")
		assert.Equal(t, c.node(2).gossipAddr, info.GetGossipAddr())
		assert.Len(t, info.GetGossipKey(), 32)
	})

	t.Run("one gossip key, mode 0600, on every node", func(t *testing.T) {
		var keys [][]byte
		for i := 1; i <= 3; i++ {
			path := filepath.Join(c.node(i).dataDir, "gossip.key")
			st, err := os.Stat(path)
			require.NoError(t, err)
			assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "%s", path)
			k, err := os.ReadFile(path)
			require.NoError(t, err)
			keys = append(keys, k)
		}
		assert.Len(t, keys[0], 32)
		assert.True(t, bytes.Equal(keys[0], keys[1]) && bytes.Equal(keys[1], keys[2]), "the joiners hold the bootstrap node's key")
	})

	t.Run("raft port requires a node certificate of the cluster CA", func(t *testing.T) {
		_, err := tlsHandshake(c.node(1).raftAddr, clientTLSFrom(t, c.certs, foreign, "n4"))
		assert.Error(t, err, "raft port with a foreign CA's node certificate")
		_, err = tlsHandshake(c.node(1).raftAddr, c.clientTLS(""))
		assert.Error(t, err, "raft port without a certificate")
		_, err = tlsHandshake(c.node(1).raftAddr, c.clientTLS(rootUser))
		assert.Error(t, err, "raft port with a client certificate of the cluster CA (the administrator's)")
		_, err = tlsHandshake(c.node(1).raftAddr, c.clientTLS("n3"))
		assert.NoError(t, err, "raft port with the cluster's node certificate")
	})

	t.Run("outsiders never become members", func(t *testing.T) {
		c.Start(4)
		c.Start(5)
		// Both retry every two seconds; give them several attempts.
		require.NoError(t, poll(ctx, 20*time.Second, 250*time.Millisecond, func() (bool, error) {
			return strings.Count(readFile(n4.logPath), "join failed") >= 3 && strings.Count(readFile(n5.logPath), "join failed") >= 3, nil
		}), "n4 and n5 keep failing to join")
		for i := 1; i <= 3; i++ {
			mems, err := rc.members(c.URL(i))
			require.NoError(t, err)
			var names []string
			for _, m := range mems {
				names = append(names, m.Name)
			}
			slices.Sort(names)
			assert.Equal(t, []string{"n1", "n2", "n3"}, names, "members seen by n%d", i)
		}
		assert.Contains(t, readFile(n4.logPath), "certificate", "n4's JoinInfo is refused in the TLS handshake")
		mems, err := newRESTClient(2 * time.Second).members("http://" + n5.httpAddr)
		require.NoError(t, err)
		assert.Len(t, mems, 1, "n5 sees only itself: it cannot read the encrypted gossip")
		shards, err := rc.shards(c.URL(1))
		require.NoError(t, err)
		for _, s := range shards {
			for _, r := range s.Replicas {
				assert.NotContains(t, []string{"n4", "n5"}, r.Node, "shard %d has a replica on an outsider", s.ID)
			}
		}
		c.Kill9(4)
		c.Kill9(5)
	})

	t.Run("renewed certificate served after SIGHUP", func(t *testing.T) {
		renew := filepath.Join(c.dir, "renew")
		require.NoError(t, os.MkdirAll(renew, 0o700))
		for _, name := range []string{"ca.crt", "ca.key", "nodes-ca.crt", "nodes-ca.key"} {
			require.NoError(t, os.Link(filepath.Join(c.certs, name), filepath.Join(renew, name)))
		}
		c.certsCmd("node", "--dir", renew, "--name", "n1", "--hosts", "127.0.0.1,localhost")
		before, err := tlsHandshake(c.node(1).grpcAddr, c.clientTLS(rootUser))
		require.NoError(t, err)
		for _, ext := range []string{".key", ".crt"} {
			require.NoError(t, os.Rename(filepath.Join(renew, "n1"+ext), filepath.Join(c.certs, "n1"+ext)))
		}
		n1 := c.node(1)
		n1.mu.Lock()
		err = n1.cmd.Process.Signal(syscall.SIGHUP)
		n1.mu.Unlock()
		require.NoError(t, err)
		var after []byte
		require.NoError(t, poll(ctx, 10*time.Second, 100*time.Millisecond, func() (bool, error) {
			after, err = tlsHandshake(c.node(1).grpcAddr, c.clientTLS(rootUser))
			return err == nil && !bytes.Equal(after, before), nil
		}), "n1 still serves its old certificate")
		_, err = kvv1.NewKVClient(grpcConn(t, c.node(1).grpcAddr, c.clientTLS(rootUser))).Get(ctx, &kvv1.GetRequest{Key: "tls/a"})
		assert.NoError(t, err, "n1 serves with its renewed certificate")
	})

	t.Run("restarted joiner reuses its gossip key", func(t *testing.T) {
		c.Kill9(3)
		c.Restart(3)
		c.WaitReady(3, 30*time.Second)
		require.NoError(t, poll(ctx, 15*time.Second, 200*time.Millisecond, func() (bool, error) {
			mems, err := rc.members(c.URL(1))
			if err != nil {
				return false, nil
			}
			for _, m := range mems {
				if m.Name == "n3" {
					return m.State == "alive", nil
				}
			}
			return false, nil
		}), "n3 is alive in n1's view again")
		assert.Equal(t, 1, strings.Count(readFile(c.node(3).logPath), "gossip key received"), "n3 received the key once, at its first start")
	})
}

// grpcConn dials addr with cfg; the connection is closed when t ends.
func grpcConn(t *testing.T, addr string, cfg *tls.Config) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn
}

// httpsClient is an HTTP client using cfg.
func httpsClient(cfg *tls.Config) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}

// tlsHandshake connects to addr with cfg, offering HTTP/2 as gRPC needs,
// completes the handshake and waits briefly for the server to reject the
// client certificate (in TLS 1.3 the client learns that only from its
// first read). It returns the server's certificate.
func tlsHandshake(addr string, cfg *tls.Config) ([]byte, error) {
	d := &net.Dialer{Timeout: 2 * time.Second}
	cfg = cfg.Clone()
	cfg.NextProtos = []string{"h2"}
	conn, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	var b [1]byte
	if _, err := conn.Read(b[:]); err != nil {
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			return nil, err
		}
	}
	return conn.ConnectionState().PeerCertificates[0].Raw, nil
}

// withFlag returns args with the value after flag replaced by value.
func withFlag(args []string, flag, value string) []string {
	out := slices.Clone(args)
	for i := range out[:len(out)-1] {
		if out[i] == flag {
			out[i+1] = value
		}
	}
	return out
}

// withoutFlags returns args without the given flags and their values.
func withoutFlags(args []string, flags ...string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		if slices.Contains(flags, args[i]) {
			i++
			continue
		}
		out = append(out, args[i])
	}
	return out
}

// readFile returns path's contents, or "" when it cannot be read.
func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}
