package kube

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayfake "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned/fake"

	"portico.dev/portico/snapshot"
)

// fakeGatewayDiscovery makes client's discovery serve the Gateway API
// resources while installed is true, and answer NotFound otherwise, as an
// API server without the CRDs does.
func fakeGatewayDiscovery(client *fake.Clientset, installed *atomic.Bool) {
	var resources []metav1.APIResource
	for _, r := range append(slices.Clone(gatewayResources), "backendtlspolicies", "listenersets") {
		resources = append(resources, metav1.APIResource{Name: r})
	}
	client.Resources = []*metav1.APIResourceList{
		{GroupVersion: gatewayv1.GroupVersion.String(), APIResources: resources},
		{GroupVersion: certificatesv1.SchemeGroupVersion.String(), APIResources: []metav1.APIResource{{Name: "clustertrustbundles"}}},
	}
	client.PrependReactor("get", "resource", func(k8stesting.Action) (bool, runtime.Object, error) {
		if installed.Load() {
			// Handled, so the clientset's object tracker does not answer
			// NotFound for the made-up resource "resource".
			return true, nil, nil
		}
		return true, nil, apierrors.NewNotFound(schema.GroupResource{Group: gatewayv1.GroupName}, "")
	})
}

// newGatewayClientset creates objs through the fake clientset's API: handed
// to NewClientset directly, a Gateway would be filed under the resource
// "gatewaies" (the tracker guesses plurals) and never listed.
func newGatewayClientset(t *testing.T, objs ...runtime.Object) *gatewayfake.Clientset {
	t.Helper()
	c := gatewayfake.NewSimpleClientset() //nolint:staticcheck // NewClientset needs applyconfigurations the tracker cannot map for Gateways
	ctx := context.Background()
	for _, obj := range objs {
		var err error
		switch o := obj.(type) {
		case *gatewayv1.GatewayClass:
			_, err = c.GatewayV1().GatewayClasses().Create(ctx, o, metav1.CreateOptions{})
		case *gatewayv1.Gateway:
			_, err = c.GatewayV1().Gateways(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *gatewayv1.HTTPRoute:
			_, err = c.GatewayV1().HTTPRoutes(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *gatewayv1.ReferenceGrant:
			_, err = c.GatewayV1().ReferenceGrants(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *gatewayv1.BackendTLSPolicy:
			_, err = c.GatewayV1().BackendTLSPolicies(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *gatewayv1.ListenerSet:
			_, err = c.GatewayV1().ListenerSets(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		default:
			t.Fatalf("unexpected %T", obj)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func TestRunGatewayAPIFollowsTheCRDs(t *testing.T) {
	client := fake.NewClientset(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"team": "shop"}}},
	)
	var installed atomic.Bool
	fakeGatewayDiscovery(client, &installed)
	gw := newGatewayClientset(t,
		&gatewayv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "portico"}},
		&gatewayv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "edge"}},
		&gatewayv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "edge"}},
		&gatewayv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}},
		&gatewayv1.ReferenceGrant{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "grant"}},
	)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan snapshot.Objects, 10)
	src := &Source{Client: client, Gateway: gw, Namespaces: []string{"shop"}, Quiet: 10 * time.Millisecond, DiscoveryInterval: 10 * time.Millisecond}
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, func(o snapshot.Objects) { got <- o }) }()

	first := receive(t, got)
	if len(first.GatewayClasses)+len(first.Gateways)+len(first.HTTPRoutes)+len(first.Namespaces) != 0 {
		t.Errorf("Gateway API objects without the CRDs: %+v", first)
	}

	installed.Store(true)
	next := receive(t, got)
	if len(next.GatewayClasses) != 1 || len(next.Gateways) != 1 || next.Gateways[0].Namespace != "shop" ||
		len(next.HTTPRoutes) != 1 || len(next.ReferenceGrants) != 1 || len(next.Namespaces) != 1 {
		t.Errorf("after installing the CRDs: %d classes, gateways %v, %d routes, %d grants, %d namespaces",
			len(next.GatewayClasses), next.Gateways, len(next.HTTPRoutes), len(next.ReferenceGrants), len(next.Namespaces))
	}

	_, err := gw.GatewayV1().HTTPRoutes("shop").Create(ctx,
		&gatewayv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "api"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if next := receive(t, got); len(next.HTTPRoutes) != 2 {
		t.Errorf("after a create: %d routes, want 2", len(next.HTTPRoutes))
	}

	installed.Store(false)
	if gone := receive(t, got); len(gone.Gateways) != 0 || len(gone.GatewayClasses) != 0 {
		t.Errorf("after removing the CRDs: %d gateways, %d classes", len(gone.Gateways), len(gone.GatewayClasses))
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func TestRunGatewayAPIInstalledAtStart(t *testing.T) {
	client := fake.NewClientset()
	installed := &atomic.Bool{}
	installed.Store(true)
	fakeGatewayDiscovery(client, installed)
	gw := newGatewayClientset(t, &gatewayv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "edge"}})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan snapshot.Objects, 10)
	src := &Source{Client: client, Gateway: gw, Quiet: 10 * time.Millisecond}
	go func() { _ = src.Run(ctx, func(o snapshot.Objects) { got <- o }) }()
	// The very first snapshot already has them: no Gateway is briefly
	// served without its listeners.
	if first := receive(t, got); len(first.Gateways) != 1 {
		t.Errorf("first objects have %d gateways, want 1", len(first.Gateways))
	}
}

// TestRunGatewayAPIOptionalKinds: BackendTLSPolicies and ListenerSets in
// the watched namespaces, the CA bundles of their ConfigMaps (stripped to
// their ca.crt) and ClusterTrustBundles join the objects.
func TestRunGatewayAPIOptionalKinds(t *testing.T) {
	client := fake.NewClientset(
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "backend-ca", Annotations: map[string]string{"big": "x"}},
			Data: map[string]string{"ca.crt": "PEM", "app.properties": "not ours"}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "elsewhere"}, Data: map[string]string{"ca.crt": "PEM"}},
		&certificatesv1.ClusterTrustBundle{ObjectMeta: metav1.ObjectMeta{Name: "roots"}, Spec: certificatesv1.ClusterTrustBundleSpec{TrustBundle: "PEM"}},
	)
	installed := &atomic.Bool{}
	installed.Store(true)
	fakeGatewayDiscovery(client, installed)
	gw := newGatewayClientset(t,
		&gatewayv1.BackendTLSPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "to-app"}},
		&gatewayv1.BackendTLSPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "to-app"}},
		&gatewayv1.ListenerSet{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "team"}},
		&gatewayv1.ListenerSet{ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "team"}},
	)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan snapshot.Objects, 10)
	src := &Source{Client: client, Gateway: gw, Namespaces: []string{"shop"}, Quiet: 10 * time.Millisecond}
	go func() { _ = src.Run(ctx, func(o snapshot.Objects) { got <- o }) }()
	first := receive(t, got)
	if len(first.BackendTLSPolicies) != 1 || first.BackendTLSPolicies[0].Namespace != "shop" {
		t.Errorf("BackendTLSPolicies %v, want shop/to-app only", first.BackendTLSPolicies)
	}
	if len(first.ListenerSets) != 1 || first.ListenerSets[0].Namespace != "shop" {
		t.Errorf("ListenerSets %v, want shop/team only", first.ListenerSets)
	}
	if len(first.ConfigMaps) != 1 {
		t.Fatalf("ConfigMaps %v, want shop/backend-ca only", first.ConfigMaps)
	}
	if len(first.ClusterTrustBundles) != 1 || first.ClusterTrustBundles[0].Name != "roots" {
		t.Errorf("ClusterTrustBundles %v, want roots", first.ClusterTrustBundles)
	}
	if cm := first.ConfigMaps[0]; cm.Name != "backend-ca" || len(cm.Data) != 1 || cm.Data["ca.crt"] != "PEM" || cm.Annotations != nil {
		t.Errorf("cached ConfigMap %+v, want its ca.crt only", cm)
	}

	_, err := gw.GatewayV1().BackendTLSPolicies("shop").Create(ctx,
		&gatewayv1.BackendTLSPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "to-api"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if next := receive(t, got); len(next.BackendTLSPolicies) != 2 {
		t.Errorf("after a create: %d BackendTLSPolicies, want 2", len(next.BackendTLSPolicies))
	}
}
