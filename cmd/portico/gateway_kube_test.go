package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"portico.dev/portico/hack/controlplane"

	"portico.dev/portico/internal/testkit"
)

// TestGatewayAPIKubernetesMode installs the Gateway API CRDs into a cluster
// Portico already watches, then creates a GatewayClass, a Gateway and an
// HTTPRoute (one backend in the route's namespace, one in another through a
// ReferenceGrant), and checks that Portico picks the CRDs up without a
// restart, writes their status, and routes traffic on the Gateway's socket.
func TestGatewayAPIKubernetesMode(t *testing.T) {
	f := newKubeFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	gw := f.installGatewayAPI(ctx, t)
	port := freePort(t)

	if _, err := gw.GatewayV1().GatewayClasses().Create(ctx, &gatewayv1.GatewayClass{
		ObjectMeta: metav1.ObjectMeta{Name: "portico"},
		Spec:       gatewayv1.GatewayClassSpec{ControllerName: "portico.dev/gateway-controller"},
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
	if _, err := gw.GatewayV1().ReferenceGrants("default").Create(ctx, &gatewayv1.ReferenceGrant{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "shop-routes"},
		Spec: gatewayv1.ReferenceGrantSpec{
			From: []gatewayv1.ReferenceGrantFrom{{Group: gatewayv1.GroupName, Kind: "HTTPRoute", Namespace: "shop"}},
			To:   []gatewayv1.ReferenceGrantTo{{Group: "", Kind: "Service"}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pathPrefix, api := gatewayv1.PathMatchPathPrefix, "/api"
	legacyNS := gatewayv1.Namespace("default")
	port80 := gatewayv1.PortNumber(80)
	if _, err := gw.GatewayV1().HTTPRoutes("shop").Create(ctx, &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "app"},
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Name: "edge"}}},
			Hostnames:       []gatewayv1.Hostname{"app.example.test"},
			Rules: []gatewayv1.HTTPRouteRule{
				{
					Matches: []gatewayv1.HTTPRouteMatch{{Path: &gatewayv1.HTTPPathMatch{Type: &pathPrefix, Value: &api}}},
					BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{
						BackendObjectReference: gatewayv1.BackendObjectReference{Name: "app", Port: &port80},
					}}},
				},
				{
					BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{
						BackendObjectReference: gatewayv1.BackendObjectReference{Name: "legacy-fallback", Namespace: &legacyNS, Port: &port80},
					}}},
				},
			},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Discovery is asked every 10s; the deadline below is a safety net.
	slow := func(what string, check func() error) {
		t.Helper()
		testkit.Eventually(t, 90*time.Second, what, check)
	}
	c := &http.Client{Transport: &http.Transport{DialContext: f.gw.dialGateway(fmt.Sprintf("127.0.0.1:%d", port))}}
	defer c.CloseIdleConnections()
	slow("the HTTPRoute serves on the Gateway's socket", func() error {
		return expectBody(c, "http://app.example.test/api/orders", "app GET /api/orders")
	})
	if err := expectBody(c, "http://app.example.test/about", "legacy GET /about"); err != nil {
		t.Errorf("the backend granted by the ReferenceGrant: %v", err)
	}

	condition := func(conds []metav1.Condition, typ string) error {
		c := meta.FindStatusCondition(conds, typ)
		if c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("%s condition %+v", typ, c)
		}
		if c.LastTransitionTime.IsZero() {
			return fmt.Errorf("%s condition has no transition time", typ)
		}
		return nil
	}
	slow("the GatewayClass is Accepted", func() error {
		gc, err := gw.GatewayV1().GatewayClasses().Get(ctx, "portico", metav1.GetOptions{})
		if err != nil {
			return err
		}
		return condition(gc.Status.Conditions, "Accepted")
	})
	slow("the Gateway is Programmed with its address", func() error {
		g, err := gw.GatewayV1().Gateways("shop").Get(ctx, "edge", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if err := condition(g.Status.Conditions, "Programmed"); err != nil {
			return err
		}
		if len(g.Status.Addresses) != 1 || g.Status.Addresses[0].Value != "127.0.0.1" {
			return fmt.Errorf("addresses %+v", g.Status.Addresses)
		}
		if len(g.Status.Listeners) != 1 || g.Status.Listeners[0].AttachedRoutes != 1 {
			return fmt.Errorf("listeners %+v", g.Status.Listeners)
		}
		return nil
	})
	slow("the Gateway has its Service, owned by it", func() error {
		svc, err := f.client.CoreV1().Services("shop").Get(ctx, "portico-edge", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if svc.Labels[gatewayv1.GatewayNameLabelKey] != "edge" || svc.Spec.ClusterIP != corev1.ClusterIPNone ||
			len(svc.OwnerReferences) != 1 || svc.OwnerReferences[0].Kind != "Gateway" {
			return fmt.Errorf("Service %+v", svc)
		}
		return nil
	})
	slow("the HTTPRoute is Accepted by our controller", func() error {
		r, err := gw.GatewayV1().HTTPRoutes("shop").Get(ctx, "app", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(r.Status.Parents) != 1 || r.Status.Parents[0].ControllerName != "portico.dev/gateway-controller" {
			return fmt.Errorf("parents %+v", r.Status.Parents)
		}
		if err := condition(r.Status.Parents[0].Conditions, "Accepted"); err != nil {
			return err
		}
		return condition(r.Status.Parents[0].Conditions, "ResolvedRefs")
	})

	// A ListenerSet adds a listener on a port of its own. The Gateway does
	// not allow ListenerSets yet: the set says so (status and an Event);
	// once the Gateway allows its namespace, the new socket serves its
	// route, without a restart.
	setPort := freePort(t)
	teamHost := gatewayv1.Hostname("team.example.test")
	if _, err := gw.GatewayV1().ListenerSets("shop").Create(ctx, &gatewayv1.ListenerSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "team"},
		Spec: gatewayv1.ListenerSetSpec{
			ParentRef: gatewayv1.ParentGatewayReference{Name: "edge"},
			Listeners: []gatewayv1.ListenerEntry{{Name: "team", Protocol: gatewayv1.HTTPProtocolType,
				Port: gatewayv1.PortNumber(setPort), Hostname: &teamHost}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	listenerSetKind := gatewayv1.Kind("ListenerSet")
	if _, err := gw.GatewayV1().HTTPRoutes("shop").Create(ctx, &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "team"},
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Kind: &listenerSetKind, Name: "team"}}},
			Rules: []gatewayv1.HTTPRouteRule{{BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{
				BackendObjectReference: gatewayv1.BackendObjectReference{Name: "app", Port: &port80},
			}}}}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	listenerSetCondition := func(typ, status, reason string) error {
		ls, err := gw.GatewayV1().ListenerSets("shop").Get(ctx, "team", metav1.GetOptions{})
		if err != nil {
			return err
		}
		c := meta.FindStatusCondition(ls.Status.Conditions, typ)
		if c == nil || string(c.Status) != status || c.Reason != reason {
			return fmt.Errorf("%s condition %+v", typ, c)
		}
		return nil
	}
	slow("the ListenerSet is not allowed", func() error { return listenerSetCondition("Accepted", "False", "NotAllowed") })
	slow("an Event names the ListenerSet", func() error {
		events, err := f.client.CoreV1().Events("shop").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=ListenerSet"})
		if err != nil {
			return err
		}
		for _, ev := range events.Items {
			if ev.Reason == "NotAllowed" && strings.Contains(ev.Message, "allowedListeners") {
				return nil
			}
		}
		return fmt.Errorf("%d ListenerSet events, none NotAllowed", len(events.Items))
	})
	slow("the Gateway allows ListenerSets from its namespace", func() error {
		g, err := gw.GatewayV1().Gateways("shop").Get(ctx, "edge", metav1.GetOptions{})
		if err != nil {
			return err
		}
		same := gatewayv1.NamespacesFromSame
		g.Spec.AllowedListeners = &gatewayv1.AllowedListeners{Namespaces: &gatewayv1.ListenerNamespaces{From: &same}}
		_, err = gw.GatewayV1().Gateways("shop").Update(ctx, g, metav1.UpdateOptions{})
		return err
	})
	setClient := &http.Client{Transport: &http.Transport{DialContext: f.gw.dialGateway(fmt.Sprintf("127.0.0.1:%d", setPort))}}
	defer setClient.CloseIdleConnections()
	slow("the ListenerSet's route serves on its own socket", func() error {
		return expectBody(setClient, "http://team.example.test/t", "app GET /t")
	})
	slow("the ListenerSet is Programmed and counted by the Gateway", func() error {
		if err := listenerSetCondition("Programmed", "True", "Programmed"); err != nil {
			return err
		}
		g, err := gw.GatewayV1().Gateways("shop").Get(ctx, "edge", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if n := g.Status.AttachedListenerSets; n == nil || *n != 1 {
			return fmt.Errorf("attachedListenerSets %v", n)
		}
		return nil
	})

	// A Gateway whose socket cannot be bound (the port is taken): its
	// status says so, and the first Gateway keeps serving.
	held, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if _, err := gw.GatewayV1().Gateways("shop").Create(ctx, &gatewayv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "blocked"},
		Spec: gatewayv1.GatewaySpec{
			GatewayClassName: "portico",
			Addresses:        []gatewayv1.GatewaySpecAddress{{Type: &ipAddress, Value: "127.0.0.2"}},
			Listeners: []gatewayv1.Listener{{Name: "http", Protocol: gatewayv1.HTTPProtocolType,
				Port: gatewayv1.PortNumber(held.Addr().(*net.TCPAddr).Port)}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	slow("the unbindable Gateway is not Programmed", func() error {
		g, err := gw.GatewayV1().Gateways("shop").Get(ctx, "blocked", metav1.GetOptions{})
		if err != nil {
			return err
		}
		c := meta.FindStatusCondition(g.Status.Conditions, "Programmed")
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != "AddressNotUsable" || !strings.Contains(c.Message, "cannot be bound") {
			return fmt.Errorf("Programmed %+v", c)
		}
		return nil
	})
	if err := expectBody(c, "http://app.example.test/api/still", "app GET /api/still"); err != nil {
		t.Errorf("the first Gateway after another failed to bind: %v", err)
	}

	// A backend that does not exist: the status says so and an Event is
	// recorded on the route.
	slow("the route points at a missing Service", func() error {
		r, err := gw.GatewayV1().HTTPRoutes("shop").Get(ctx, "app", metav1.GetOptions{})
		if err != nil {
			return err
		}
		r.Spec.Rules[0].BackendRefs[0].Name = "does-not-exist"
		_, err = gw.GatewayV1().HTTPRoutes("shop").Update(ctx, r, metav1.UpdateOptions{})
		return err
	})
	slow("ResolvedRefs turns False", func() error {
		r, err := gw.GatewayV1().HTTPRoutes("shop").Get(ctx, "app", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(r.Status.Parents) != 1 {
			return fmt.Errorf("parents %+v", r.Status.Parents)
		}
		c := meta.FindStatusCondition(r.Status.Parents[0].Conditions, "ResolvedRefs")
		if c == nil || c.Status != metav1.ConditionFalse || c.ObservedGeneration != r.Generation {
			return fmt.Errorf("ResolvedRefs %+v at generation %d", c, r.Generation)
		}
		return nil
	})
	slow("an Event names the HTTPRoute", func() error {
		events, err := f.client.CoreV1().Events("shop").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=HTTPRoute"})
		if err != nil {
			return err
		}
		for _, ev := range events.Items {
			if ev.Type == corev1.EventTypeWarning && strings.Contains(ev.Message, "does-not-exist") {
				return nil
			}
		}
		return fmt.Errorf("%d HTTPRoute events, none about does-not-exist", len(events.Items))
	})
}

// installGatewayAPI installs the Gateway API CRDs of the pinned release
// into the fixture's cluster and returns a client for their objects.
func (f *kubeFixture) installGatewayAPI(ctx context.Context, t *testing.T) gatewayclient.Interface {
	t.Helper()
	if err := controlplane.InstallGatewayAPICRDs(ctx, f.cp.RESTConfig(), controlplane.ChannelStandard); err != nil {
		t.Fatal(err)
	}
	return gatewayclient.NewForConfigOrDie(f.cp.RESTConfig())
}
