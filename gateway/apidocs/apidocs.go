// Package apidocs holds the OpenAPI v2 document of cave's REST API, generated
// by protoc-gen-openapiv2 from the google.api.http annotations in
// proto/cave/kv/v1/kv.proto and proto/cave/cluster/v1/cluster.proto.
//
// openapi.json is generated; do not edit it. Regenerate it with `make proto`.
package apidocs

import _ "embed" // for go:embed

// OpenAPI is the OpenAPI v2 (Swagger) JSON document for the KV and Cluster
// services, one merged file. The gateway serves it at /api/v1/openapi.json.
// Callers must not modify the slice.
//
//go:embed openapi.json
var OpenAPI []byte
