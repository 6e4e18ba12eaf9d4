package gateway

import (
	"encoding/json"
	"net/http"
	"slices"

	"github.com/cavedb/cave/gateway/apidocs"
)

// UncoveredMethods returns the full names of the methods s serves over
// gRPC that have no access rule, sorted.
func UncoveredMethods(s *Server) []string {
	var out []string
	for svc, info := range s.grpc.GetServiceInfo() {
		for _, m := range info.Methods {
			if name := "/" + svc + "/" + m.Name; !hasRule(name) {
				out = append(out, name)
			}
		}
	}
	slices.Sort(out)
	return out
}

func hasRule(method string) bool {
	_, ok := methodRules[method]
	return ok
}

// RESTPathsOutsideGateway returns the paths of the OpenAPI document that
// httpRoutes does not send to grpc-gateway's per-method check.
func RESTPathsOutsideGateway() ([]string, error) {
	var doc struct {
		Paths map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(apidocs.OpenAPI, &doc); err != nil {
		return nil, err
	}
	var out []string
	for p := range doc.Paths {
		if !routeRule(p).gateway {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out, nil
}

// HTTPHandler returns the handler s serves on its HTTP port: the metrics,
// the access check and every REST route, as a client reaches them.
func HTTPHandler(s *Server) http.Handler { return s.http.Handler }
