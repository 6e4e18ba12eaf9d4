package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	kvclient "github.com/cavedb/cave/client"
	kvv1 "github.com/cavedb/cave/proto/cave/kv/v1"
)

// benchStore is one connection of a bench target. Keys are indexes into
// the bench's key space. Its methods are safe for concurrent use.
type benchStore interface {
	// put writes value under key and returns the key's new mod revision.
	put(ctx context.Context, key int, value []byte) (int64, error)
	// get reads key and returns its mod revision; a missing key is an
	// error labelled NotFound.
	get(ctx context.Context, key int) (int64, error)
	// cas writes value under key if its mod revision is still prev and
	// returns the new one; a lost comparison is an error labelled
	// FailedPrecondition (HTTP 412 over REST).
	cas(ctx context.Context, key int, prev int64, value []byte) (int64, error)
	close()
}

// opError is an operation's failure that is not a gRPC status: an HTTP
// status or an answer that the load does not accept.
type opError struct {
	label string // the errors_by_code key: "HTTP 503", "NotFound"
	msg   string
}

func (e *opError) Error() string { return e.label + ": " + e.msg }

// errorLabel returns the errors_by_code key of err: the gRPC code name
// (cave and etcd), "HTTP <status>" (REST), or "transport" for a failure
// without an answer.
func errorLabel(err error) string {
	var oe *opError
	if errors.As(err, &oe) {
		return oe.label
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return codes.DeadlineExceeded.String()
	}
	if st, ok := status.FromError(err); ok {
		return st.Code().String()
	}
	var coded interface{ Code() codes.Code } // etcd's rpctypes.EtcdError
	if errors.As(err, &coded) {
		return coded.Code().String()
	}
	return "transport"
}

// openStores connects to the endpoints of cfg: --conns connections per
// endpoint, ordered so that consecutive workers use consecutive endpoints.
// On error nothing stays open.
func openStores(c *cli.Context, cfg benchConfig) ([]benchStore, error) {
	keys := make([]string, cfg.keys)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s%08d", cfg.keyPrefix, i)
	}
	open, endpoints, err := storeOpener(c, cfg, keys)
	if err != nil {
		return nil, err
	}
	var stores []benchStore
	for range cfg.conns {
		for _, ep := range endpoints {
			s, err := open(ep)
			if err != nil {
				for _, s := range stores {
					s.close()
				}
				return nil, err
			}
			stores = append(stores, s)
		}
	}
	return stores, nil
}

// storeOpener returns the function that opens one connection of cfg's
// target and protocol, and the endpoints to open it to.
func storeOpener(c *cli.Context, cfg benchConfig, keys []string) (func(ep string) (benchStore, error), []string, error) {
	tlsCfg, err := tlsConfig(c.String("cacert"), c.String("cert"), c.String("key"))
	if err != nil {
		return nil, nil, err
	}
	stale := cfg.consistency == consistencyStale
	switch {
	case cfg.target == targetEtcd:
		return func(ep string) (benchStore, error) {
			cli, err := clientv3.New(clientv3.Config{
				Endpoints:          []string{ep},
				DialTimeout:        cfg.opTimeout,
				TLS:                tlsCfg,
				Logger:             zap.NewNop(),
				MaxCallSendMsgSize: maxMessageBytes,
				MaxCallRecvMsgSize: maxMessageBytes,
			})
			if err != nil {
				return nil, fmt.Errorf("etcd %s: %w", ep, err)
			}
			return &etcdStore{cli: cli, keys: keys, stale: stale}, nil
		}, cfg.endpoints, nil
	case cfg.protocol == protoREST:
		scheme := "http"
		if tlsCfg != nil {
			scheme = "https"
		}
		paths := make([]string, len(keys))
		for i, k := range keys {
			paths[i] = (&url.URL{Path: "/api/v1/kv/" + k}).EscapedPath()
		}
		auth := ""
		if tok := c.String("token"); tok != "" {
			auth = "Bearer " + tok
		}
		return func(ep string) (benchStore, error) {
			tr := &http.Transport{
				TLSClientConfig:     tlsCfg,
				MaxIdleConns:        cfg.clients,
				MaxIdleConnsPerHost: cfg.clients,
				IdleConnTimeout:     time.Minute,
				DisableCompression:  true,
			}
			return &restStore{
				hc:    &http.Client{Transport: tr},
				base:  scheme + "://" + ep,
				paths: paths,
				auth:  auth,
				stale: stale,
			}, nil
		}, cfg.httpEndpoints, nil
	case cfg.routing == routeClient:
		base := kvclient.DefaultConfig()
		base.TLS, base.Token, base.MaxMessageBytes = tlsCfg, c.String("token"), maxMessageBytes
		return func(ep string) (benchStore, error) {
			// Each store's client starts from its own endpoint, so the
			// routing reads spread over the nodes.
			ccfg := base
			ccfg.Endpoints = append([]string{ep}, slices.DeleteFunc(slices.Clone(cfg.endpoints), func(e string) bool { return e == ep })...)
			cl, err := kvclient.New(c.Context, ccfg)
			if err != nil {
				return nil, err
			}
			return &clientStore{cl: cl, keys: keys, stale: stale}, nil
		}, cfg.endpoints, nil
	default:
		opts := dialOptions(c, tlsCfg)
		return func(ep string) (benchStore, error) {
			conn, err := grpc.NewClient(ep, opts...)
			if err != nil {
				return nil, fmt.Errorf("--endpoints %q: %w", ep, err)
			}
			return &grpcStore{conn: conn, kv: kvv1.NewKVClient(conn), keys: keys, stale: stale}, nil
		}, cfg.endpoints, nil
	}
}

// clientStore is one Go client (package client) of a cave cluster.
type clientStore struct {
	cl    *kvclient.Client
	keys  []string
	stale bool
}

func (s *clientStore) put(ctx context.Context, key int, value []byte) (int64, error) {
	return s.cl.Put(ctx, s.keys[key], value)
}

func (s *clientStore) get(ctx context.Context, key int) (int64, error) {
	var opts []kvclient.GetOption
	if s.stale {
		opts = append(opts, kvclient.Stale())
	}
	kv, err := s.cl.Get(ctx, s.keys[key], opts...)
	if err != nil {
		return 0, err
	}
	return kv.ModRevision, nil
}

func (s *clientStore) cas(ctx context.Context, key int, prev int64, value []byte) (int64, error) {
	return s.cl.Put(ctx, s.keys[key], value, kvclient.PrevRevision(prev))
}

func (s *clientStore) close() { s.cl.Close() }

// grpcStore is one gRPC connection to a cave node.
type grpcStore struct {
	conn  *grpc.ClientConn
	kv    kvv1.KVClient
	keys  []string
	stale bool
}

func (s *grpcStore) put(ctx context.Context, key int, value []byte) (int64, error) {
	resp, err := s.kv.Put(ctx, &kvv1.PutRequest{Key: s.keys[key], Value: value})
	return resp.GetRevision(), err
}

func (s *grpcStore) get(ctx context.Context, key int) (int64, error) {
	req := &kvv1.GetRequest{Key: s.keys[key]}
	if s.stale {
		req.Consistency = kvv1.Consistency_CONSISTENCY_STALE
	}
	resp, err := s.kv.Get(ctx, req)
	return resp.GetModRevision(), err
}

func (s *grpcStore) cas(ctx context.Context, key int, prev int64, value []byte) (int64, error) {
	resp, err := s.kv.Put(ctx, &kvv1.PutRequest{Key: s.keys[key], Value: value, PrevRevision: &prev})
	return resp.GetRevision(), err
}

func (s *grpcStore) close() { s.conn.Close() }

// restStore is one HTTP transport to a cave node's REST API.
type restStore struct {
	hc    *http.Client
	base  string   // scheme://HOST:PORT
	paths []string // escaped /api/v1/kv/KEY of every key
	auth  string   // Authorization header, "" for none
	stale bool
}

// do sends one request and returns the answer's body when the status is
// 200; any other status is an opError labelled with it.
func (s *restStore) do(ctx context.Context, method, url string, body []byte) (*http.Response, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, nil, err
	}
	if s.auth != "" {
		req.Header.Set("Authorization", s.auth)
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxMessageBytes))
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, &opError{label: "HTTP " + strconv.Itoa(resp.StatusCode), msg: string(bytes.TrimSpace(b[:min(len(b), 200)]))}
	}
	return resp, b, nil
}

// putRevision is the part of a REST PutResponse the load uses.
type putRevision struct {
	Revision int64 `json:"revision,string"`
}

func (s *restStore) write(ctx context.Context, url string, value []byte) (int64, error) {
	if value == nil {
		value = []byte{}
	}
	_, b, err := s.do(ctx, http.MethodPut, url, value)
	if err != nil {
		return 0, err
	}
	var pr putRevision
	if err := json.Unmarshal(b, &pr); err != nil {
		return 0, &opError{label: "bad answer", msg: err.Error()}
	}
	return pr.Revision, nil
}

func (s *restStore) put(ctx context.Context, key int, value []byte) (int64, error) {
	return s.write(ctx, s.base+s.paths[key], value)
}

func (s *restStore) get(ctx context.Context, key int) (int64, error) {
	u := s.base + s.paths[key]
	if s.stale {
		u += "?consistency=stale"
	}
	resp, _, err := s.do(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	rev, err := strconv.ParseInt(resp.Header.Get("X-Cave-Revision"), 10, 64)
	if err != nil {
		return 0, &opError{label: "bad answer", msg: "X-Cave-Revision: " + err.Error()}
	}
	return rev, nil
}

func (s *restStore) cas(ctx context.Context, key int, prev int64, value []byte) (int64, error) {
	return s.write(ctx, s.base+s.paths[key]+"?prev_revision="+strconv.FormatInt(prev, 10), value)
}

func (s *restStore) close() { s.hc.CloseIdleConnections() }

// etcdStore is one etcd client, pinned to one member.
type etcdStore struct {
	cli   *clientv3.Client
	keys  []string
	stale bool // serializable reads
}

func (s *etcdStore) put(ctx context.Context, key int, value []byte) (int64, error) {
	resp, err := s.cli.Put(ctx, s.keys[key], string(value))
	if err != nil {
		return 0, err
	}
	return resp.Header.Revision, nil
}

func (s *etcdStore) get(ctx context.Context, key int) (int64, error) {
	var opts []clientv3.OpOption
	if s.stale {
		opts = append(opts, clientv3.WithSerializable())
	}
	resp, err := s.cli.Get(ctx, s.keys[key], opts...)
	if err != nil {
		return 0, err
	}
	if len(resp.Kvs) == 0 {
		return 0, &opError{label: codes.NotFound.String(), msg: "key not found"}
	}
	return resp.Kvs[0].ModRevision, nil
}

func (s *etcdStore) cas(ctx context.Context, key int, prev int64, value []byte) (int64, error) {
	k := s.keys[key]
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(k), "=", prev)).
		Then(clientv3.OpPut(k, string(value))).
		Commit()
	if err != nil {
		return 0, err
	}
	if !resp.Succeeded {
		return 0, &opError{label: codes.FailedPrecondition.String(), msg: "condition failed"}
	}
	return resp.Header.Revision, nil
}

func (s *etcdStore) close() { s.cli.Close() }
