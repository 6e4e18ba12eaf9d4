// Package apidocs holds the OpenAPI v2 document of cave's REST API, generated
// by protoc-gen-openapiv2 from the google.api.http annotations of the
// public services in proto/cave (every one but the node-to-node Peer).
//
// openapi.json is generated; do not edit it. Regenerate it with `make proto`.
package apidocs

import _ "embed" // for go:embed

// OpenAPI is the OpenAPI v2 (Swagger) JSON document for the public
// services, one merged file. The gateway serves it at /api/v1/openapi.json.
// Callers must not modify the slice.
//
//go:embed openapi.json
var OpenAPI []byte
