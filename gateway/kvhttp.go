package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	kvv1 "github.com/cavedb/cave/proto/cave/kv/v1"
	"github.com/cavedb/cave/router"
)

// kvPath is the prefix of the key routes: /api/v1/kv/{key...}.
const kvPath = "/api/v1/kv/"

// kvAllow is the Allow header of a 405 on a key route.
const kvAllow = "GET, HEAD, PUT, POST, DELETE"

// kvHTTP serves the key routes of the REST contract (README) (GET, HEAD, PUT, POST and
// DELETE on /api/v1/kv/{key...}) without grpc-gateway: it parses the
// request by hand and calls kvService in process through intercept, the
// interceptor localConn runs for the grpc-gateway routes (recovery, then
// authz.unary). A REST call is therefore decided and audited exactly once,
// by the gRPC method's rule, like a gRPC call, and it is not counted as a
// gRPC call. Requests and answers are those of grpc-gateway's mapping of
// the KV service: the same query parameters, statuses, error bodies,
// headers and JSON. On top of that mapping it speaks HTTP's conditional
// requests: a GET whose If-None-Match names the key's current ETag is
// answered 304, and If-Match on a PUT or DELETE is a prev_revision
// condition (see condition).
//
// It is safe for concurrent use; its fields are set by newKVHTTP only.
type kvHTTP struct {
	kv            *kvService
	intercept     grpc.UnaryServerInterceptor
	maxValueBytes int
	// next serves the paths that only look like key routes (/api/v1/kvx):
	// the grpc-gateway mux, which answers them 404.
	next http.Handler

	getInfo, putInfo, deleteInfo grpc.UnaryServerInfo
	get, put, delete             grpc.UnaryHandler
}

// newKVHTTP returns the handler of the key routes, which calls kv through
// intercept and hands other paths to next.
func newKVHTTP(kv *kvService, intercept grpc.UnaryServerInterceptor, maxValueBytes int, next http.Handler) *kvHTTP {
	return &kvHTTP{
		kv: kv, intercept: intercept, maxValueBytes: maxValueBytes, next: next,
		getInfo:    grpc.UnaryServerInfo{Server: kv, FullMethod: kvv1.KV_Get_FullMethodName},
		putInfo:    grpc.UnaryServerInfo{Server: kv, FullMethod: kvv1.KV_Put_FullMethodName},
		deleteInfo: grpc.UnaryServerInfo{Server: kv, FullMethod: kvv1.KV_Delete_FullMethodName},
		get: func(ctx context.Context, req any) (any, error) {
			return kv.Get(ctx, req.(*kvv1.GetRequest))
		},
		put: func(ctx context.Context, req any) (any, error) {
			return kv.Put(ctx, req.(*kvv1.PutRequest))
		},
		delete: func(ctx context.Context, req any) (any, error) {
			return kv.Delete(ctx, req.(*kvv1.DeleteRequest))
		},
	}
}

// ServeHTTP implements http.Handler. The path is taken as it is, without
// cleaning: a key with a "." or ".." segment is refused by validateKey.
func (h *kvHTTP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key, ok := strings.CutPrefix(r.URL.Path, kvPath)
	if !ok && r.URL.Path != kvPath[:len(kvPath)-1] {
		h.next.ServeHTTP(w, r)
		return
	}
	if strings.Trim(key, "/") == "" {
		writeError(w, status.New(codes.InvalidArgument, "key must not be empty: use /api/v1/kv/{key}"))
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		h.serveGet(w, r, key)
	case http.MethodPut, http.MethodPost:
		h.servePut(w, r, key)
	case http.MethodDelete:
		h.serveDelete(w, r, key)
	default:
		methodNotAllowed(w, r, kvAllow)
	}
}

func (h *kvHTTP) serveGet(w http.ResponseWriter, r *http.Request, key string) {
	q, err := parseKVQuery(r.URL.RawQuery, getParams)
	if q.noStore {
		// The answer is a plaintext secret: no cache may keep it.
		w.Header().Set("Cache-Control", "no-store")
	}
	if err != nil {
		writeError(w, status.New(codes.InvalidArgument, err.Error()))
		return
	}
	req := &kvv1.GetRequest{Key: key, Consistency: q.consistency, Secret: q.secret, Format: q.format}
	out, err := h.intercept(r.Context(), req, &h.getInfo, h.get)
	if err != nil {
		writeError(w, status.Convert(err))
		return
	}
	resp := out.(*kvv1.GetResponse)
	hd := w.Header()
	hd.Set("X-Cave-Revision", strconv.FormatInt(resp.ModRevision, 10))
	hd.Set("X-Cave-Create-Revision", strconv.FormatInt(resp.CreateRevision, 10))
	hd.Set("X-Cave-Version", strconv.FormatInt(resp.Version, 10))
	hd.Set("ETag", etag(resp.ModRevision))
	if inm := r.Header.Values("If-None-Match"); len(inm) > 0 && noneMatchHits(inm, resp.ModRevision) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body, contentType := resp.Value, "application/octet-stream"
	if req.Format == "json" {
		if body, err = jsonMarshaler().MarshalOptions.Marshal(resp); err != nil {
			writeError(w, status.Convert(err))
			return
		}
		contentType = "application/json"
	}
	writeBody(w, r, contentType, body)
}

// etag is the entity tag of a key at mod_revision rev: "rev", quoted.
func etag(rev int64) string { return `"` + strconv.FormatInt(rev, 10) + `"` }

// noneMatchHits reports whether the If-None-Match header lines values
// name the key's current revision rev: "*", or a list of entity tags of
// which one, weak (W/"rev") or strong, is etag(rev). Tags that are not
// cave's never match.
func noneMatchHits(values []string, rev int64) bool {
	want := etag(rev)
	for _, v := range values {
		for tag := range strings.SplitSeq(v, ",") {
			tag = strings.TrimSpace(tag)
			if tag == "*" || strings.TrimPrefix(tag, "W/") == want {
				return true
			}
		}
	}
	return false
}

// condition is the prev_revision condition of a PUT or DELETE: the
// parameter prev (nil: none) combined with an If-Match header. If-Match
// takes "*" (the key must exist: mustExist) or one strong entity tag
// "REV" as sent in ETag (the same as prev_revision=REV). It returns an
// error for people, meant as InvalidArgument, for any other If-Match and
// when the header and the parameter disagree.
func condition(r *http.Request, prev *int64) (_ *int64, mustExist bool, _ error) {
	values := r.Header.Values("If-Match")
	if len(values) == 0 {
		return prev, false, nil
	}
	im := strings.TrimSpace(strings.Join(values, ","))
	if im == "*" {
		if prev != nil && *prev == 0 {
			return nil, false, errors.New(`If-Match: * (the key must exist) contradicts prev_revision=0 (the key must not exist)`)
		}
		return prev, prev == nil, nil
	}
	digits, ok := strings.CutPrefix(im, `"`)
	digits, ok2 := strings.CutSuffix(digits, `"`)
	rev, err := strconv.ParseInt(digits, 10, 64)
	if !ok || !ok2 || err != nil || rev < 0 || etag(rev) != im {
		return nil, false, fmt.Errorf(`If-Match must be * or one entity tag "REV" as sent in ETag, got %q`, im)
	}
	if prev != nil && *prev != rev {
		return nil, false, fmt.Errorf("If-Match %s and prev_revision=%d disagree", im, *prev)
	}
	return &rev, false, nil
}

// existingTries bounds how often a write with If-Match: * reads the
// key's revision again after a concurrent write changed it.
const existingTries = 3

// onExisting returns a handler that runs call on req as a write
// conditional on the key existing: it reads the key's current revision,
// has setPrev put it into req, and calls call, again (existingTries in
// all) while a concurrent write makes that condition fail. A missing key
// is a failed condition (412, current revision 0). It runs after the
// access check, like call.
func (h *kvHTTP) onExisting(key string, setPrev func(int64), call grpc.UnaryHandler) grpc.UnaryHandler {
	return func(ctx context.Context, req any) (any, error) {
		if err := validateKey(key); err != nil {
			return nil, invalid("%v", err)
		}
		for try := 1; ; try++ {
			kv, err := h.kv.r.Get(ctx, key, false)
			if errors.Is(err, router.ErrKeyNotFound) {
				err = &router.ConditionError{Key: key}
			}
			if err != nil {
				return nil, toStatus(h.kv.lg, err)
			}
			setPrev(kv.ModRevision)
			out, err := call(ctx, req)
			if st := status.Convert(err); try < existingTries && reasonOf(st) == ReasonConditionFailed {
				continue
			}
			return out, err
		}
	}
}

func (h *kvHTTP) servePut(w http.ResponseWriter, r *http.Request, key string) {
	value, st := readValue(w, r, h.maxValueBytes)
	if st != nil {
		writeError(w, st)
		return
	}
	q, err := parseKVQuery(r.URL.RawQuery, putParams)
	if err != nil {
		writeError(w, status.New(codes.InvalidArgument, err.Error()))
		return
	}
	prev, mustExist, err := condition(r, q.prevRevision)
	if err != nil {
		writeError(w, status.New(codes.InvalidArgument, err.Error()))
		return
	}
	req := &kvv1.PutRequest{Key: key, Value: value, PrevRevision: prev, Secret: q.secret}
	call := h.put
	if mustExist {
		call = h.onExisting(key, func(rev int64) { req.PrevRevision = &rev }, call)
	}
	out, err := h.intercept(r.Context(), req, &h.putInfo, call)
	if err != nil {
		writeError(w, status.Convert(err))
		return
	}
	writeBody(w, r, "application/json", appendPutJSON(nil, out.(*kvv1.PutResponse)))
}

func (h *kvHTTP) serveDelete(w http.ResponseWriter, r *http.Request, key string) {
	q, err := parseKVQuery(r.URL.RawQuery, deleteParams)
	if err != nil {
		writeError(w, status.New(codes.InvalidArgument, err.Error()))
		return
	}
	prev, mustExist, err := condition(r, q.prevRevision)
	if err != nil {
		writeError(w, status.New(codes.InvalidArgument, err.Error()))
		return
	}
	req := &kvv1.DeleteRequest{Key: key, PrevRevision: prev}
	call := h.delete
	if mustExist {
		call = h.onExisting(key, func(rev int64) { req.PrevRevision = &rev }, call)
	}
	out, err := h.intercept(r.Context(), req, &h.deleteInfo, call)
	if err != nil {
		writeError(w, status.Convert(err))
		return
	}
	writeBody(w, r, "application/json", appendDeleteJSON(nil, out.(*kvv1.DeleteResponse)))
}

// writeBody answers 200 with body in one Write, or, to a HEAD request,
// with the same headers and no body.
func writeBody(w http.ResponseWriter, r *http.Request, contentType string, body []byte) {
	hd := w.Header()
	hd.Set("Content-Type", contentType)
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return
	}
	_, _ = w.Write(body)
}

// readValue reads the body of a PUT or POST, the value, at most limit
// bytes. A body with a Content-Length is read once into a buffer of that
// size; one without (chunked) grows a buffer until the limit. A larger
// body is ResourceExhausted (413), whatever its framing, and a body that
// breaks off is InvalidArgument.
func readValue(w http.ResponseWriter, r *http.Request, limit int) ([]byte, *status.Status) {
	if r.ContentLength > int64(limit) {
		return nil, valueTooLarge(limit)
	}
	body := http.MaxBytesReader(w, r.Body, int64(limit))
	var value []byte
	var err error
	if r.ContentLength >= 0 {
		value = make([]byte, r.ContentLength)
		_, err = io.ReadFull(body, value)
	} else {
		value, err = io.ReadAll(body)
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, valueTooLarge(limit)
		}
		return nil, status.Newf(codes.InvalidArgument, "reading request body: %v", err)
	}
	return value, nil
}

func valueTooLarge(limit int) *status.Status {
	return status.Newf(codes.ResourceExhausted, "value is larger than the limit of %d bytes (--max-value-bytes)", limit)
}

// kvQuery is what the query string of a key route sets in its request.
type kvQuery struct {
	consistency  kvv1.Consistency
	secret       bool
	format       string
	prevRevision *int64
	// noStore is set when the first secret parameter is true, even if the
	// query is refused: the answer may be a plaintext secret.
	noStore bool
}

// fieldKind is how a query parameter's value is parsed.
type fieldKind int

const (
	kindBool fieldKind = iota
	kindInt64
	kindString
	kindConsistency
)

// queryField is a field of a KV request that the query may set, named by
// its proto name and its JSON name, as grpc-gateway accepts either.
type queryField struct {
	name, json string
	kind       fieldKind
}

// queryFields are the fields of one request type: set are those the query
// may set; bound are bound from the path or the body, and parameters
// that name them are ignored.
type queryFields struct {
	set   []queryField
	bound []string
}

var (
	getParams = queryFields{bound: []string{"key"}, set: []queryField{
		{name: "consistency", json: "consistency", kind: kindConsistency},
		{name: "secret", json: "secret", kind: kindBool},
		{name: "format", json: "format", kind: kindString},
	}}
	putParams = queryFields{bound: []string{"key", "value"}, set: []queryField{
		{name: "prev_revision", json: "prevRevision", kind: kindInt64},
		{name: "secret", json: "secret", kind: kindBool},
	}}
	deleteParams = queryFields{bound: []string{"key"}, set: []queryField{
		{name: "prev_revision", json: "prevRevision", kind: kindInt64},
	}}
)

// parseKVQuery parses the query string raw of a key route into the fields
// of fs, as grpc-gateway's query parser fills the request's message, and
// returns an error for people, meant as InvalidArgument, with that
// parser's messages: a malformed query, a field set twice (also by its two
// names), a nested or map-style name of a scalar field, or a value that
// does not parse. Unknown parameters and those of bound fields are
// ignored. consistency takes the enum's names and numbers and, as on
// every REST route (adaptREST), stale and linearizable in any case; a
// query with consistency is read leniently, dropping malformed pairs, as
// adaptREST re-encodes it. Parameters are checked in sorted order, so the
// error reported for a query with several problems is always the same one.
func parseKVQuery(raw string, fs queryFields) (kvQuery, error) {
	var q kvQuery
	if raw == "" {
		return q, nil
	}
	values, err := url.ParseQuery(raw)
	if c, ok := values["consistency"]; ok {
		err = nil
		if name, ok := friendlyConsistency(c[0]); ok {
			values["consistency"] = []string{name}
		}
	}
	if s := values["secret"]; len(s) > 0 {
		q.noStore = s[0] == "true"
	}
	if err != nil {
		return q, err
	}
	names := make([]string, 0, len(values))
	for name := range values {
		names = append(names, name)
	}
	slices.Sort(names)
	var seen []string
	for _, param := range names {
		vals := values[param]
		fieldName, mapKey, isMap := param, "", false
		if i := strings.LastIndexByte(param, '['); i >= 0 && strings.HasSuffix(param, "]") && !strings.Contains(param, "\n") {
			fieldName, mapKey, isMap = param[:i], param[i:], true
		}
		first, _, nested := strings.Cut(fieldName, ".")
		if slices.Contains(fs.bound, first) {
			continue
		}
		i := slices.IndexFunc(fs.set, func(f queryField) bool { return f.name == first || f.json == first })
		if i < 0 {
			continue
		}
		f := fs.set[i]
		if nested {
			return q, fmt.Errorf("invalid path: %q is not a message", first)
		}
		id := f.name + mapKey
		if slices.Contains(seen, id) {
			return q, fmt.Errorf("duplicate field %q", id)
		}
		seen = append(seen, id)
		if isMap {
			return q, fmt.Errorf("field %q is not a map", f.name)
		}
		if len(vals) > 1 {
			return q, fmt.Errorf("too many values for field %q: %s", f.name, strings.Join(vals, ", "))
		}
		if err := q.set(f, vals[0]); err != nil {
			return q, fmt.Errorf("parsing field %q: %w", f.name, err)
		}
	}
	return q, nil
}

// friendlyConsistency maps the spellings stale and linearizable, in any
// case, to the enum's names.
func friendlyConsistency(v string) (string, bool) {
	switch strings.ToLower(v) {
	case "stale":
		return kvv1.Consistency_CONSISTENCY_STALE.String(), true
	case "linearizable":
		return kvv1.Consistency_CONSISTENCY_LINEARIZABLE.String(), true
	}
	return "", false
}

// set parses v as the value of f into q.
func (q *kvQuery) set(f queryField, v string) error {
	switch f.kind {
	case kindBool:
		b, err := parseBool(v)
		if err != nil {
			return err
		}
		q.secret = b
	case kindInt64:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return numberError(err)
		}
		q.prevRevision = &n
	case kindString:
		q.format = v
	case kindConsistency:
		if n, ok := kvv1.Consistency_value[v]; ok {
			q.consistency = kvv1.Consistency(n)
			return nil
		}
		n, err := strconv.ParseInt(v, 10, 32)
		if _, ok := kvv1.Consistency_name[int32(n)]; err != nil || !ok {
			return fmt.Errorf("%q is not a valid value", v)
		}
		q.consistency = kvv1.Consistency(n)
	}
	return nil
}

// appendPutJSON appends the JSON of a PutResponse, as protojson writes it
// with proto names and without optional whitespace:
// {"key":"a/b","revision":"12"}.
func appendPutJSON(b []byte, m *kvv1.PutResponse) []byte {
	b = append(b, `{"key":`...)
	b = appendJSONString(b, m.Key)
	b = append(b, `,"revision":"`...)
	b = strconv.AppendInt(b, m.Revision, 10)
	return append(b, `"}`...)
}

// appendDeleteJSON appends the JSON of a DeleteResponse, as protojson
// writes it: {"deleted":true,"revision":"13"}.
func appendDeleteJSON(b []byte, m *kvv1.DeleteResponse) []byte {
	b = append(b, `{"deleted":`...)
	b = strconv.AppendBool(b, m.Deleted)
	b = append(b, `,"revision":"`...)
	b = strconv.AppendInt(b, m.Revision, 10)
	return append(b, `"}`...)
}

// appendJSONString appends s as a JSON string escaped as protojson
// escapes it: '"', '\\' and control characters only, the short forms
// where JSON has them. s is valid UTF-8 (a key that passed validateKey);
// an invalid byte would be written as U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 {
				b = append(append(b, s[start:i]...), "\ufffd"...)
				start = i + n
			}
			i += n
			continue
		}
		if c >= ' ' && c != '"' && c != '\\' {
			i++
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	return append(append(b, s[start:]...), '"')
}

const hexDigits = "0123456789abcdef"
