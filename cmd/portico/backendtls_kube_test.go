package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"portico.dev/portico/internal/testkit"
)

// TestBackendTLSPolicyAndForeignStatusKubernetesMode runs the Kubernetes
// source and the status writer against a real API server: a
// BackendTLSPolicy and its CA ConfigMap are read, and the policy gets our
// ancestor entry next to another controller's; a condition another
// controller adds to our Gateway and its listener survives our next write.
func TestBackendTLSPolicyAndForeignStatusKubernetesMode(t *testing.T) {
	f := newKubeFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	gw := f.installGatewayAPI(ctx, t)
	const controller = "portico.dev/gateway-controller"
	caPEM, _ := testClientCA(t)
	port := freePort(t)

	if _, err := f.client.CoreV1().ConfigMaps("shop").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "app-ca"},
		Data:       map[string]string{"ca.crt": string(caPEM), "unrelated": "kept out of the cache"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := gw.GatewayV1().GatewayClasses().Create(ctx, &gatewayv1.GatewayClass{
		ObjectMeta: metav1.ObjectMeta{Name: "portico"},
		Spec:       gatewayv1.GatewayClassSpec{ControllerName: controller},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ipAddress := gatewayv1.IPAddressType
	if _, err := gw.GatewayV1().Gateways("shop").Create(ctx, &gatewayv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "edge"},
		Spec: gatewayv1.GatewaySpec{
			GatewayClassName: "portico",
			Addresses:        []gatewayv1.GatewaySpecAddress{{Type: &ipAddress, Value: "127.0.0.1"}},
			Listeners:        []gatewayv1.Listener{{Name: "http", Protocol: gatewayv1.HTTPProtocolType, Port: gatewayv1.PortNumber(port)}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	port80 := gatewayv1.PortNumber(80)
	if _, err := gw.GatewayV1().HTTPRoutes("shop").Create(ctx, &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "app"},
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Name: "edge"}}},
			Rules: []gatewayv1.HTTPRouteRule{{BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{
				BackendObjectReference: gatewayv1.BackendObjectReference{Name: "app", Port: &port80},
			}}}}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	policy, err := gw.GatewayV1().BackendTLSPolicies("shop").Create(ctx, &gatewayv1.BackendTLSPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "app-tls"},
		Spec: gatewayv1.BackendTLSPolicySpec{
			TargetRefs: []gatewayv1.LocalPolicyTargetReferenceWithSectionName{{
				LocalPolicyTargetReference: gatewayv1.LocalPolicyTargetReference{Group: "", Kind: "Service", Name: "app"},
			}},
			Validation: gatewayv1.BackendTLSPolicyValidation{
				Hostname:          "app.example.test",
				CACertificateRefs: []gatewayv1.LocalObjectReference{{Group: "", Kind: "ConfigMap", Name: "app-ca"}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Another implementation's Gateway uses the policy too.
	group, kind := gatewayv1.Group(gatewayv1.GroupName), gatewayv1.Kind("Gateway")
	policy.Status.Ancestors = []gatewayv1.PolicyAncestorStatus{{
		AncestorRef:    gatewayv1.ParentReference{Group: &group, Kind: &kind, Name: "their-gateway"},
		ControllerName: "example.com/other",
		Conditions: []metav1.Condition{{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted",
			ObservedGeneration: policy.Generation, LastTransitionTime: metav1.NewTime(time.Now().Truncate(time.Second))}},
	}}
	if policy, err = gw.GatewayV1().BackendTLSPolicies("shop").UpdateStatus(ctx, policy, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	theirs := policy.Status.Ancestors[0]

	// Discovery is asked every 10s; the deadline is a safety net.
	eventually := func(what string, check func() error) {
		t.Helper()
		testkit.Eventually(t, 90*time.Second, what, check)
	}
	isTrue := func(conds []metav1.Condition, typ string) error {
		if c := meta.FindStatusCondition(conds, typ); c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("%s condition %+v", typ, c)
		}
		return nil
	}
	eventually("the BackendTLSPolicy lists our Gateway as an ancestor, after theirs", func() error {
		p, err := gw.GatewayV1().BackendTLSPolicies("shop").Get(ctx, "app-tls", metav1.GetOptions{})
		if err != nil {
			return err
		}
		a := p.Status.Ancestors
		if len(a) != 2 || !equality.Semantic.DeepEqual(a[0], theirs) || a[1].ControllerName != controller || string(a[1].AncestorRef.Name) != "edge" {
			return fmt.Errorf("ancestors %+v", a)
		}
		if err := isTrue(a[1].Conditions, "Accepted"); err != nil {
			return err
		}
		return isTrue(a[1].Conditions, "ResolvedRefs")
	})

	// Another controller's condition on the Gateway and its listener.
	g, err := gw.GatewayV1().Gateways("shop").Get(ctx, "edge", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Status.Listeners) != 1 {
		t.Fatalf("listener status %+v", g.Status.Listeners)
	}
	foreign := metav1.Condition{Type: "example.com/Audited", Status: metav1.ConditionTrue, Reason: "Seeded",
		ObservedGeneration: g.Generation, LastTransitionTime: metav1.NewTime(time.Now().Truncate(time.Second))}
	g.Status.Conditions = append(g.Status.Conditions, foreign)
	g.Status.Listeners[0].Conditions = append(g.Status.Listeners[0].Conditions, foreign)
	if g, err = gw.GatewayV1().Gateways("shop").UpdateStatus(ctx, g, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	hostname := gatewayv1.Hostname("second.example.test")
	g.Spec.Listeners[0].Hostname = &hostname
	if _, err = gw.GatewayV1().Gateways("shop").Update(ctx, g, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually("our conditions reach the new generation and theirs stay", func() error {
		g, err := gw.GatewayV1().Gateways("shop").Get(ctx, "edge", metav1.GetOptions{})
		if err != nil {
			return err
		}
		for what, conds := range map[string][]metav1.Condition{"Gateway": g.Status.Conditions, "listener": g.Status.Listeners[0].Conditions} {
			kept := meta.FindStatusCondition(conds, foreign.Type)
			if kept == nil || !equality.Semantic.DeepEqual(*kept, foreign) {
				return fmt.Errorf("%s: their condition is %+v, want %+v", what, kept, foreign)
			}
			for _, c := range conds {
				if c.Type != foreign.Type && c.ObservedGeneration != g.Generation {
					return fmt.Errorf("%s condition %s at generation %d, want %d", what, c.Type, c.ObservedGeneration, g.Generation)
				}
			}
		}
		return nil
	})
	// The policy switches to a ClusterTrustBundle: missing first
	// (ResolvedRefs False), then created with the same CA.
	resolved := func(want metav1.ConditionStatus, reason string) func() error {
		return func() error {
			p, err := gw.GatewayV1().BackendTLSPolicies("shop").Get(ctx, "app-tls", metav1.GetOptions{})
			if err != nil {
				return err
			}
			for _, a := range p.Status.Ancestors {
				if a.ControllerName != controller {
					continue
				}
				c := meta.FindStatusCondition(a.Conditions, "ResolvedRefs")
				if c == nil || c.Status != want || c.Reason != reason || c.ObservedGeneration != p.Generation {
					return fmt.Errorf("ResolvedRefs %+v at generation %d", c, p.Generation)
				}
				return nil
			}
			return fmt.Errorf("no ancestor of ours in %+v", p.Status.Ancestors)
		}
	}
	eventually("the policy names a ClusterTrustBundle", func() error {
		p, err := gw.GatewayV1().BackendTLSPolicies("shop").Get(ctx, "app-tls", metav1.GetOptions{})
		if err != nil {
			return err
		}
		p.Spec.Validation.CACertificateRefs = []gatewayv1.LocalObjectReference{{Group: "certificates.k8s.io", Kind: "ClusterTrustBundle", Name: "shop-roots"}}
		_, err = gw.GatewayV1().BackendTLSPolicies("shop").Update(ctx, p, metav1.UpdateOptions{})
		return err
	})
	eventually("the missing ClusterTrustBundle is reported", resolved(metav1.ConditionFalse, "InvalidCACertificateRef"))
	if _, err := f.client.CertificatesV1().ClusterTrustBundles().Create(ctx, &certificatesv1.ClusterTrustBundle{
		ObjectMeta: metav1.ObjectMeta{Name: "shop-roots"},
		Spec:       certificatesv1.ClusterTrustBundleSpec{TrustBundle: string(caPEM)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually("the ClusterTrustBundle resolves", resolved(metav1.ConditionTrue, "ResolvedRefs"))
}
