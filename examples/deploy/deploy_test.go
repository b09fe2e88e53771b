// Package deploy holds the manifests that deploy Portico in a cluster, and
// the test that keeps them well-formed.
package deploy

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

// TestManifestsDecodeStrictly decodes every document with the Kubernetes
// types, refusing unknown or duplicate fields, so a typo in a manifest fails
// here rather than at kubectl apply. Validation by a real API server
// (server-side dry run) is part of the cluster integration tests.
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
