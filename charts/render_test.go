// Package charts holds Portico's Helm chart (portico/) and its tests, with
// Helm v4 as a library: the chart rendered with its defaults and with each
// value, the schema refusing typos, examples/deploy/ kept equal to the
// default render, and a real install on the local control plane.
package charts

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	"helm.sh/helm/v4/pkg/engine"
	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

var update = flag.Bool("update", false, "rewrite the generated files (examples/deploy/portico.yaml, the chart's copies of the dashboard and CRDs) instead of comparing")

const (
	chartDir    = "portico"
	releaseName = "portico"
	namespace   = "portico"
	kubeVersion = "v1.37.2"
)

// render is `helm template`: the chart with vals, as release "portico" in
// namespace "portico", for a Kubernetes v1.37 cluster that also serves
// apiVersions. It uses Helm's engine, values and schema code directly
// rather than the install action, whose dependencies (kubectl, registries,
// plugins, storage drivers) would double the build of these tests.
func render(t *testing.T, vals map[string]any, apiVersions ...string) (string, error) {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("loading the chart: %v", err)
	}
	caps := common.DefaultCapabilities.Copy()
	kv, err := common.ParseKubeVersion(kubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	caps.KubeVersion = *kv
	caps.APIVersions = append(caps.APIVersions, apiVersions...)
	if c := ch.Metadata.KubeVersion; c != "" && !chartutil.IsCompatibleRange(c, kv.String()) {
		return "", fmt.Errorf("chart requires kubeVersion %s, not %s", c, kv)
	}
	opts := common.ReleaseOptions{Name: releaseName, Namespace: namespace, Revision: 1, IsInstall: true}
	values, err := util.ToRenderValuesWithSchemaValidation(ch, vals, opts, caps, false)
	if err != nil {
		return "", err
	}
	files, err := engine.Render(ch, values)
	if err != nil {
		return "", err
	}
	// As helm template: no hooks, the manifests in Helm's install order.
	hooks, manifests, err := releaseutil.SortManifests(files, nil, releaseutil.InstallOrder)
	if err != nil {
		return "", err
	}
	if len(hooks) > 0 {
		t.Errorf("the chart has %d hooks; the render here leaves them out", len(hooks))
	}
	var b strings.Builder
	for _, m := range manifests {
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", m.Name, m.Content)
	}
	return b.String(), nil
}

func mustRender(t *testing.T, vals map[string]any, apiVersions ...string) []*unstructured.Unstructured {
	t.Helper()
	manifest, err := render(t, vals, apiVersions...)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return parse(t, manifest)
}

// parse splits a rendered manifest into objects.
func parse(t *testing.T, manifest string) []*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifest), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("rendered YAML: %v", err)
		}
		if m == nil {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

func find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && (name == "" || o.GetName() == name) {
			return o
		}
	}
	return nil
}

func count(objs []*unstructured.Unstructured, kind string) int {
	n := 0
	for _, o := range objs {
		if o.GetKind() == kind {
			n++
		}
	}
	return n
}

func deployment(t *testing.T, objs []*unstructured.Unstructured) *appsv1.Deployment {
	t.Helper()
	u := find(objs, "Deployment", "portico")
	if u == nil {
		t.Fatal("no Deployment portico")
	}
	var d appsv1.Deployment
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, &d, true); err != nil {
		t.Fatalf("Deployment: %v", err)
	}
	return &d
}

// arg is the value of --name in the container's args, and whether it is there.
func arg(d *appsv1.Deployment, name string) (string, bool) {
	for _, a := range d.Spec.Template.Spec.Containers[0].Args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
		if a == "--"+name {
			return "true", true
		}
	}
	return "", false
}

// compareOrUpdate checks that the file at path holds want, or with -update
// writes it.
func compareOrUpdate(t *testing.T, path string, want []byte, regenerate string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is not what it is generated from; run %s", path, regenerate)
	}
}
