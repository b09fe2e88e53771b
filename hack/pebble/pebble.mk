# Pebble, the ACME test server the ACME integration tests run (tls/acme,
# cmd/portico), pinned in hack/pebble/go.mod.
#   make pebble   build it into bin/pebble (skipped when up to date)
# Expects GO to be set and GOTOOLCHAIN exported by the including Makefile.

PEBBLE_BIN ?= bin/pebble

.PHONY: pebble

pebble:
	GO="$(GO)" PEBBLE_BIN="$(abspath $(PEBBLE_BIN))" hack/pebble/build.sh
