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

// TestCheckConfigMap: with --nginx-configmap, portico check lists every key
// of ingress-nginx's ConfigMap with its verdict before the Ingresses.
func TestCheckConfigMap(t *testing.T) {
	var out, errs bytes.Buffer
	args := []string{"--manifests", "testdata/nginx-check", "--nginx-configmap", "ingress-nginx/ingress-nginx-controller"}
	if code := runCheck(args, &out, &errs); code != 0 {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	testkit.Golden(t, "testdata/nginx-check-configmap.golden", out.Bytes())

	out.Reset()
	if code := runCheck(append(args, "-o", "json"), &out, &errs); code != 0 {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	var report checkReport
	if err := json.Unmarshal(out.Bytes(), &report); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out.String())
	}
	cm := report.ConfigMap
	if cm == nil || !cm.Found || cm.Summary.Keys != 8 || len(cm.Keys) != 8 {
		t.Fatalf("configMap %+v, want 8 keys", cm)
	}
	s := cm.Summary
	if s.Exact != 2 || s.Approximate != 2 || s.Unsupported != 1 || s.NeverExecuted != 1 || s.Unknown != 1 || s.Invalid != 1 {
		t.Errorf("summary %+v, want 2 exact, 2 approximate, 1 each unsupported, snippet, unknown and invalid", s)
	}
	if report.Summary.Ingresses != 4 {
		t.Errorf("the Ingresses are still listed: %+v", report.Summary)
	}

	out.Reset()
	if code := runCheck([]string{"--manifests", "testdata/nginx-check", "--nginx-configmap", "ingress-nginx/missing"}, &out, &errs); code != 0 {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	if want := "ConfigMap ingress-nginx/missing\n  not found: ingress-nginx's defaults apply (proxy-body-size 1m, HSTS on)\n"; !bytes.HasPrefix(out.Bytes(), []byte(want)) {
		t.Errorf("missing ConfigMap: output starts %q, want %q", out.String()[:min(len(want), out.Len())], want)
	}
	if code := runCheck([]string{"--manifests", "testdata/nginx-check", "--nginx-configmap", "no-namespace"}, &out, &errs); code != 2 {
		t.Errorf("--nginx-configmap without a namespace: exit %d, want 2", code)
	}
}
