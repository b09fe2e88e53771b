package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"portico.dev/portico/hack/controlplane"

	"portico.dev/portico/internal/testkit"
)

// TestKubernetesMode runs Portico against a real kube-apiserver, etcd and
// kube-controller-manager on loopback. Backends listen inside a network
// namespace the test creates, because the API server refuses loopback
// addresses in Endpoints and EndpointSlices.
func TestKubernetesMode(t *testing.T) {
	f := newKubeFixture(t)
	cp, client, ca, e := f.cp, f.client, f.ca, f.gw
	ctx := context.Background()
	c := e.http1Client()

	t.Run("routes and falls back", func(t *testing.T) {
		eventually(t, "the Ingress route serves", func() error { return expectBody(c, "https://app.example.test/api/orders", "app GET /api/orders") })
		if err := expectBody(c, "https://unknown.example.test/old", "legacy GET /old"); err != nil {
			t.Error(err)
		}
		if serial, err := e.handshakeSerial("app.example.test"); err != nil || serial != "1" {
			t.Errorf("certificate serial %q, err %v; want 1", serial, err)
		}
	})

	t.Run("status and events", func(t *testing.T) {
		eventually(t, "the Ingress status carries the published address", func() error {
			got, err := client.NetworkingV1().Ingresses("shop").Get(ctx, "app", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if lb := got.Status.LoadBalancer.Ingress; len(lb) != 1 || lb[0].IP != "203.0.113.10" {
				return fmt.Errorf("status %v", lb)
			}
			return nil
		})
		eventually(t, "an Event reports the missing Service", func() error {
			events, err := client.CoreV1().Events("shop").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=app"})
			if err != nil {
				return err
			}
			for _, ev := range events.Items {
				if ev.Reason == "ServiceNotFound" && ev.Type == corev1.EventTypeWarning {
					return nil
				}
			}
			return fmt.Errorf("%d events, none ServiceNotFound", len(events.Items))
		})
	})

	t.Run("ingress-nginx's ConfigMap", func(t *testing.T) {
		if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ingress-nginx"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ingress-nginx", Name: "ingress-nginx-controller"},
			Data: map[string]string{"proxy-body-size": "1k", "proxy-real-ip-cidr": "10.0.0.0/8"}}
		if _, err := client.CoreV1().ConfigMaps("ingress-nginx").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		class := "portico"
		prefix := networkingv1.PathTypePrefix
		// One ingress-nginx annotation makes it written for ingress-nginx.
		limited := &networkingv1.Ingress{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "limited", Annotations: map[string]string{"nginx.ingress.kubernetes.io/ssl-redirect": "false"}},
			Spec: networkingv1.IngressSpec{IngressClassName: &class, Rules: []networkingv1.IngressRule{{
				Host: "limited.example.test",
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
					Paths: []networkingv1.HTTPIngressPath{{Path: "/", PathType: &prefix, Backend: serviceBackend("app", "http")}},
				}},
			}}},
		}
		if _, err := client.NetworkingV1().Ingresses("shop").Create(ctx, limited, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		post := func(size, want int) error {
			resp, err := c.Post("http://limited.example.test/up", "text/plain", strings.NewReader(strings.Repeat("a", size)))
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			_, _ = io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != want {
				return fmt.Errorf("POST of %d bytes: status %d, want %d", size, resp.StatusCode, want)
			}
			return nil
		}
		eventually(t, "the ConfigMap's proxy-body-size applies", func() error {
			if err := post(1024, 200); err != nil {
				return err
			}
			return post(1025, 413)
		})
		eventually(t, "an Event on the ConfigMap reports the unsupported key", func() error {
			events, err := client.CoreV1().Events("ingress-nginx").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=ingress-nginx-controller"})
			if err != nil {
				return err
			}
			for _, ev := range events.Items {
				if ev.Reason == "UnsupportedNginxConfigMapKey" && ev.Type == corev1.EventTypeWarning && strings.Contains(ev.Message, "proxy-real-ip-cidr") {
					return nil
				}
			}
			return fmt.Errorf("%d events, none UnsupportedNginxConfigMapKey", len(events.Items))
		})
		cm.Data["proxy-body-size"] = "4k"
		if _, err := client.CoreV1().ConfigMaps("ingress-nginx").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the edited proxy-body-size applies", func() error { return post(1025, 200) })

		// custom-headers: a ConfigMap of the Ingress's namespace, watched
		// by name, whose headers global-allowed-response-headers admits.
		cm.Data["global-allowed-response-headers"] = "X-Frame-Options"
		if _, err := client.CoreV1().ConfigMaps("ingress-nginx").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		headers := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "security-headers"},
			Data: map[string]string{"X-Frame-Options": "DENY", "X-Not-Allowed": "1"}}
		if _, err := client.CoreV1().ConfigMaps("shop").Create(ctx, headers, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		headed := limited.DeepCopy()
		headed.ResourceVersion, headed.Name = "", "headed"
		headed.Annotations = map[string]string{"nginx.ingress.kubernetes.io/custom-headers": "security-headers"}
		headed.Spec.Rules[0].Host = "headed.example.test"
		if _, err := client.NetworkingV1().Ingresses("shop").Create(ctx, headed, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		header := func(want string) error {
			resp, err := c.Get("http://headed.example.test/")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			_, _ = io.Copy(io.Discard, resp.Body)
			if got := resp.Header.Get("X-Frame-Options"); resp.StatusCode != 200 || got != want || resp.Header.Get("X-Not-Allowed") != "" {
				return fmt.Errorf("status %d X-Frame-Options %q X-Not-Allowed %q, want 200 %q and none", resp.StatusCode, got, resp.Header.Get("X-Not-Allowed"), want)
			}
			return nil
		}
		eventually(t, "custom-headers sets the allowed header of its ConfigMap", func() error { return header("DENY") })
		headers.Data["X-Frame-Options"] = "SAMEORIGIN"
		if _, err := client.CoreV1().ConfigMaps("shop").Update(ctx, headers, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "an edit of the ConfigMap applies", func() error { return header("SAMEORIGIN") })
	})

	t.Run("secret edit swaps the certificate", func(t *testing.T) {
		certPEM, keyPEM := ca.issue(t, 2, "app.example.test")
		_, err := client.CoreV1().Secrets("shop").Update(ctx, tlsSecret("shop", "app-tls", certPEM, keyPEM), metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		e.waitSerial("app.example.test", "2")
	})

	t.Run("API server down keeps serving, then reconnects", func(t *testing.T) {
		cp.StopAPIServer()
		for i := 0; i < 5; i++ {
			if err := expectBody(c, "https://app.example.test/api/while-down", "app GET /api/while-down"); err != nil {
				t.Fatalf("with the API server down: %v", err)
			}
		}
		startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		if err := cp.StartAPIServer(startCtx); err != nil {
			t.Fatal(err)
		}
		client = cp.Client()
		certPEM, keyPEM := ca.issue(t, 3, "app.example.test")
		eventually(t, "a change after the restart applies", func() error {
			_, err := client.CoreV1().Secrets("shop").Update(ctx, tlsSecret("shop", "app-tls", certPEM, keyPEM), metav1.UpdateOptions{})
			return err
		})
		e.waitSerial("app.example.test", "3")
	})

	t.Run("a class marked default while running takes class-less Ingresses", func(t *testing.T) {
		prefix := networkingv1.PathTypePrefix
		classless := &networkingv1.Ingress{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "classless"},
			Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{
				Host: "classless.example.test",
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
					Paths: []networkingv1.HTTPIngressPath{{Path: "/", PathType: &prefix, Backend: serviceBackend("app", "http")}},
				}},
			}}},
		}
		if _, err := client.NetworkingV1().Ingresses("shop").Create(ctx, classless, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// Not ours yet: no class, and no default class. A later change
		// proves this one was processed.
		eventually(t, "the class-less Ingress is not served", func() error {
			return expectBody(c, "https://classless.example.test/x", "legacy GET /x")
		})
		eventually(t, "the IngressClass becomes the default", func() error {
			ic, err := client.NetworkingV1().IngressClasses().Get(ctx, "portico", metav1.GetOptions{})
			if err != nil {
				return err
			}
			ic.Annotations = map[string]string{networkingv1.AnnotationIsDefaultIngressClass: "true"}
			_, err = client.NetworkingV1().IngressClasses().Update(ctx, ic, metav1.UpdateOptions{})
			return err
		})
		eventually(t, "the class-less Ingress is served", func() error {
			return expectBody(c, "https://classless.example.test/x", "app GET /x")
		})
	})

	t.Run("class change drops the route and the status", func(t *testing.T) {
		other := "someone-else"
		eventually(t, "the Ingress moves to another class", func() error {
			cur, err := client.NetworkingV1().Ingresses("shop").Get(ctx, "app", metav1.GetOptions{})
			if err != nil {
				return err
			}
			cur.Spec.IngressClassName = &other
			_, err = client.NetworkingV1().Ingresses("shop").Update(ctx, cur, metav1.UpdateOptions{})
			return err
		})
		eventually(t, "its paths fall back to the legacy site", func() error {
			return expectBody(c, "https://app.example.test/api/orders", "legacy GET /api/orders")
		})
		eventually(t, "its status is cleared", func() error {
			got, err := client.NetworkingV1().Ingresses("shop").Get(ctx, "app", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if lb := got.Status.LoadBalancer.Ingress; len(lb) != 0 {
				return fmt.Errorf("status still %v", lb)
			}
			return nil
		})
	})
}

// kubeFixture is a control plane with a component (an Ingress for
// app.example.test/api, its Service and EndpointSlice), the legacy fallback
// (a selector-less Service with Endpoints), backends for both in a network
// namespace, and a Portico reading it all from the API server.
type kubeFixture struct {
	cp     *controlplane.ControlPlane
	client kubernetes.Interface
	ca     *testCA
	gw     *env
}

func newKubeFixture(t testing.TB) *kubeFixture {
	t.Helper()
	cp := controlplane.StartForTest(t, controlplane.Options{})
	ns := controlplane.NetnsForTest(t)
	client := cp.Client()
	ctx := context.Background()

	app := newNetnsBackend(t, ns, "app")
	legacy := newNetnsBackend(t, ns, "legacy")
	ca := newTestCA(t)
	certPEM, keyPEM := ca.issue(t, 1, "app.example.test")

	if _, err := client.NetworkingV1().IngressClasses().Create(ctx, &networkingv1.IngressClass{
		ObjectMeta: metav1.ObjectMeta{Name: "portico"},
		Spec:       networkingv1.IngressClassSpec{Controller: "portico.dev/controller"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The component: a Service with a selector, whose EndpointSlice the test
	// writes as the endpointslice controller would for ready Pods.
	if _, err := client.CoreV1().Services("shop").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "app"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "app"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(int32(app.port))}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	portName, port, ready := "http", int32(app.port), true
	if _, err := client.DiscoveryV1().EndpointSlices("shop").Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "app-pods", Labels: map[string]string{
			discoveryv1.LabelServiceName: "app",
			discoveryv1.LabelManagedBy:   "portico-test",
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port}},
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{ns.NSIP.String()}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The legacy site: selector-less Service, hand-written Endpoints.
	if _, err := client.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "legacy-fallback"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().Endpoints("default").Create(ctx, &corev1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "legacy-fallback"},
		Subsets: []corev1.EndpointSubset{{
			Addresses: []corev1.EndpointAddress{{IP: ns.NSIP.String()}},
			Ports:     []corev1.EndpointPort{{Name: "http", Port: int32(legacy.port)}},
		}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	if _, err := client.CoreV1().Secrets("shop").Create(ctx, tlsSecret("shop", "app-tls", certPEM, keyPEM), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	class := "portico"
	prefix := networkingv1.PathTypePrefix
	ingress := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "app"},
		Spec: networkingv1.IngressSpec{
			IngressClassName: &class,
			TLS:              []networkingv1.IngressTLS{{Hosts: []string{"app.example.test"}, SecretName: "app-tls"}},
			Rules: []networkingv1.IngressRule{{
				Host: "app.example.test",
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
					Paths: []networkingv1.HTTPIngressPath{
						{Path: "/api", PathType: &prefix, Backend: serviceBackend("app", "http")},
						{Path: "/missing", PathType: &prefix, Backend: serviceBackend("does-not-exist", "http")},
					},
				}},
			}},
		},
	}
	if _, err := client.NetworkingV1().Ingresses("shop").Create(ctx, ingress, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	return &kubeFixture{cp: cp, client: client, ca: ca, gw: startKubeGateway(t, cp.Kubeconfig(), ca, "replica-a")}
}

// netnsBackend is a backend listening inside the test's network namespace.
type netnsBackend struct {
	*backend
	port int
}

func newNetnsBackend(t testing.TB, ns *controlplane.Netns, name string) *netnsBackend {
	t.Helper()
	l, err := ns.Listen("tcp", ns.Addr(0))
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{name: name, paths: make(chan string, 1000)}
	srv := &http.Server{Handler: b.handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return &netnsBackend{backend: b, port: l.Addr().(*net.TCPAddr).Port}
}

// startKubeGateway runs a Portico replica named identity against the API
// server; it stops when the test ends, or earlier with env.cancel.
func startKubeGateway(t testing.TB, kubeconfig string, ca *testCA, identity string) *env {
	t.Helper()
	e := &env{t: t, ca: ca}
	certFile, keyFile := ca.defaultCertificateFiles(t)
	cfg, err := parseConfig([]string{"--kubeconfig", kubeconfig, "--publish-address", "203.0.113.10",
		"--default-cert-file", certFile, "--default-key-file", keyFile,
		"--https-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--nginx-configmap", "ingress-nginx/ingress-nginx-controller"},
		func(k string) string {
			if k == "POD_NAME" {
				return identity
			}
			return ""
		}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	e.run(cfg, slog.New(slog.NewTextHandler(newTestWriter(t), &slog.HandlerOptions{Level: slog.LevelDebug})).With("replica", identity), time.Minute)
	return e
}

func serviceBackend(name, port string) networkingv1.IngressBackend {
	return networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
		Name: name, Port: networkingv1.ServiceBackendPort{Name: port},
	}}
}

func tlsSecret(namespace, name string, certPEM, keyPEM []byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM},
	}
}

func expectBody(c *http.Client, url, wantPrefix string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), wantPrefix) {
		return fmt.Errorf("GET %s: %d %q, want 200 %q", url, resp.StatusCode, body, wantPrefix)
	}
	return nil
}

// eventually retries check until it passes; the deadline is a safety net,
// not a speed assertion.
func eventually(t testing.TB, what string, check func() error) {
	t.Helper()
	testkit.Eventually(t, 30*time.Second, what, check)
}

// BenchmarkConvergence measures, for each change, the time from the API
// server acknowledging an Ingress update to the first request served by the
// new route; it reports the median and p99. Run it with a fixed count:
//
//	go test -run '^$' -bench Convergence -benchtime 100x ./cmd/portico
func BenchmarkConvergence(b *testing.B) {
	f := newKubeFixture(b)
	ctx := context.Background()
	c := f.gw.http1Client()
	eventually(b, "the Ingress route serves", func() error {
		return expectBody(c, "https://app.example.test/api/x", "app GET /api/x")
	})
	prefix := networkingv1.PathTypePrefix
	var took []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		path := fmt.Sprintf("/v%d", i)
		ing, err := f.client.NetworkingV1().Ingresses("shop").Get(ctx, "app", metav1.GetOptions{})
		if err != nil {
			b.Fatal(err)
		}
		ing.Spec.Rules[0].HTTP.Paths[0] = networkingv1.HTTPIngressPath{Path: path, PathType: &prefix, Backend: serviceBackend("app", "http")}
		if _, err := f.client.NetworkingV1().Ingresses("shop").Update(ctx, ing, metav1.UpdateOptions{}); err != nil {
			b.Fatal(err)
		}
		acked := time.Now()
		url, want := "https://app.example.test"+path+"/x", "app GET "+path+"/x"
		for expectBody(c, url, want) != nil {
			if time.Since(acked) > 30*time.Second {
				b.Fatalf("change %d not served after 30s", i)
			}
			time.Sleep(time.Millisecond)
		}
		took = append(took, time.Since(acked))
	}
	b.StopTimer()
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "ms-p50")
	b.ReportMetric(float64(took[(len(took)*99)/100].Microseconds())/1000, "ms-p99")
}

// TestLeaderHandover runs two replicas against one API server: both serve
// traffic, the Lease holder writes status, and when it stops the other one
// takes over status writes.
func TestLeaderHandover(t *testing.T) {
	f := newKubeFixture(t)
	ctx := context.Background()
	b := startKubeGateway(t, f.cp.Kubeconfig(), f.ca, "replica-b")
	holder := func(want string) func() error {
		return func() error {
			lease, err := f.client.CoordinationV1().Leases("default").Get(ctx, "portico-status", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if got := lease.Spec.HolderIdentity; got == nil || *got != want {
				return fmt.Errorf("lease held by %v", got)
			}
			return nil
		}
	}
	eventually(t, "replica-a leads", holder("replica-a"))
	for _, e := range []*env{f.gw, b} {
		eventually(t, "both replicas serve", func() error {
			return expectBody(e.http1Client(), "https://app.example.test/api/both", "app GET /api/both")
		})
	}

	f.gw.cancel()
	<-f.gw.stopped
	eventually(t, "replica-b takes the Lease", holder("replica-b"))

	class, prefix := "portico", networkingv1.PathTypePrefix
	second := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "second"},
		Spec: networkingv1.IngressSpec{
			IngressClassName: &class,
			Rules: []networkingv1.IngressRule{{Host: "second.example.test", IngressRuleValue: networkingv1.IngressRuleValue{
				HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{
					{Path: "/", PathType: &prefix, Backend: serviceBackend("app", "http")},
				}},
			}}},
		},
	}
	if _, err := f.client.NetworkingV1().Ingresses("shop").Create(ctx, second, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the new leader writes status", func() error {
		got, err := f.client.NetworkingV1().Ingresses("shop").Get(ctx, "second", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if lb := got.Status.LoadBalancer.Ingress; len(lb) != 1 || lb[0].IP != "203.0.113.10" {
			return fmt.Errorf("status %v", lb)
		}
		return nil
	})
}
