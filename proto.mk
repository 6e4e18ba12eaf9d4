# proto.mk: protobuf tools and code generation for cave. The top-level Makefile
# includes it; it also runs alone: make -f proto.mk proto
#
#   make proto-tools  install the pinned tools below into bin/ (gitignored)
#   make proto-lint   buf lint, and check that the .proto files are buf-formatted
#   make proto        lint, then regenerate proto/**/*.pb.go, *_grpc.pb.go,
#                     *.pb.gw.go and gateway/apidocs/openapi.json (committed)
#
# The versions are pinned here, and buf.gen.yaml runs the plugins from bin/, so
# the generated files are byte-identical on every machine. Bump a version here
# and run `make proto`: the tools are reinstalled because the stamp name changes.

# buf CLI (github.com/bufbuild/buf/cmd/buf); v1.75.0 needs Go >= 1.26.7.
BUF_VERSION                := v1.75.0
# protoc-gen-go, from google.golang.org/protobuf: keep equal to go.mod.
PROTOC_GEN_GO_VERSION      := v1.36.12
# protoc-gen-go-grpc (google.golang.org/grpc/cmd/protoc-gen-go-grpc, its own
# module); its output needs grpc >= 1.64, go.mod has v1.85.0.
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
# protoc-gen-grpc-gateway and protoc-gen-openapiv2: keep equal to the
# github.com/grpc-ecosystem/grpc-gateway/v2 runtime in go.mod.
GRPC_GATEWAY_VERSION       := v2.33.0

PROTO_BIN := $(CURDIR)/bin
PROTO_TOOLS_STAMP := $(PROTO_BIN)/.proto-tools-$(BUF_VERSION)-$(PROTOC_GEN_GO_VERSION)-$(PROTOC_GEN_GO_GRPC_VERSION)-$(GRPC_GATEWAY_VERSION)
BUF := $(PROTO_BIN)/buf
OPENAPI_DIR := gateway/apidocs

define proto_install_tools
	mkdir -p $(PROTO_BIN)
	GOBIN=$(PROTO_BIN) go install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
	GOBIN=$(PROTO_BIN) go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	GOBIN=$(PROTO_BIN) go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	GOBIN=$(PROTO_BIN) go install github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway@$(GRPC_GATEWAY_VERSION)
	GOBIN=$(PROTO_BIN) go install github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2@$(GRPC_GATEWAY_VERSION)
	rm -f $(PROTO_BIN)/.proto-tools-*
	touch $(PROTO_TOOLS_STAMP)
endef

.PHONY: proto-tools proto-lint proto

# proto-tools always reinstalls (go install is quick when the build cache has
# them); proto and proto-lint install only when the stamp for these versions
# is missing.
proto-tools:
	$(proto_install_tools)

$(PROTO_TOOLS_STAMP):
	$(proto_install_tools)

proto-lint: $(PROTO_TOOLS_STAMP)
	$(BUF) lint
	$(BUF) format proto --diff --exit-code

# The old outputs are removed first so that a deleted .proto leaves no stale
# generated file behind.
proto: proto-lint
	find proto \( -name '*.pb.go' -o -name '*.pb.gw.go' \) -delete
	rm -f $(OPENAPI_DIR)/openapi.swagger.json $(OPENAPI_DIR)/openapi.json
	$(BUF) generate
	mv $(OPENAPI_DIR)/openapi.swagger.json $(OPENAPI_DIR)/openapi.json
