# Portico. `make run` starts the quickstart; `make test` runs every test.

# go.mod needs Go 1.27; machines that default to GOTOOLCHAIN=local fetch
# this toolchain through the module proxy.
export GOTOOLCHAIN := go1.27.4

GO ?= go
BIN := bin

# Quickstart addresses (see README.md).
HTTPS_ADDR ?= 127.0.0.1:8443
HTTP_ADDR ?= 127.0.0.1:8080
ADMIN_ADDR ?= 127.0.0.1:9090

.PHONY: all build run test vet fmt-check bench bench-go bench-churn clean


all: build

# Stamped into `portico --version`. Outside a git checkout (a source
# tarball) they fall back to "dev" and the commit Go records, if any.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/portico ./cmd/portico
	$(GO) build -o $(BIN)/demo-backends ./cmd/demo-backends

# Starts the two demo backends on loopback and Portico on the quickstart
# manifests, watched for edits. Ctrl-C stops all three.
run: build
	@set -e; \
	$(BIN)/demo-backends & demo=$$!; \
	trap 'kill $$demo 2>/dev/null; wait $$demo 2>/dev/null; true' EXIT; \
	$(BIN)/portico --manifests examples/quickstart \
		--https-addr $(HTTPS_ADDR) --http-addr $(HTTP_ADDR) --admin-addr $(ADMIN_ADDR)

# The integration tests need the local control plane: the first run builds
# it (about ten minutes), later runs reuse bin/controlplane/.
# The conformance module's own tests (the loopback pod runner) run too;
# the suite itself is `make conformance`.
test: fmt-check vet controlplane pebble
	$(GO) test -race -count=1 -timeout 30m ./...
	$(MAKE) test-nethttp-engine
	$(MAKE) fuzz-smoke
	$(MAKE) conformance-test
	$(MAKE) test-image
	$(MAKE) test-dashboards
	$(MAKE) test-chart
	$(MAKE) test-install

vet:
	$(GO) vet ./...

# docs/ingress-nginx.md is generated from the annotation table in
# snapshot/nginx_table.go; TestNginxDocUpToDate fails when it drifts.
.PHONY: docs-ingress-nginx
docs-ingress-nginx:
	$(GO) generate ./snapshot

# The whole-gateway wire tests again with the HTTP/1.1 front end served by
# net/http's server (--http1-engine=net/http) instead of the http1 engine,
# so both engines stay held to the same smuggling corpus, limits and
# timeouts.
.PHONY: test-nethttp-engine
test-nethttp-engine:
	PORTICO_TEST_HTTP1_ENGINE=net/http $(GO) test -race -count=1 -timeout 10m \
		-run 'TestSmugglingCorpus|TestFrontdoor|TestTimeout|TestWire|TestRouting|TestWebSocket|TestPlain' ./cmd/portico

# A short run of each fuzz target (go test takes one per -fuzz), on top of
# their checked-in seed corpora under */testdata/fuzz, which every go test
# runs anyway. Inputs that fail are written next to those seeds.
.PHONY: fuzz-smoke
fuzz-smoke:
	$(GO) test -run '^$$' -fuzz '^FuzzWriteRequest$$' -fuzztime 10s ./upstream
	$(GO) test -run '^$$' -fuzz '^FuzzResponseHead$$' -fuzztime 10s ./upstream
	$(GO) test -run '^$$' -fuzz '^FuzzCleanPath$$' -fuzztime 10s ./routing

fmt-check:
	@out=$$(gofmt -l .); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

# Load benchmark against the backend direct and peers (installs wrk and the
# peers from Debian packages when missing), then the Go micro-benchmarks.
bench: build bench-go
	bench/run.sh

# Certificate churn: 1,000 hosts, 10 changes/s for 60 s under a handshake
# load, Portico (with the local control plane) against nginx with reloads;
# then memory with 10,000 certificates.
bench-churn:
	bench/churn.sh

# A normal load through Portico and nginx while each is under HTTP/2 rapid
# reset, slow uploads and idle connections (about three minutes).
.PHONY: bench-abuse
bench-abuse:
	bench/abuse.sh

bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./routing ./tls ./upstream

clean:
	rm -rf $(BIN)

# The OCI image, built without a container engine (hack/image): static
# binaries for each architecture, then an OCI layout in bin/image/oci/ and
# docker load-able tarballs bin/image/portico-<arch>.tar.
IMAGE_ARCHES := amd64 arm64
IMAGE_DIR := $(BIN)/image
REGISTRY ?=
IMAGE_TAG ?= $(VERSION)

.PHONY: image image-push test-image
image:
	@for arch in $(IMAGE_ARCHES); do \
		echo "build portico-linux-$$arch"; \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags '-s -w $(LDFLAGS)' \
			-o $(IMAGE_DIR)/portico-linux-$$arch ./cmd/portico || exit 1; \
	done
	cd hack/image && $(GO) run . -binaries $(abspath $(IMAGE_DIR)) -out $(abspath $(IMAGE_DIR)) \
		-version $(IMAGE_TAG) -commit $(COMMIT) \
		-created $$(git log -1 --format=%cI 2>/dev/null || date -u +%Y-%m-%dT%H:%M:%SZ)

# Pushes the index built by make image (both architectures) to
# $(REGISTRY)/portico:$(IMAGE_TAG), with the credentials in
# ~/.docker/config.json. Never run by the tests.
image-push:
	@test -n "$(REGISTRY)" || { echo "usage: make image-push REGISTRY=registry.example.com/team"; exit 1; }
	cd hack/image && $(GO) run . -out $(abspath $(IMAGE_DIR)) -push $(REGISTRY)/portico:$(IMAGE_TAG)

# Every query of the Grafana dashboard evaluated by Debian's prometheus
# scraping Portico (the image's binary) under loopback traffic.
.PHONY: test-dashboards prometheus
test-dashboards: image prometheus
	PORTICO_BIN=$(abspath $(IMAGE_DIR))/portico-linux-$$($(GO) env GOARCH) \
		$(GO) test -count=1 -timeout 5m -run TestDashboardAgainstPrometheus -v ./examples/dashboards

prometheus:
	@command -v prometheus >/dev/null || { \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update && apt-get install -y --no-install-recommends prometheus; }

# The Helm chart's tests (the charts module, Helm v4 as a library): the
# renders, the schema, each value, and examples/deploy/ equal to the chart.
# With -race like the root module's tests, whose compiled Kubernetes
# packages it then reuses.
.PHONY: test-chart chart-generate
test-chart:
	cd charts && $(GO) vet ./... && $(GO) test -race -count=1 -timeout 20m -skip '^TestInstallOnLocalControlPlane$$' ./...

# The chart installed for real: Helm's install, upgrade and uninstall
# actions against the local control plane, the Deployment's Pods run from
# bin/portico by the loopback pod runner (conformance/podrunner), traffic
# through the Pods' addresses during a rolling upgrade. Needs root.
.PHONY: test-install
test-install: build controlplane
	cd conformance/tools/echo && $(GO) build -o $(abspath $(BIN))/echo-basic sigs.k8s.io/gateway-api-conformance-images/echo-basic
	cd charts && PORTICO_BIN=$(abspath $(BIN))/portico PORTICO_ECHO_BASIC=$(abspath $(BIN))/echo-basic \
		$(GO) test -race -count=1 -timeout 15m -run '^TestInstallOnLocalControlPlane$$' -v .

# Rewrites what is generated from the chart and for it: examples/deploy/
# (the default render) and the chart's copies of the dashboard and of the
# Gateway API CRDs.
chart-generate:
	cd charts && $(GO) test -count=1 -run 'TestChartFilesMatchSources|TestExamplesDeployIsTheChart' . -update

# The built image checked: its config, and its binary run from the unpacked
# root filesystem in a chroot (root; skipped otherwise).
test-image: image
	cd hack/image && $(GO) vet ./... && $(GO) test -count=1 -timeout 5m ./...

# controlplane, cluster-up, cluster-down: the local kube-apiserver, etcd and
# kube-controller-manager the integration tests run against.
include hack/controlplane/controlplane.mk

# pebble: the ACME test server the ACME integration tests run against.
include hack/pebble/pebble.mk

# conformance, conformance-test: the upstream Gateway API conformance suite
# against Portico (conformance/README.md).
include conformance/conformance.mk
