package gateway

import (
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/protojson"
)

// jsonMarshaler is the JSON of the REST API: protojson with proto field
// names and every field, int64 as strings and bytes as base64.
func jsonMarshaler() runtime.JSONPb {
	return runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
	}
}

// newRESTMux returns grpc-gateway's mux configured for the REST contract
// (README, "Using the REST API"): JSON with proto field
// names and the contract's error statuses. The key routes are served by
// kvHTTP, not by this mux. allow gives the Allow header of a 405.
func newRESTMux(allow allowTable) *runtime.ServeMux {
	js := jsonMarshaler()
	return runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &js),
		runtime.WithMarshalerOption("application/json", &js),
		runtime.WithErrorHandler(restError),
		runtime.WithRoutingErrorHandler(routingError(allow)),
		runtime.WithMetadata(recordRoute),
		runtime.WithIncomingHeaderMatcher(func(string) (string, bool) { return "", false }),
		runtime.WithOutgoingHeaderMatcher(func(string) (string, bool) { return "", false }),
	)
}

// adaptREST adapts REST requests before grpc-gateway sees them: bodies
// are JSON whatever the client's Content-Type and Accept say, and
// consistency=stale|linearizable, in any case, is accepted for the enum's
// names (parseKVQuery does the same for the key routes).
func adaptREST(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Del("Accept")
		r.Header.Set("Content-Type", "application/json")
		if q := r.URL.Query(); q.Has("consistency") {
			if name, ok := friendlyConsistency(q.Get("consistency")); ok {
				q.Set("consistency", name)
			}
			r.URL.RawQuery = q.Encode()
		}
		next.ServeHTTP(w, r)
	})
}
