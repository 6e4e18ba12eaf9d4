# cave — run `make run` for a dev node, `make test` for every test.
GO      ?= go
IMAGE   ?= cave:dev
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
DATE    ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)
STATICCHECK_VERSION := v0.8.2

.DEFAULT_GOAL := build
.PHONY: build run test test-unit test-e2e image test-docker lint fmt clean

## build: static cave and kvctl binaries in bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/cave ./cmd/cave
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/kvctl ./cmd/kvctl

## run: one development node on the default ports, data in ./cave-data
run: build
	./bin/cave --mode=dev

## test: every test: unit, in-process clusters and multi-process end to end
test:
	$(GO) test -count=1 -timeout 30m ./...

## test-unit: the fast tests only
test-unit:
	$(GO) test -count=1 -short ./...

## test-e2e: the multi-process tests with real cave binaries
test-e2e:
	$(GO) test -count=1 -timeout 20m -v ./test/e2e/

## image: the container image $(IMAGE), FROM scratch with bin/cave and bin/kvctl (see deploy/)
image: build
	rm -rf bin/image && mkdir -p bin/image/data && cp bin/cave bin/kvctl bin/image/
	docker build -t $(IMAGE) -f deploy/Dockerfile bin/image

## test-docker: the partition, kill and restart test of three containers (needs Docker)
test-docker:
	$(GO) test -tags docker -count=1 -timeout 10m -v -run TestDocker ./test/e2e/

## lint: gofmt, go vet and staticcheck must be clean
lint:
	@out="$$(gofmt -l $$(git ls-files '*.go'))"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags docker ./test/e2e/
	@test -x bin/staticcheck || GOBIN=$(CURDIR)/bin $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	./bin/staticcheck ./...
	./bin/staticcheck -tags docker ./test/e2e/

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin cave-data

include proto.mk
