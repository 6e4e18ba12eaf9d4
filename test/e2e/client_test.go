package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// restClient talks cave's REST API (README, "Using the REST API") to any node. It is safe for
// concurrent use; connections are kept alive between requests.
type restClient struct {
	hc *http.Client
}

func newRESTClient(timeout time.Duration) *restClient {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
	}
	return &restClient{hc: &http.Client{Timeout: timeout, Transport: tr}}
}

func (c *restClient) close() { c.hc.CloseIdleConnections() }

// kvURL is base + /api/v1/kv/ + key, each path segment escaped.
func kvURL(base, key string, q url.Values) string {
	segs := strings.Split(key, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	u := base + "/api/v1/kv/" + strings.Join(segs, "/")
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// apiError is the JSON error body cave returns with a 4xx/5xx status.
type apiError struct {
	Status  int
	Code    json.RawMessage `json:"code"`
	Message string          `json:"message"`
	Raw     string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("HTTP %d: %s", e.Status, e.Raw)
}

func readAPIError(resp *http.Response) *apiError {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	e := &apiError{Status: resp.StatusCode, Raw: strings.TrimSpace(string(body))}
	_ = json.Unmarshal(body, e)
	return e
}

// contractError is a 200 answer that breaks the REST contract (bad body,
// missing header). The request was applied, if it was a write.
type contractError struct{ msg string }

func (e *contractError) Error() string { return "contract violation: " + e.msg }

func contractErrorf(format string, args ...any) error {
	return &contractError{msg: fmt.Sprintf(format, args...)}
}

// isContractError reports whether err is a *contractError.
func isContractError(err error) bool {
	var ce *contractError
	return errors.As(err, &ce)
}

// jsonInt decodes an int64 written either as a JSON number or as a string
// (protojson writes int64 as "12"). Null and absent decode as 0.
type jsonInt int64

func (j *jsonInt) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*j = 0
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("not an integer: %s", b)
	}
	*j = jsonInt(n)
	return nil
}

// put writes key=value through node base. With prevRev non-nil it sends
// ?prev_revision=N. It returns the revision from a 200 answer, the HTTP
// status (0 when no answer came back) and an error for anything but 200:
// an *apiError when the node answered, a transport error otherwise.
func (c *restClient) put(base, key string, value []byte, prevRev *int64) (int64, int, error) {
	q := url.Values{}
	if prevRev != nil {
		q.Set("prev_revision", strconv.FormatInt(*prevRev, 10))
	}
	req, err := http.NewRequest(http.MethodPut, kvURL(base, key, q), bytes.NewReader(value))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, resp.StatusCode, readAPIError(resp)
	}
	var out struct {
		Key      string  `json:"key"`
		Revision jsonInt `json:"revision"`
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, resp.StatusCode, fmt.Errorf("put %s: reading answer: %w", key, err)
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return 0, resp.StatusCode, contractErrorf("put %s: bad answer %q: %v", key, body, err)
	}
	if out.Revision <= 0 {
		return 0, resp.StatusCode, contractErrorf("put %s: answer without a positive revision: %s", key, body)
	}
	return int64(out.Revision), resp.StatusCode, nil
}

// get reads key through node base (linearizable unless stale). found is
// false on 404. revision comes from the X-Cave-Revision header. Any status
// other than 200/404 is an *apiError.
func (c *restClient) get(base, key string, stale bool) (value []byte, revision int64, found bool, err error) {
	q := url.Values{}
	if stale {
		q.Set("consistency", "stale")
	}
	resp, err := c.hc.Get(kvURL(base, key, q))
	if err != nil {
		return nil, 0, false, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil, 0, false, nil
	default:
		return nil, 0, false, readAPIError(resp)
	}
	value, err = io.ReadAll(resp.Body)
	if err != nil {
		return nil, 0, false, fmt.Errorf("get %s: reading body: %w", key, err)
	}
	h := resp.Header.Get("X-Cave-Revision")
	revision, err = strconv.ParseInt(h, 10, 64)
	if err != nil || revision <= 0 {
		return value, 0, true, contractErrorf("get %s: 200 with bad X-Cave-Revision header %q", key, h)
	}
	return value, revision, true, nil
}

// del deletes key through node base, with ?prev_revision when prevRev is set.
func (c *restClient) del(base, key string, prevRev *int64) (deleted bool, revision int64, status int, err error) {
	q := url.Values{}
	if prevRev != nil {
		q.Set("prev_revision", strconv.FormatInt(*prevRev, 10))
	}
	req, err := http.NewRequest(http.MethodDelete, kvURL(base, key, q), nil)
	if err != nil {
		return false, 0, 0, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return false, 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, 0, resp.StatusCode, readAPIError(resp)
	}
	var out struct {
		Deleted  bool    `json:"deleted"`
		Revision jsonInt `json:"revision"`
	}
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &out); err != nil {
		return false, 0, resp.StatusCode, contractErrorf("delete %s: bad answer %q: %v", key, body, err)
	}
	return out.Deleted, int64(out.Revision), resp.StatusCode, nil
}

// statusOf returns the HTTP status carried by err, or 0.
func statusOf(err error) int {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// neverSent reports whether err proves the request never reached a server
// (the TCP dial failed), so it cannot have been applied.
func neverSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// Cluster views (README, "Using the REST API").

type replicaInfo struct {
	Node      string  `json:"node"`
	ReplicaID jsonInt `json:"replica_id"`
	Role      string  `json:"role"`
}

type shardInfo struct {
	ID       jsonInt       `json:"id"`
	Leader   string        `json:"leader"`
	Keys     jsonInt       `json:"keys"`
	Bytes    jsonInt       `json:"bytes"`
	Replicas []replicaInfo `json:"replicas"`
}

func (s shardInfo) String() string {
	var rs []string
	for _, r := range s.Replicas {
		rs = append(rs, fmt.Sprintf("%s/%d/%s", r.Node, r.ReplicaID, r.Role))
	}
	return fmt.Sprintf("shard %d leader=%q keys=%d replicas=[%s]", s.ID, s.Leader, s.Keys, strings.Join(rs, " "))
}

type memberInfo struct {
	Name       string `json:"name"`
	HTTPAddr   string `json:"http_addr"`
	GRPCAddr   string `json:"grpc_addr"`
	RaftAddr   string `json:"raft_addr"`
	GossipAddr string `json:"gossip_addr"`
	State      string `json:"state"`
}

func (c *restClient) getJSON(u string, out any) error {
	resp, err := c.hc.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return readAPIError(resp)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("GET %s: bad JSON %q: %w", u, truncate(body, 300), err)
	}
	return nil
}

func (c *restClient) shards(base string) ([]shardInfo, error) {
	var out struct {
		Shards []shardInfo `json:"shards"`
	}
	err := c.getJSON(base+"/api/v1/cluster/shards", &out)
	return out.Shards, err
}

func (c *restClient) members(base string) ([]memberInfo, error) {
	var out struct {
		Members []memberInfo `json:"members"`
	}
	err := c.getJSON(base+"/api/v1/cluster/members", &out)
	return out.Members, err
}

func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "..."
}

func describeShards(ss []shardInfo) string {
	var lines []string
	for _, s := range ss {
		lines = append(lines, s.String())
	}
	return strings.Join(lines, "\n  ")
}
