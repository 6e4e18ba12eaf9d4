package gateway_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/cavedb/cave/internal/nodetest"
	kvv1 "github.com/cavedb/cave/proto/cave/kv/v1"
	secretsv1 "github.com/cavedb/cave/proto/cave/secrets/v1"
	"github.com/cavedb/cave/secrets"
)

// TestSecretsCluster writes secrets over gRPC and REST on a 3-node
// cluster and reads them back through other nodes; checks that a read
// without secret=true returns the envelope, that rotation makes every node
// seal new writes under the new key while old secrets stay readable, and
// that bad requests get the right 4xx and change nothing. Then it stops
// every node and greps every file of every data dir (Pebble, Raft log,
// snapshots) for the plaintexts: none may appear, while a plain value with
// a marker does.
//
// The cluster starts with two nodes and compacts its Raft logs every 20
// entries; the third node joins after the first writes, so it receives the
// data shards as streamed snapshots (dragonboat shrinks a recovered
// snapshot of an on-disk state machine to its metadata, so their content
// is on disk only while the node recovers them).
func TestSecretsCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	const maxValue = 256
	c := nodetest.NewCluster(t, 2, nodetest.WithShards(2), nodetest.WithMaxValueBytes(maxValue), nodetest.WithSnapshotEntries(20))
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	kvs := make([]kvv1.KVClient, 3)
	secs := make([]secretsv1.SecretsClient, 3)
	connect := func(i int) {
		conn, err := grpc.NewClient(c.GRPCAddr(i), grpc.WithTransportCredentials(insecure.NewCredentials()))
		require.NoError(t, err)
		t.Cleanup(func() { conn.Close() })
		kvs[i], secs[i] = kvv1.NewKVClient(conn), secretsv1.NewSecretsClient(conn)
	}
	connect(0)
	connect(1)
	marker := func(what string) string { return "plaintext-" + what + "-" + rand.Text() }
	var secretValues []string

	// The first secret writes race on both nodes to create the keyring;
	// exactly one keyring must win, so each node decrypts what the other
	// sealed.
	first := make([]string, 2)
	var wg sync.WaitGroup
	for i := range 2 {
		first[i] = marker("grpc")
		wg.Go(func() {
			_, err := kvs[i].Put(ctx, &kvv1.PutRequest{Key: "sec/grpc/" + c.Name(i), Value: []byte(first[i]), Secret: true})
			assert.NoError(t, err, "secret put through node %d", i)
		})
	}
	wg.Wait()
	require.False(t, t.Failed())
	secretValues = append(secretValues, first...)
	// A plain value with a marker: the control of the data-dir grep.
	plain := marker("plain")
	_, err := kvs[0].Put(ctx, &kvv1.PutRequest{Key: "plain/control", Value: []byte(plain)})
	require.NoError(t, err)
	// Enough writes for every data shard to compact its log, then the
	// third node.
	for i := range 60 {
		_, err := kvs[i%2].Put(ctx, &kvv1.PutRequest{Key: fmt.Sprintf("filler/%d", i), Value: []byte("f")})
		require.NoError(t, err)
	}
	c.AddNode()
	c.WaitStable(t)
	connect(2)

	for i := range 2 {
		for j := range 3 {
			got, err := kvs[j].Get(ctx, &kvv1.GetRequest{Key: "sec/grpc/" + c.Name(i), Secret: true})
			require.NoError(t, err, "secret written through node %d read through node %d", i, j)
			assert.Equal(t, first[i], string(got.Value))
		}
	}
	env, err := kvs[0].Get(ctx, &kvv1.GetRequest{Key: "sec/grpc/" + c.Name(1)})
	require.NoError(t, err)
	assert.True(t, secrets.IsEnvelope(env.Value), "a secret read without secret=true is its envelope")
	assert.NotContains(t, string(env.Value), first[1], "the envelope contains the plaintext")
	assert.Equal(t, len(first[1])+secrets.EnvelopeOverhead, len(env.Value), "envelope size")
	assert.Equal(t, uint32(1), envelopeKeyID(t, env.Value))
	st, err := secs[2].Status(ctx, &secretsv1.StatusRequest{})
	require.NoError(t, err)
	assert.Equal(t, uint32(1), st.KeyId)
	assert.Equal(t, uint32(1), st.KeyCount)

	// REST: ?secret=true on PUT and GET; raw and JSON reads.
	restSecret := marker("rest")
	secretValues = append(secretValues, restSecret)
	code, body := do(t, ctx, http.MethodPut, c.HTTPURL(0)+"/api/v1/kv/sec/rest?secret=true", restSecret)
	require.Equal(t, http.StatusOK, code, body)
	r := send(t, ctx, http.MethodGet, c.HTTPURL(1)+"/api/v1/kv/sec/rest?secret=true", "")
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.Equal(t, restSecret, r.body)
	assert.Equal(t, "no-store", r.header.Get("Cache-Control"), "a plaintext secret must not be cached")
	code, body = do(t, ctx, http.MethodGet, c.HTTPURL(2)+"/api/v1/kv/sec/rest?secret=true&format=json", "")
	require.Equal(t, http.StatusOK, code, body)
	var kj keyJSON
	require.NoError(t, json.Unmarshal([]byte(body), &kj), body)
	assert.Equal(t, restSecret, kj.value(t))
	code, body = do(t, ctx, http.MethodGet, c.HTTPURL(2)+"/api/v1/kv/sec/rest", "")
	require.Equal(t, http.StatusOK, code, body)
	assert.True(t, secrets.IsEnvelope([]byte(body)), "REST read without secret=true is the envelope")
	assert.NotContains(t, body, restSecret)
	envelopeREST := body

	// The value limit applies to the plaintext; the envelope may exceed it.
	atLimit := strings.Repeat("s", maxValue)
	code, body = do(t, ctx, http.MethodPut, c.HTTPURL(1)+"/api/v1/kv/sec/limit?secret=true", atLimit)
	assert.Equal(t, http.StatusOK, code, "a secret of exactly --max-value-bytes: %s", body)
	_, err = kvs[1].Put(ctx, &kvv1.PutRequest{Key: "sec/over", Value: []byte(atLimit + "s"), Secret: true})
	assert.Equal(t, codes.ResourceExhausted, status.Code(err), "a secret over the limit: %v", err)

	t.Run("bad input", func(t *testing.T) {
		before := getJSON(t, ctx, c.HTTPURL(0)+"/api/v1/kv/sec/rest")
		// An envelope copied to another key does not open there.
		code, body := do(t, ctx, http.MethodPut, c.HTTPURL(0)+"/api/v1/kv/sec/copied", envelopeREST)
		require.Equal(t, http.StatusOK, code, body)
		cases := []struct {
			name, method, path, body string
			status                   int
			mentions                 string
		}{
			{"secret=maybe on put", http.MethodPut, "/kv/sec/rest?secret=maybe", "x", 400, "secret"},
			{"secret=maybe on put of a new key", http.MethodPut, "/kv/sec/new?secret=maybe", "x", 400, "secret"},
			{"secret=maybe on get", http.MethodGet, "/kv/sec/rest?secret=maybe", "", 400, "secret"},
			{"secret get of a plain value", http.MethodGet, "/kv/plain/control?secret=true", "", 412, "secret=true"},
			{"secret get of an envelope copied from another key", http.MethodGet, "/kv/sec/copied?secret=true", "", 412, "another key"},
			{"secret get of a missing key", http.MethodGet, "/kv/sec/missing?secret=true", "", 404, "not found"},
			{"oversize secret", http.MethodPut, "/kv/sec/rest?secret=true", atLimit + "s", 413, "limit"},
			{"rotate with a GET", http.MethodGet, "/secrets/rotate", "", 405, "GET"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				resp := send(t, ctx, tc.method, c.HTTPURL(1)+"/api/v1"+tc.path, tc.body)
				assert.Equal(t, tc.status, resp.status, "HTTP status; body %s", resp.body)
				var eb struct{ Message string }
				require.NoError(t, json.Unmarshal([]byte(resp.body), &eb), resp.body)
				assert.Contains(t, eb.Message, tc.mentions, resp.body)
			})
		}
		_, err := kvs[2].Get(ctx, &kvv1.GetRequest{Key: "plain/control", Secret: true})
		assert.Equal(t, codes.FailedPrecondition, status.Code(err), "gRPC secret get of a plain value: %v", err)
		after := getJSON(t, ctx, c.HTTPURL(0)+"/api/v1/kv/sec/rest")
		assert.Equal(t, before.ModRevision, after.ModRevision, "sec/rest changed by a rejected request")
		code, _ = do(t, ctx, http.MethodGet, c.HTTPURL(0)+"/api/v1/kv/sec/new", "")
		assert.Equal(t, http.StatusNotFound, code, "a rejected put created its key")
	})

	// Rotation over REST on node 2: new writes on every node use key 2
	// within about a second (node.Refresh); everything written under key 1
	// stays readable everywhere. Nodes 0 and 1 write before any call that
	// would reread the keyring, so they show the periodic refresh.
	rotated := time.Now()
	code, body = do(t, ctx, http.MethodPost, c.HTTPURL(2)+"/api/v1/secrets/rotate", "")
	require.Equal(t, http.StatusOK, code, body)
	var rot struct {
		KeyID    uint32 `json:"key_id"`
		KeyCount uint32 `json:"key_count"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &rot), body)
	assert.Equal(t, uint32(2), rot.KeyID, body)
	assert.Equal(t, uint32(2), rot.KeyCount, body)
	for i := range 3 {
		key := "sec/rotated/" + c.Name(i)
		v := marker("rotated")
		secretValues = append(secretValues, v)
		for {
			_, err := kvs[i].Put(ctx, &kvv1.PutRequest{Key: key, Value: []byte(v), Secret: true})
			require.NoError(t, err)
			got, err := kvs[(i+1)%3].Get(ctx, &kvv1.GetRequest{Key: key})
			require.NoError(t, err)
			if envelopeKeyID(t, got.Value) == 2 {
				t.Logf("node %d sealed under the new key %s after the rotation", i, time.Since(rotated).Round(time.Millisecond))
				break
			}
			require.Less(t, time.Since(rotated), 5*time.Second, "node %d still seals under the old key", i)
			time.Sleep(100 * time.Millisecond)
		}
		got, err := kvs[(i+2)%3].Get(ctx, &kvv1.GetRequest{Key: key, Secret: true})
		require.NoError(t, err)
		assert.Equal(t, v, string(got.Value))
		for j := range 2 {
			old, err := kvs[i].Get(ctx, &kvv1.GetRequest{Key: "sec/grpc/" + c.Name(j), Secret: true})
			require.NoError(t, err, "a secret sealed before the rotation, through node %d", i)
			assert.Equal(t, first[j], string(old.Value))
		}
		st, err := secs[i].Status(ctx, &secretsv1.StatusRequest{})
		require.NoError(t, err)
		assert.Equal(t, uint32(2), st.KeyId, "status on node %d", i)
		assert.Equal(t, uint32(2), st.KeyCount, "status on node %d", i)
	}

	// Rotations racing on every node each get their own key id.
	ids := make([]uint32, 3)
	for i := range 3 {
		wg.Go(func() {
			r, err := secs[i].Rotate(ctx, &secretsv1.RotateRequest{})
			if assert.NoError(t, err, "rotate through node %d", i) {
				ids[i] = r.KeyId
			}
		})
	}
	wg.Wait()
	assert.ElementsMatch(t, []uint32{3, 4, 5}, ids, "key ids of concurrent rotations")
	st, err = secs[0].Status(ctx, &secretsv1.StatusRequest{})
	require.NoError(t, err)
	assert.Equal(t, uint32(5), st.KeyId)
	assert.Equal(t, uint32(5), st.KeyCount)
	got, err := kvs[1].Get(ctx, &kvv1.GetRequest{Key: "sec/rest", Secret: true})
	require.NoError(t, err)
	assert.Equal(t, restSecret, string(got.Value), "a secret under key 1 after four rotations")

	// Stop every node, so everything is on disk, and grep the data dirs.
	dirs := make([]string, 3)
	for i := range 3 {
		dirs[i] = c.DataDir(i)
		c.Kill(i)
	}
	files, snapshots, size, plainFound, plainInSnapshots := 0, 0, int64(0), 0, 0
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			files++
			if strings.Contains(path, "snapshot") {
				snapshots++
			}
			size += int64(len(data))
			for _, v := range secretValues {
				assert.False(t, bytes.Contains(data, []byte(v)), "plaintext of a secret in %s", path)
			}
			if bytes.Contains(data, []byte(plain)) {
				plainFound++
				if strings.Contains(path, "snapshot") {
					plainInSnapshots++
				}
			}
			return nil
		})
		require.NoError(t, err)
	}
	t.Logf("grepped %d files (%d of snapshots), %d bytes, for %d secret plaintexts; the plain control value is in %d files (%d of snapshots)",
		files, snapshots, size, len(secretValues), plainFound, plainInSnapshots)
	assert.Positive(t, plainFound, "the plain control value is in no file: the grep cannot see values")
	assert.Positive(t, snapshots, "no snapshot file in the data dirs")
}

// TestSecretsWrongKEK runs a node whose key-encryption key is not the
// cluster's: its secret reads and writes fail with FailedPrecondition
// (412 over REST) naming --kek-file and write nothing, while the other
// node and plain values are unaffected.
func TestSecretsWrongKEK(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 2-node cluster")
	}
	other := make([]byte, secrets.KeyBytes)
	_, err := rand.Read(other)
	require.NoError(t, err)
	c := nodetest.NewCluster(t, 2, nodetest.WithShards(1), nodetest.WithKEK(func(name string) []byte {
		if name == "node-1" {
			return other
		}
		return nil
	}))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	code, body := do(t, ctx, http.MethodPut, c.HTTPURL(0)+"/api/v1/kv/sec/a?secret=true", "s3cret")
	require.Equal(t, http.StatusOK, code, body)

	for _, tc := range []struct{ method, path, body string }{
		{http.MethodGet, "/kv/sec/a?secret=true", ""},
		{http.MethodPut, "/kv/sec/b?secret=true", "x"},
		{http.MethodPost, "/secrets/rotate", ""},
	} {
		resp := send(t, ctx, tc.method, c.HTTPURL(1)+"/api/v1"+tc.path, tc.body)
		assert.Equal(t, http.StatusPreconditionFailed, resp.status, "%s %s: %s", tc.method, tc.path, resp.body)
		assert.Contains(t, resp.body, "--kek-file", "%s %s", tc.method, tc.path)
	}
	code, _ = do(t, ctx, http.MethodGet, c.HTTPURL(0)+"/api/v1/kv/sec/b", "")
	assert.Equal(t, http.StatusNotFound, code, "a refused secret put wrote its key")
	code, body = do(t, ctx, http.MethodGet, c.HTTPURL(0)+"/api/v1/secrets/status", "")
	assert.Equal(t, http.StatusOK, code, body)
	assert.JSONEq(t, `{"key_id":1,"key_count":1}`, body, "a refused rotation changed the keyring")
	code, body = do(t, ctx, http.MethodGet, c.HTTPURL(1)+"/api/v1/kv/sec/a", "")
	assert.Equal(t, http.StatusOK, code, "plain read of a secret on the misconfigured node: %s", body)
	code, body = do(t, ctx, http.MethodGet, c.HTTPURL(0)+"/api/v1/kv/sec/a?secret=true", "")
	assert.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, "s3cret", body)
}

// envelopeKeyID returns the data key id in an envelope's header: after the
// 4-byte magic and the version byte (layout in package secrets).
func envelopeKeyID(t *testing.T, env []byte) uint32 {
	t.Helper()
	require.True(t, secrets.IsEnvelope(env), "not an envelope: %s", hex.EncodeToString(env[:min(len(env), 16)]))
	return binary.BigEndian.Uint32(env[5:9])
}
