package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
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
		runtime.WithOutgoingHeaderMatcher(func(key string) (string, bool) {
			if key == HeaderLimitCapped {
				return "X-Cave-Limit-Capped", true
			}
			return "", false
		}),
		runtime.SetQueryParameterParser(queryParser{}),
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

// queryParser is grpc-gateway's query parser with the REST API's rules
// (parseKVQuery applies the same on the key routes): a bool parameter is
// exactly true or false, and a number that does not parse is described in
// words, not in strconv's.
type queryParser struct{ runtime.DefaultQueryParser }

// Parse implements runtime.QueryParameterParser.
func (p queryParser) Parse(msg proto.Message, values url.Values, filter *utilities.DoubleArray) error {
	fields := msg.ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		f := fields.Get(i)
		if f.Kind() != protoreflect.BoolKind || f.IsList() || f.IsMap() {
			continue
		}
		for _, name := range []string{string(f.Name()), f.JSONName()} {
			if filter != nil && filter.HasCommonPrefix([]string{name}) {
				continue
			}
			for _, v := range values[name] {
				if _, err := parseBool(v); err != nil {
					return fmt.Errorf("parsing field %q: %w", f.Name(), err)
				}
			}
		}
	}
	return numberError(p.DefaultQueryParser.Parse(msg, values, filter))
}

// parseBool parses a bool parameter: exactly true or false.
func parseBool(v string) (bool, error) {
	switch v {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a valid value: use true or false", v)
}

// numberError returns err with the message of a *strconv.NumError in it,
// if any, put in words: "abc" is not a number, or is out of range. Other
// errors come back as they are.
func numberError(err error) error {
	var ne *strconv.NumError
	if !errors.As(err, &ne) {
		return err
	}
	what := fmt.Sprintf("%q is not a number", ne.Num)
	if errors.Is(ne.Err, strconv.ErrRange) {
		what = fmt.Sprintf("%q is out of range", ne.Num)
	}
	return errors.New(strings.TrimSuffix(err.Error(), ne.Error()) + what)
}
