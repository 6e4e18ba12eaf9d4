package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	kvv1 "github.com/cavedb/cave/proto/cave/kv/v1"
)

// gatewayQuery is how the key routes would read a query through
// grpc-gateway: the consistency rewrite of every REST request, ParseForm,
// then the REST API's query parser (grpc-gateway's, with queryParser's
// rules) with the filter of the generated handler. It is the reference
// parseKVQuery must match.
func gatewayQuery(raw string, msg proto.Message, bound ...string) error {
	u := &url.URL{RawQuery: raw}
	if q := u.Query(); q.Has("consistency") {
		if name, ok := friendlyConsistency(q.Get("consistency")); ok {
			q.Set("consistency", name)
		}
		u.RawQuery = q.Encode()
	}
	values, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return err
	}
	var seqs [][]string
	for _, b := range bound {
		seqs = append(seqs, []string{b})
	}
	return queryParser{}.Parse(msg, values, utilities.NewDoubleArray(seqs))
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestParseKVQueryMatchesGateway checks parseKVQuery against grpc-gateway's
// parser on the same queries: the same fields set and the same error
// message. Each query has at most one problem, since grpc-gateway's choice
// among several depends on map order.
func TestParseKVQueryMatchesGateway(t *testing.T) {
	t.Parallel()
	get := []string{
		"", "consistency=stale", "consistency=STALE", "consistency=Linearizable", "consistency=CONSISTENCY_STALE",
		"consistency=CONSISTENCY_LINEARIZABLE", "consistency=0", "consistency=2", "consistency=7", "consistency=foo",
		"consistency=consistency_stale", "consistency=stale&consistency=linearizable", "consistency=foo&consistency=bar",
		"consistency=99999999999", "secret=true", "secret=1", "secret=TRUE", "secret=True", "secret=t", "secret=F", "secret=yes", "secret=true&secret=false",
		"secret=", "format=json", "format=raw", "format=xml", "format=json&format=raw", "key=other", "key.x=1",
		"key[a]=1", "unknown=1", "unknown.x.y=1", "secret.x=1", "secret.=1", "format[a]=b", "a=1;b=2",
		"a=%zz", "%zz=1", "a=1;b=2&consistency=stale", "secret=true&format=json&consistency=stale", "&&secret=true&",
		"=x&secret=1", "Secret=yes",
	}
	for _, raw := range get {
		want := &kvv1.GetRequest{}
		wantErr := gatewayQuery(raw, want, "key")
		q, err := parseKVQuery(raw, getParams)
		assert.Equal(t, errText(wantErr), errText(err), "GET ?%s: error", raw)
		assert.NotContains(t, errText(err), "strconv", "GET ?%s", raw)
		if wantErr == nil && err == nil {
			got := &kvv1.GetRequest{Consistency: q.consistency, Secret: q.secret, Format: q.format}
			assert.True(t, proto.Equal(want, got), "GET ?%s: got %v, want %v", raw, got, want)
		}
	}
	put := []string{
		"", "prev_revision=5", "prevRevision=5", "prev_revision=0", "prev_revision=-1", "prev_revision=abc",
		"prev_revision=99999999999999999999", "prev_revision=1&prevRevision=2", "prev_revision=1&prev_revision=2",
		"value=abc", "value.x=1", "secret=true&prev_revision=3", "secret=maybe", "prevRevision[x]=1",
		"prev_revision.x=1", "consistency=stale&prev_revision=4", "format=json", "prev_revision=%zz",
	}
	for _, raw := range put {
		want := &kvv1.PutRequest{}
		wantErr := gatewayQuery(raw, want, "value", "key")
		q, err := parseKVQuery(raw, putParams)
		assert.Equal(t, errText(wantErr), errText(err), "PUT ?%s: error", raw)
		assert.NotContains(t, errText(err), "strconv", "PUT ?%s", raw)
		if wantErr == nil && err == nil {
			got := &kvv1.PutRequest{PrevRevision: q.prevRevision, Secret: q.secret}
			assert.True(t, proto.Equal(want, got), "PUT ?%s: got %v, want %v", raw, got, want)
		}
	}
	del := []string{"", "prev_revision=3", "prevRevision=0", "prev_revision=x", "secret=true", "value=x", "prev_revision=1&prev_revision=1"}
	for _, raw := range del {
		want := &kvv1.DeleteRequest{}
		wantErr := gatewayQuery(raw, want, "key")
		q, err := parseKVQuery(raw, deleteParams)
		assert.Equal(t, errText(wantErr), errText(err), "DELETE ?%s: error", raw)
		if wantErr == nil && err == nil {
			got := &kvv1.DeleteRequest{PrevRevision: q.prevRevision}
			assert.True(t, proto.Equal(want, got), "DELETE ?%s: got %v, want %v", raw, got, want)
		}
	}
}

// TestParseKVQueryNoStore checks that a read asking for a secret is marked
// not cacheable even when its query is refused.
func TestParseKVQueryNoStore(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]bool{
		"secret=true": true, "secret=1": false, "secret=TRUE": false, "secret=true&secret=false": true, "secret=true&consistency=foo": true,
		"secret=false": false, "": false, "secret=x": false, "Secret=true": false,
	} {
		q, _ := parseKVQuery(raw, getParams)
		assert.Equal(t, want, q.noStore, "?%s", raw)
	}
}

// TestKVJSONMatchesProtojson checks the hand-written PUT and DELETE
// answers against protojson with the REST API's options, byte for byte up
// to the insignificant whitespace that protojson adds at random per build.
func TestKVJSONMatchesProtojson(t *testing.T) {
	t.Parallel()
	compact := func(b []byte) string {
		var out bytes.Buffer
		require.NoError(t, json.Compact(&out, b), "%s", b)
		return out.String()
	}
	opts := jsonMarshaler().MarshalOptions
	keys := []string{"", "a", "a/b/c", `q"uote`, `back\slash`, "ünï/ключ/with space", "c/q?x=1&y", "c/pct%2Fsign",
		"<tag>&amp;", "tab\there", "nl\n", "ctl\x01\x1f\x7f", "emoji/😀", "\u2028\u2029"}
	revs := []int64{0, 1, 12, math.MaxInt64, -1, math.MinInt64}
	for _, k := range keys {
		for _, rev := range revs {
			m := &kvv1.PutResponse{Key: k, Revision: rev}
			want, err := opts.Marshal(m)
			require.NoError(t, err)
			assert.Equal(t, compact(want), string(appendPutJSON(nil, m)), "PutResponse %v", m)
		}
	}
	for _, deleted := range []bool{true, false} {
		for _, rev := range revs {
			m := &kvv1.DeleteResponse{Deleted: deleted, Revision: rev}
			want, err := opts.Marshal(m)
			require.NoError(t, err)
			assert.Equal(t, compact(want), string(appendDeleteJSON(nil, m)), "DeleteResponse %v", m)
		}
	}
	// Not reachable (keys are valid UTF-8), but still valid JSON.
	var s string
	require.NoError(t, json.Unmarshal(appendJSONString(nil, "a\xffb"), &s))
	assert.Equal(t, "a\ufffdb", s)
}

// TestKVJSONAppends checks that the encoders append to what b holds.
func TestKVJSONAppends(t *testing.T) {
	t.Parallel()
	b := appendPutJSON([]byte("x"), &kvv1.PutResponse{Key: "k", Revision: 3})
	assert.Equal(t, `x{"key":"k","revision":"3"}`, string(b))
	assert.Equal(t, fmt.Sprintf(`{"deleted":true,"revision":"%d"}`, 9), string(appendDeleteJSON(nil, &kvv1.DeleteResponse{Deleted: true, Revision: 9})))
}

// TestCondition checks how If-Match combines with prev_revision.
func TestCondition(t *testing.T) {
	t.Parallel()
	five, zero := int64(5), int64(0)
	cases := []struct {
		name      string
		ifMatch   []string
		prev      *int64
		want      *int64
		mustExist bool
		err       string
	}{
		{name: "none", want: nil},
		{name: "prev only", prev: &five, want: &five},
		{name: "tag", ifMatch: []string{`"5"`}, want: &five},
		{name: "tag and same prev", ifMatch: []string{`"5"`}, prev: &five, want: &five},
		{name: "tag zero", ifMatch: []string{`"0"`}, want: &zero},
		{name: "tag and other prev", ifMatch: []string{`"5"`}, prev: &zero, err: `If-Match "5" and prev_revision=0 disagree`},
		{name: "star", ifMatch: []string{"*"}, mustExist: true},
		{name: "star and prev", ifMatch: []string{" * "}, prev: &five, want: &five},
		{name: "star and prev 0", ifMatch: []string{"*"}, prev: &zero, err: "If-Match: * (the key must exist) contradicts prev_revision=0 (the key must not exist)"},
		{name: "unquoted", ifMatch: []string{"5"}, err: `If-Match must be * or one entity tag "REV" as sent in ETag, got "5"`},
		{name: "weak", ifMatch: []string{`W/"5"`}, err: `If-Match must be * or one entity tag "REV" as sent in ETag, got "W/\"5\""`},
		{name: "list", ifMatch: []string{`"5", "6"`}, err: `If-Match must be * or one entity tag "REV" as sent in ETag, got "\"5\", \"6\""`},
		{name: "two lines", ifMatch: []string{`"5"`, `"6"`}, err: `If-Match must be * or one entity tag "REV" as sent in ETag, got "\"5\",\"6\""`},
		{name: "negative", ifMatch: []string{`"-1"`}, err: `If-Match must be * or one entity tag "REV" as sent in ETag, got "\"-1\""`},
		{name: "leading zero", ifMatch: []string{`"05"`}, err: `If-Match must be * or one entity tag "REV" as sent in ETag, got "\"05\""`},
		{name: "empty", ifMatch: []string{`""`}, err: `If-Match must be * or one entity tag "REV" as sent in ETag, got "\"\""`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(http.MethodPut, "/api/v1/kv/k", nil)
			for _, v := range tc.ifMatch {
				r.Header.Add("If-Match", v)
			}
			got, mustExist, err := condition(r, tc.prev)
			if tc.err != "" {
				require.EqualError(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.mustExist, mustExist)
		})
	}
}

// TestNoneMatchHits checks If-None-Match against the current revision.
func TestNoneMatchHits(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		values []string
		want   bool
	}{
		{[]string{`"7"`}, true}, {[]string{`W/"7"`}, true}, {[]string{"*"}, true},
		{[]string{`"3", "7"`}, true}, {[]string{`"3"`, `"7"`}, true},
		{[]string{`"3"`}, false}, {[]string{"7"}, false}, {[]string{`"70"`}, false}, {[]string{""}, false},
	} {
		assert.Equal(t, tc.want, noneMatchHits(tc.values, 7), "%q", tc.values)
	}
}

// TestQueryMessages checks the messages of refused parameters: a bool is
// exactly true or false, and numbers are described without strconv's
// words, on the key routes and on grpc-gateway's.
func TestQueryMessages(t *testing.T) {
	t.Parallel()
	cases := []struct{ raw, want string }{
		{"secret=1", `parsing field "secret": "1" is not a valid value: use true or false`},
		{"secret=TRUE", `parsing field "secret": "TRUE" is not a valid value: use true or false`},
		{"prev_revision=abc", `parsing field "prev_revision": "abc" is not a number`},
		{"prev_revision=99999999999999999999", `parsing field "prev_revision": "99999999999999999999" is out of range`},
	}
	for _, tc := range cases {
		_, err := parseKVQuery(tc.raw, putParams)
		assert.EqualError(t, err, tc.want, "key route ?%s", tc.raw)
		assert.EqualError(t, gatewayQuery(tc.raw, &kvv1.PutRequest{}, "value", "key"), tc.want, "grpc-gateway ?%s", tc.raw)
	}
	assert.EqualError(t, gatewayQuery("limit=ten", &kvv1.ListRequest{}), `parsing field "limit": "ten" is not a number`)
}
