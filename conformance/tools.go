//go:build tools

// Package conformance pins the upstream suite in go.mod: make conformance
// compiles its test binary (go test -c sigs.k8s.io/gateway-api/conformance),
// which nothing here imports otherwise.
package conformance

import _ "sigs.k8s.io/gateway-api/conformance"
