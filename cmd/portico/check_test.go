package main

import (
	"bytes"
	"encoding/json"
	"testing"

	"portico.dev/portico/internal/testkit"
)

// TestCheckManifests runs portico check on a folder of Ingresses written
// for ingress-nginx and compares its report with the golden file.
func TestCheckManifests(t *testing.T) {
	var out, errs bytes.Buffer
	if code := runCheck([]string{"--manifests", "testdata/nginx-check"}, &out, &errs); code != 0 {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	testkit.Golden(t, "testdata/nginx-check.golden", out.Bytes())
}

func TestCheckJSON(t *testing.T) {
	var out, errs bytes.Buffer
	if code := runCheck([]string{"--manifests", "testdata/nginx-check", "-o", "json"}, &out, &errs); code != 0 {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	var report checkReport
	if err := json.Unmarshal(out.Bytes(), &report); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out.String())
	}
	s := report.Summary
	if s.Ingresses != 4 || s.Annotations != 18 {
		t.Errorf("summary %+v, want 4 Ingresses and 18 annotations", s)
	}
	if s.Exact+s.Approximate+s.Unsupported+s.NeverExecuted+s.Unknown+s.Invalid != s.Annotations {
		t.Errorf("summary %+v does not add up", s)
	}
	if s.NeverExecuted != 2 || s.Unknown != 1 || s.Invalid != 1 {
		t.Errorf("summary %+v, want 2 snippets, 1 unknown, 1 invalid", s)
	}
}

func TestCheckUsage(t *testing.T) {
	var out, errs bytes.Buffer
	for _, args := range [][]string{nil, {"--manifests", "x", "--kubeconfig", "y"}, {"--manifests", "x", "-o", "yaml"}} {
		if code := runCheck(args, &out, &errs); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}
