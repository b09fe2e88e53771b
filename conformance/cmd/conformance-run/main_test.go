package main

import (
	"slices"
	"strings"
	"testing"
)

func TestScanResults(t *testing.T) {
	const out = `=== RUN   TestConformance
=== RUN   TestConformance/HTTPRouteSimpleSameNamespace
    --- PASS: TestConformance/HTTPRouteSimpleSameNamespace (0.42s)
        --- PASS: TestConformance/HTTPRouteSimpleSameNamespace/0_request (0.01s)
    --- FAIL: TestConformance/HTTPRouteBackendProtocolH2C (30.00s)
        --- FAIL: TestConformance/HTTPRouteBackendProtocolH2C/http2_prior_knowledge (30.00s)
    conformance.go:56: Skipping UDPRoute: suite does not support UDPRoute
    --- SKIP: TestConformance/UDPRoute (0.00s)
--- FAIL: TestConformance (140.00s)
`
	var copied strings.Builder
	got := scanResults(strings.NewReader(out), &copied)
	if copied.String() != out {
		t.Errorf("output not copied through:\n%s", copied.String())
	}
	want := map[string][]string{
		"PASS": {"HTTPRouteSimpleSameNamespace"},
		"FAIL": {"HTTPRouteBackendProtocolH2C"},
		"SKIP": {"UDPRoute"},
	}
	for kind, names := range want {
		if !slices.Equal(got[kind], names) {
			t.Errorf("%s = %v, want %v", kind, got[kind], names)
		}
	}
}

func TestPrintSummaryWithoutReport(t *testing.T) {
	var b strings.Builder
	printSummary(&b, map[string][]string{"FAIL": {"B", "A"}}, "/nonexistent/report.yaml")
	for _, want := range []string{"PASS: 0", "FAIL: 2\n  A\n  B\n", "no report:"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}
}
