package controlplane

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
)

func TestInstallGatewayAPICRDs(t *testing.T) {
	cp := StartForTest(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// Twice: applying is idempotent, and experimental replaces standard.
	for _, channel := range []string{ChannelStandard, ChannelExperimental} {
		if err := InstallGatewayAPICRDs(ctx, cp.RESTConfig(), channel); err != nil {
			t.Fatalf("%s: %v", channel, err)
		}
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cp.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	resources, err := disc.ServerResourcesForGroupVersion("gateway.networking.k8s.io/v1")
	if err != nil {
		t.Fatalf("gateway.networking.k8s.io/v1 not served: %v", err)
	}
	served := map[string]bool{}
	for _, r := range resources.APIResources {
		served[r.Name] = true
	}
	for _, want := range []string{"gatewayclasses", "gateways", "httproutes", "referencegrants", "gateways/status"} {
		if !served[want] {
			t.Errorf("%s not served; served: %v", want, served)
		}
	}
	crd, err := cp.Client().Discovery().RESTClient().Get().AbsPath("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gateways.gateway.networking.k8s.io").Do(ctx).Raw()
	if err != nil {
		t.Fatal(err)
	}
	var got metav1.PartialObjectMetadata
	if err := json.Unmarshal(crd, &got); err != nil {
		t.Fatal(err)
	}
	if ch := got.Annotations["gateway.networking.k8s.io/channel"]; ch != ChannelExperimental {
		t.Errorf("channel annotation %q after installing experimental over standard", ch)
	}

	if err := InstallGatewayAPICRDs(ctx, cp.RESTConfig(), "nightly"); err == nil {
		t.Error("an unknown channel was accepted")
	}
}
