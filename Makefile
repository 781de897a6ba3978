# runhost — see README.md. Every target works on a fresh Debian machine:
# what it needs (Docker engine, debootstrap, images) is installed or built.

GO       ?= go
# The Go toolchain every target uses: go1.27.3 fixes standard-library
# vulnerabilities of 1.26.8 (net/http, crypto/tls, crypto/x509; see make lint).
# The go command fetches it once from the module proxy (about 76 MB);
# go.mod stays at 1.26 so a plain `go build` with an older Go still works.
GO_TOOLCHAIN ?= go1.27.3
export GOTOOLCHAIN = $(GO_TOOLCHAIN)
BIN      := bin
PLUGINS  := $(notdir $(wildcard plugins/*))
EXAMPLES := $(notdir $(wildcard examples/plugins/*))
GOFLAGS  ?= -trimpath
TEST_FLAGS ?= -race -count=1 -timeout 30m

STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOVULNCHECK := golang.org/x/vuln/cmd/govulncheck@v1.9.0
PROTOC_GEN_GO := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.11
PROTOC_GEN_GO_GRPC := google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2

.PHONY: all build engine images examples test-examples run selftest test test-unit e2e-dind bench load load-restart proto lint clean
.PHONY: browser debian-wheels e2e-k8s

all: build

## build: the host, the in-container init and every plugin, into bin/
## (init and the egress proxy run in Linux containers: built for Linux on any host)
build:
	$(GO) build $(GOFLAGS) -o $(BIN)/host ./cmd/host
	CGO_ENABLED=0 GOOS=linux $(GO) build $(GOFLAGS) -ldflags='-s -w' -o $(BIN)/runhost-init ./cmd/runhost-init
	CGO_ENABLED=0 GOOS=linux $(GO) build $(GOFLAGS) -ldflags='-s -w' -o $(BIN)/runhost-egress ./cmd/runhost-egress
	@mkdir -p $(BIN)/plugins
	@for p in $(PLUGINS); do \
		echo "$(GO) build -o $(BIN)/plugins/runhost-plugin-$$p ./plugins/$$p"; \
		$(GO) build $(GOFLAGS) -o $(BIN)/plugins/runhost-plugin-$$p ./plugins/$$p || exit 1; \
	done

## engine: install and start a Docker engine if none answers
engine:
	@scripts/ensure-engine.sh

## images: build the runtime images and the builder image (Dockerfile builds) the engine lacks (offline when no registry answers); pull the seed's images where a registry answers
images: engine
	@images/images.sh
	@GO=$(GO) scripts/builder-image.sh >/dev/null
	@scripts/seed-images.sh

## examples: the out-of-tree example plugins (own Go modules) into bin/examples/, and their images
examples: engine
	@mkdir -p $(BIN)/examples
	@for p in $(EXAMPLES); do \
		echo "$(GO) build -C examples/plugins/$$p -o $(BIN)/examples/runhost-plugin-$$p ."; \
		$(GO) build -C examples/plugins/$$p $(GOFLAGS) -o $(CURDIR)/$(BIN)/examples/runhost-plugin-$$p . || exit 1; \
		IMAGES_LIST=examples/plugins/$$p/images.txt images/images.sh || exit 1; \
	done

## test-examples: each example's own tests, in its own module (./... at the root skips them)
test-examples:
	@for p in $(EXAMPLES); do (cd examples/plugins/$$p && $(GO) vet ./... && $(GO) test -count=1 ./...) || exit 1; done

# The workspace `make run` serves: ./workspace of the checkout (the seed's
# host directory), created by the host at start; RUNHOST_WORKSPACE_ROOT=off
# (or another directory) in the environment wins. A bare bin/host serves none.
RUNHOST_WORKSPACE_ROOT ?= $(CURDIR)/workspace

## run: everything needed, then the host on RUNHOST_ADDR (default 127.0.0.1:8080), serving the workspace ./workspace
run: engine build images
	RUNHOST_WORKSPACE_ROOT='$(RUNHOST_WORKSPACE_ROOT)' ./$(BIN)/host

## selftest: every runtime version's self-test against the real images
selftest: engine build images
	RUNHOST_LOG_LEVEL=warn ./$(BIN)/host selftest

## browser: Debian's chromium, for the playground's browser tests, if missing
browser:
	@scripts/ensure-chromium.sh

## debian-wheels: Debian's python3-requests, python3-flask and their dependencies, for the tests' package index (.cache/debian-wheels)
debian-wheels:
	@scripts/debian-wheels.sh

## test: the self-tests, the examples, then the whole suite against the real engine, images and plugin binaries
test: browser debian-wheels selftest examples test-examples
	$(GO) test $(TEST_FLAGS) ./...

## test-unit: tests that need no engine
test-unit:
	$(GO) test -short ./...

## e2e-dind: runhost against a Docker-in-Docker daemon over mutual TLS (docs/dind.md)
e2e-dind: engine build images
	GO=$(GO) scripts/e2e-dind.sh

## e2e-k8s: the Kubernetes executor against a real single-node cluster built here (docs/kubernetes.md)
e2e-k8s: engine build images
	GO=$(GO) scripts/e2e-k8s.sh

## bench: runhost against docker run --rm and docker exec; writes docs/benchmarks.md
bench: engine build images
	$(GO) run ./cmd/runhost-bench
	$(GO) test -run XXX -bench . -benchmem ./internal/api ./internal/policy ./internal/executor/output

## load: 1,000 python runs at concurrency 16 against the real engine; completions, 429s, errors, leftovers
load: engine build images
	$(GO) run ./cmd/runhost-load -n 1000 -c 16

## load-restart: the same, restarting the engine after 100 runs
load-restart: engine build images
	$(GO) run ./cmd/runhost-load -n 300 -c 16 -restart-after 100

## proto: regenerate the plugin protocol's Go code (needs protoc: apt-get install protobuf-compiler)
proto:
	@command -v protoc >/dev/null || { echo "protoc missing: apt-get install protobuf-compiler"; exit 1; }
	GOBIN=$(CURDIR)/.cache/tools $(GO) install $(PROTOC_GEN_GO)
	GOBIN=$(CURDIR)/.cache/tools $(GO) install $(PROTOC_GEN_GO_GRPC)
	PATH=$(CURDIR)/.cache/tools:$$PATH protoc \
		--go_out=. --go_opt=module=github.com/runhost/runhost \
		--go-grpc_out=. --go-grpc_opt=module=github.com/runhost/runhost \
		internal/pluginwire/pluginpb/runtime.proto

## lint: gofmt, go vet, staticcheck, govulncheck, and a cross-build for macOS
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags dind ./internal/e2e/dind/
	$(GO) vet -tags k8s ./internal/e2e/k8s/
	@for p in $(EXAMPLES); do (cd examples/plugins/$$p && $(GO) vet ./...) || exit 1; done
	$(GO) run $(STATICCHECK) ./...
	GOOS=darwin GOARCH=arm64 $(GO) build -o /dev/null ./...
	GOOS=darwin GOARCH=amd64 $(GO) build -o /dev/null ./...
	GOVULNCHECK=$(GOVULNCHECK) scripts/govulncheck.sh

clean:
	rm -rf $(BIN)
