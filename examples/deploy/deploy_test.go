// Package deploy holds the manifests that deploy Portico in a cluster, and
// the test that keeps them well-formed.
package deploy

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"

	"portico.dev/portico/hack/controlplane"
)

// TestManifestsDecodeStrictly decodes every document with the Kubernetes
// types, refusing unknown or duplicate fields, so a typo in a manifest fails
// here rather than at kubectl apply, even without a control plane.
func TestManifestsDecodeStrictly(t *testing.T) {
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	decoder := serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range bytes.Split(raw, []byte("\n---\n")) {
			json, err := yaml.YAMLToJSON(doc)
			if err != nil {
				t.Errorf("%s document %d: %v", f, i+1, err)
				continue
			}
			if _, gvk, err := decoder.Decode(json, nil, nil); err != nil {
				t.Errorf("%s document %d (%v): %v", f, i+1, gvk, err)
			}
		}
	}
}

// TestManifestsServerSideDryRun sends every manifest to a real API server
// as a server-side dry run, so the server's own validation (and admission)
// checks them. The Namespace is created for real first: a dry run cannot
// create objects inside a namespace that does not exist.
func TestManifestsServerSideDryRun(t *testing.T) {
	cp := controlplane.StartForTest(t, controlplane.Options{})
	cfg := cp.RESTConfig()
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	groups, err := restmapper.GetAPIGroupResources(disc)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDiscoveryRESTMapper(groups)
	ctx := context.Background()

	files, _ := filepath.Glob("*.yaml")
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range bytes.Split(raw, []byte("\n---\n")) {
			obj := &unstructured.Unstructured{}
			if err := yaml.Unmarshal(doc, &obj.Object); err != nil {
				t.Fatalf("%s document %d: %v", f, i+1, err)
			}
			gvk := obj.GroupVersionKind()
			mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			if err != nil {
				t.Errorf("%s document %d: %s is not served by the API server: %v", f, i+1, gvk, err)
				continue
			}
			var client dynamic.ResourceInterface = dyn.Resource(mapping.Resource)
			if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
				client = dyn.Resource(mapping.Resource).Namespace(obj.GetNamespace())
			}
			opts := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"}
			if gvk.Kind == "Namespace" {
				opts.DryRun = nil
			}
			if _, err := client.Create(ctx, obj, opts); err != nil {
				t.Errorf("%s document %d (%s %s): %v", f, i+1, gvk.Kind, obj.GetName(), err)
			}
		}
	}
}
