package controlplane

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
)

// GatewayAPIModule is the module whose CRDs InstallGatewayAPICRDs applies;
// GatewayAPIVersion is the version the root module pins, used when the
// running binary carries no build information naming it.
const (
	GatewayAPIModule  = "sigs.k8s.io/gateway-api"
	GatewayAPIVersion = "v1.7.0"
)

// Gateway API release channels (config/crd/<channel> in the module).
const (
	ChannelStandard     = "standard"
	ChannelExperimental = "experimental"
)

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// InstallGatewayAPICRDs applies the Gateway API CRDs of channel ("standard"
// or "experimental"; empty means standard) from the gateway-api module in
// the module cache, the version this repository pins, and waits until the
// API server reports every one of them Established. Applying is server-side
// apply, so installing twice, or the experimental channel over the standard
// one, updates in place.
//
// Only the CustomResourceDefinitions are applied, not the release's
// "safe-upgrades" ValidatingAdmissionPolicy: that policy forbids replacing
// standard CRDs with experimental ones, which test clusters do on purpose.
func InstallGatewayAPICRDs(ctx context.Context, cfg *rest.Config, channel string) error {
	if channel == "" {
		channel = ChannelStandard
	}
	if channel != ChannelStandard && channel != ChannelExperimental {
		return fmt.Errorf("gateway API channel %q: want %q or %q", channel, ChannelStandard, ChannelExperimental)
	}
	dir, err := GatewayAPIDir(ctx)
	if err != nil {
		return err
	}
	crds, err := readCRDs(filepath.Join(dir, "config", "crd", channel))
	if err != nil {
		return err
	}
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("dynamic client: %w", err)
	}
	api := client.Resource(crdResource)
	for _, crd := range crds {
		body, err := json.Marshal(crd.Object)
		if err != nil {
			return fmt.Errorf("CRD %s: %w", crd.GetName(), err)
		}
		force := true
		_, err = api.Patch(ctx, crd.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: "portico-controlplane", Force: &force})
		if err != nil {
			return fmt.Errorf("apply CRD %s: %w", crd.GetName(), err)
		}
	}
	for _, crd := range crds {
		if err := waitEstablished(ctx, api, crd.GetName()); err != nil {
			return err
		}
	}
	return nil
}

// GatewayAPIDir returns the directory of the pinned gateway-api module in
// the module cache, downloading it through the module proxy if needed.
func GatewayAPIDir(ctx context.Context) (string, error) {
	version := gatewayAPIVersion()
	if out, err := exec.CommandContext(ctx, "go", "env", "GOMODCACHE").Output(); err == nil {
		dir := filepath.Join(strings.TrimSpace(string(out)), GatewayAPIModule+"@"+version)
		if _, err := os.Stat(filepath.Join(dir, "config", "crd")); err == nil {
			return dir, nil
		}
	}
	// Outside a module (GOFLAGS=-mod=mod keeps a vendored or read-only
	// main module from refusing), go mod download fills the cache.
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", GatewayAPIModule+"@"+version)
	cmd.Dir = os.TempDir()
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var info struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &info); jerr == nil && info.Error != "" {
		return "", fmt.Errorf("go mod download %s@%s: %s", GatewayAPIModule, version, info.Error)
	}
	if err != nil {
		return "", fmt.Errorf("go mod download %s@%s: %v: %s", GatewayAPIModule, version, err, strings.TrimSpace(stderr.String()))
	}
	if info.Dir == "" {
		return "", fmt.Errorf("go mod download %s@%s named no directory", GatewayAPIModule, version)
	}
	return info.Dir, nil
}

// gatewayAPIVersion is the gateway-api version linked into this binary,
// which is the version the go.mod of whatever is running pins.
func gatewayAPIVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range bi.Deps {
			if dep.Path != GatewayAPIModule {
				continue
			}
			if dep.Replace != nil && dep.Replace.Version != "" {
				return dep.Replace.Version
			}
			if dep.Version != "" && dep.Version != "(devel)" {
				return dep.Version
			}
		}
	}
	return GatewayAPIVersion
}

// readCRDs decodes every CustomResourceDefinition in dir's YAML files,
// sorted by name; other kinds are skipped.
func readCRDs(dir string) ([]*unstructured.Unstructured, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	var crds []*unstructured.Unstructured
	for _, file := range files {
		if filepath.Base(file) == "kustomization.yaml" {
			continue
		}
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(f, 64<<10)
		for {
			obj := &unstructured.Unstructured{}
			err := dec.Decode(&obj.Object)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("%s: %w", file, err)
			}
			if obj.Object == nil || obj.GetKind() != "CustomResourceDefinition" {
				continue
			}
			crds = append(crds, obj)
		}
		f.Close()
	}
	if len(crds) == 0 {
		return nil, fmt.Errorf("no CustomResourceDefinition in %s", dir)
	}
	slices.SortFunc(crds, func(a, b *unstructured.Unstructured) int { return strings.Compare(a.GetName(), b.GetName()) })
	return crds, nil
}

func waitEstablished(ctx context.Context, api dynamic.NamespaceableResourceInterface, name string) error {
	var last string
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		crd, err := api.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			last = "not found"
			return false, nil
		}
		if err != nil {
			last = err.Error()
			return false, nil
		}
		conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
		for _, c := range conds {
			m, _ := c.(map[string]any)
			if m["type"] == "Established" && m["status"] == "True" {
				return true, nil
			}
			if m["type"] == "NamesAccepted" && m["status"] == "False" {
				last = fmt.Sprintf("names not accepted: %v", m["message"])
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("CRD %s not Established (%s): %w", name, last, err)
	}
	return nil
}
