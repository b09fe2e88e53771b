# Gateway API conformance (conformance/README.md).
#   make conformance        run the upstream suite (sigs.k8s.io/gateway-api
#                           v1.7.0, GATEWAY-HTTP, GATEWAY-GRPC and
#                           GATEWAY-TLS profiles)
#                           against Portico on the local control plane;
#                           the report goes to
#                           conformance/reports/. Needs root.
#   make conformance-test   the loopback pod runner's own tests
# CONFORMANCE_RUN_TEST=<ShortName> runs one test; CONFORMANCE_ARGS passes
# more flags to the suite (after --), e.g. "--debug".
# Expects GO to be set and GOTOOLCHAIN exported by the including Makefile.

CONFORMANCE_TIMEOUT ?= 60m
CONFORMANCE_CHANNEL ?= standard
CONFORMANCE_VERSION ?=
CONFORMANCE_RUN_TEST ?=
CONFORMANCE_ARGS ?=

.PHONY: conformance conformance-tools conformance-test

# The suite, the echo backend and the driver are each built from their own
# module (conformance/, conformance/tools/echo/), so none of their
# dependencies enter the root go.mod. conformance/ imports the root module
# through a replace, so a dependency added there also lands in
# conformance/go.sum: -mod=mod records it instead of failing the build.
conformance-tools:
	cd conformance/tools/echo && $(GO) build -o $(abspath $(BIN))/echo-basic sigs.k8s.io/gateway-api-conformance-images/echo-basic
	cd conformance && $(GO) test -mod=mod -c -o $(abspath $(BIN))/gateway-conformance.test sigs.k8s.io/gateway-api/conformance
	cd conformance && $(GO) build -mod=mod -o $(abspath $(BIN))/conformance-run ./cmd/conformance-run
	cd conformance && $(GO) build -mod=mod -o $(abspath $(BIN))/podrunner ./cmd/podrunner

conformance: build controlplane conformance-tools
	$(BIN)/conformance-run \
		-work-dir $(BIN)/conformance \
		-controlplane-bin $(CONTROLPLANE_BIN) \
		-echo-basic $(BIN)/echo-basic \
		-portico $(BIN)/portico \
		-suite $(BIN)/gateway-conformance.test \
		-options conformance/options.yaml \
		-report-dir conformance/reports \
		-channel $(CONFORMANCE_CHANNEL) \
		-timeout $(CONFORMANCE_TIMEOUT) \
		$(if $(CONFORMANCE_VERSION),-version $(CONFORMANCE_VERSION)) \
		$(if $(CONFORMANCE_RUN_TEST),-run-test $(CONFORMANCE_RUN_TEST)) \
		-- $(CONFORMANCE_ARGS)

# The pod runner's tests start the control plane and network namespaces
# (root). The root module's go test ./... does not reach this module.
conformance-test: controlplane
	cd conformance && $(GO) vet -mod=mod ./... && $(GO) test -mod=mod -race -count=1 -timeout 15m ./...
