package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	kvv1 "github.com/cavedb/cave/proto/cave/kv/v1"
)

// mimeRaw is the private media type under which the raw-bytes marshaler is
// registered; rewriteKV sets it on /api/v1/kv requests so that bodies and
// values travel as raw bytes whatever the client's Content-Type says.
const mimeRaw = "application/x-cave-raw"

// rawMarshaler reads request bodies into bytes fields as they are and
// writes a GetResponse as its value's bytes. Every other message is JSON.
type rawMarshaler struct{ runtime.JSONPb }

func (m *rawMarshaler) NewDecoder(r io.Reader) runtime.Decoder {
	return runtime.DecoderFunc(func(v any) error {
		if b, ok := v.(*[]byte); ok {
			data, err := io.ReadAll(r)
			*b = data
			return err
		}
		return m.JSONPb.NewDecoder(r).Decode(v)
	})
}

func (m *rawMarshaler) Marshal(v any) ([]byte, error) {
	if resp, ok := v.(*kvv1.GetResponse); ok {
		return resp.GetValue(), nil
	}
	return m.JSONPb.Marshal(v)
}

func (m *rawMarshaler) ContentType(v any) string {
	if _, ok := v.(*kvv1.GetResponse); ok {
		return "application/octet-stream"
	}
	return m.JSONPb.ContentType(v)
}

func jsonMarshaler() runtime.JSONPb {
	return runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
	}
}

// newRESTMux returns grpc-gateway's mux configured for the contract of
// the REST contract (README, "Using the REST API"): JSON with proto field names, raw values on /api/v1/kv, the
// contract's error statuses and the value headers on GET.
func newRESTMux() *runtime.ServeMux {
	js := jsonMarshaler()
	return runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &js),
		runtime.WithMarshalerOption("application/json", &js),
		runtime.WithMarshalerOption(mimeRaw, &rawMarshaler{JSONPb: jsonMarshaler()}),
		runtime.WithErrorHandler(restError),
		runtime.WithRoutingErrorHandler(routingError),
		runtime.WithForwardResponseOption(valueHeaders),
		runtime.WithMetadata(recordRoute),
		runtime.WithIncomingHeaderMatcher(func(string) (string, bool) { return "", false }),
		runtime.WithOutgoingHeaderMatcher(func(string) (string, bool) { return "", false }),
	)
}

// valueHeaders adds the key's metadata as headers to GET responses.
func valueHeaders(_ context.Context, w http.ResponseWriter, m proto.Message) error {
	resp, ok := m.(*kvv1.GetResponse)
	if !ok {
		return nil
	}
	kv := resp
	h := w.Header()
	h.Set("X-Cave-Revision", strconv.FormatInt(kv.GetModRevision(), 10))
	h.Set("X-Cave-Create-Revision", strconv.FormatInt(kv.GetCreateRevision(), 10))
	h.Set("X-Cave-Version", strconv.FormatInt(kv.GetVersion(), 10))
	h.Set("ETag", fmt.Sprintf(`"%d"`, kv.GetModRevision()))
	return nil
}

const kvPath = "/api/v1/kv/"

// rewriteKV adapts REST requests before grpc-gateway sees them: it picks the
// raw or JSON marshaler for /api/v1/kv, reads PUT bodies under the value
// limit (413 beyond it), answers an empty key with 400, and accepts the
// friendly spellings consistency=stale|linearizable.
func rewriteKV(maxValueBytes int, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Del("Accept")
		r.Header.Set("Content-Type", "application/json")
		if q := r.URL.Query(); q.Has("consistency") {
			switch strings.ToLower(q.Get("consistency")) {
			case "stale":
				q.Set("consistency", kvv1.Consistency_CONSISTENCY_STALE.String())
			case "linearizable":
				q.Set("consistency", kvv1.Consistency_CONSISTENCY_LINEARIZABLE.String())
			}
			r.URL.RawQuery = q.Encode()
		}
		if !strings.HasPrefix(r.URL.Path, kvPath) && r.URL.Path != strings.TrimSuffix(kvPath, "/") {
			next.ServeHTTP(w, r)
			return
		}
		if strings.Trim(strings.TrimPrefix(r.URL.Path, strings.TrimSuffix(kvPath, "/")), "/") == "" {
			writeError(w, status.New(codes.InvalidArgument, "key must not be empty: use /api/v1/kv/{key}"))
			return
		}
		switch r.Method {
		case http.MethodPut, http.MethodPost:
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(maxValueBytes)))
			if err != nil {
				var tooBig *http.MaxBytesError
				if errors.As(err, &tooBig) {
					writeError(w, status.Newf(codes.ResourceExhausted, "value is larger than the limit of %d bytes (--max-value-bytes)", maxValueBytes))
					return
				}
				writeError(w, status.Newf(codes.InvalidArgument, "reading request body: %v", err))
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
			r.Header.Set("Content-Type", mimeRaw)
		case http.MethodGet, http.MethodHead:
			q := r.URL.Query()
			if q.Get("format") != "json" {
				r.Header.Set("Accept", mimeRaw)
			}
			if secret, _ := strconv.ParseBool(q.Get("secret")); secret {
				// The answer is a plaintext secret: no cache may keep it.
				w.Header().Set("Cache-Control", "no-store")
			}
		}
		next.ServeHTTP(w, r)
	})
}
