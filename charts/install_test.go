package charts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/kube"
	releasev1 "helm.sh/helm/v4/pkg/release/v1"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"portico.dev/portico/conformance/podrunner"
	"portico.dev/portico/hack/controlplane"
)

// The chart's default image repository, mapped by the pod runner to the
// built binary: the install uses the chart's image value unchanged.
const porticoImage = "registry.example.com/portico"

// lbAddress stands in for the address a cloud load balancer would give the
// Service; it is only written into statuses, never dialled.
const lbAddress = "192.0.2.10"

// installBinary is the binary named by env, else bin/<name> in the
// repository (make build, make conformance-tools).
func installBinary(t *testing.T, env, name string) string {
	t.Helper()
	p := os.Getenv(env)
	if p == "" {
		p = filepath.Join("..", "bin", name)
	}
	abs, err := filepath.Abs(p)
	if err == nil {
		_, err = os.Stat(abs)
	}
	if err != nil {
		t.Fatalf("%s (set %s, or build it with make test-install): %v", name, env, err)
	}
	return abs
}

func pollUntil(t *testing.T, what string, timeout time.Duration, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %s", what, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestInstallOnLocalControlPlane installs the chart with Helm's install
// action into the local control plane, has the loopback pod runner run its
// Pods from the built binary, and drives them as a cluster's load balancer
// would: to the ready Pod IPs of the Service's EndpointSlices, round robin
// (there is no kube-proxy here). Root: the Pods run in network namespaces.
func TestInstallOnLocalControlPlane(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the pod runner creates network namespaces")
	}
	portico := installBinary(t, "PORTICO_BIN", "portico")
	echo := installBinary(t, "PORTICO_ECHO_BASIC", "echo-basic")
	began := time.Now()
	// The chart's fallback is an Endpoints object, which the API server
	// warns about on every read of the uninstall check.
	rest.SetDefaultWarningHandler(rest.NoWarnings{})

	cp := controlplane.StartForTest(t, controlplane.Options{})
	client := cp.Client()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	runner, err := podrunner.New(podrunner.Config{
		Client: client,
		Images: map[string]podrunner.Image{
			porticoImage:             {Binary: portico},
			podrunner.EchoBasicImage: podrunner.EchoBasic(echo),
		},
		WorkDir:   filepath.Join(cp.Dir(), "pods"),
		APIServer: cp.Host(),
		Logger:    slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatal(err)
	}
	// Registered before the runner's cleanup, so it runs after the Pods
	// have stopped and their logs are complete.
	t.Cleanup(func() {
		if t.Failed() {
			dumpPodLogs(t, filepath.Join(cp.Dir(), "pods"))
		}
	})
	runnerReady := make(chan struct{})
	runnerDone := make(chan error, 1)
	go func() { runnerDone <- runner.Run(ctx, runnerReady) }()
	t.Cleanup(func() {
		cancel()
		if err := <-runnerDone; err != nil {
			t.Errorf("pod runner: %v", err)
		}
	})
	select {
	case <-runnerReady:
	case err := <-runnerDone:
		t.Fatalf("pod runner stopped: %v", err)
	}

	legacy := startLegacySite(t)
	backendNS := deployEchoBackend(t, ctx, client)

	const ns = "portico"
	vals := map[string]any{
		"replicaCount": 2,
		"image":        map[string]any{"tag": "test"},
		"fallback": map[string]any{
			"enabled":   true,
			"port":      80,
			"addresses": []any{legacy.ip},
		},
		// The control plane serves no Gateway API CRDs.
		"gatewayClass": map[string]any{"controllerName": ""},
		// The pod runner has no mount namespace for in-cluster
		// configuration's fixed paths; it puts a kubeconfig with the Pod's
		// own token next to them (conformance/podrunner/doc.go).
		"extraArgs": []any{"--kubeconfig=/var/run/secrets/kubernetes.io/serviceaccount/kubeconfig"},
	}
	cfg := helmConfig(t, cp, ns)
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	install := action.NewInstall(cfg)
	install.ReleaseName = releaseName
	install.Namespace = ns
	install.CreateNamespace = true
	install.WaitStrategy = kube.HookOnlyStrategy
	install.Timeout = 2 * time.Minute
	installed, err := install.RunWithContext(ctx, ch, vals)
	if err != nil {
		t.Fatalf("helm install: %v", err)
	}
	rel := installed.(*releasev1.Release)
	t.Logf("helm install: release %s revision %d (%s after start)", rel.Name, rel.Version, time.Since(began).Round(time.Millisecond))

	// Both replicas Ready: the chart's readiness probe (/readyz on the
	// admin port) is the only way the runner reports them Ready.
	selector := "app.kubernetes.io/name=portico,app.kubernetes.io/instance=" + releaseName
	var pods []corev1.Pod
	pollUntil(t, "both replicas ready", 3*time.Minute, func() (bool, error) {
		list, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false, err
		}
		pods = list.Items
		ready := 0
		for i := range pods {
			if isReady(&pods[i]) {
				ready++
			}
		}
		return len(pods) == 2 && ready == 2, nil
	})
	for _, p := range pods {
		if p.Spec.Containers[0].ReadinessProbe == nil || p.Spec.Containers[0].ReadinessProbe.HTTPGet == nil {
			t.Fatalf("pod %s has no httpGet readiness probe: the chart changed", p.Name)
		}
	}
	t.Logf("both replicas ready through /readyz (%s after start)", time.Since(began).Round(time.Millisecond))

	// The cloud's load-balancer controller, played by the test: Portico
	// publishes this address on the Ingresses it serves.
	svc, err := client.CoreV1().Services(ns).Get(ctx, "portico", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: lbAddress}}
	if _, err := client.CoreV1().Services(ns).UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	lb := newEndpointLB(ctx, client, ns, "portico")
	pollUntil(t, "EndpointSlices list both replicas ready", time.Minute, func() (bool, error) {
		return len(lb.ready()) == 2, nil
	})
	httpc := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
		// Requests go to a Pod address with the Ingress's host, as a
		// load balancer forwards them; a redirect would be a failure.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	for _, ip := range lb.ready() {
		pollUntil(t, "the Ingress served by "+ip, time.Minute, func() (bool, error) {
			code, body, err := get(ctx, httpc, ip, "app.example.test", "/hello")
			return err == nil && code == http.StatusOK && echoed(body).Namespace == backendNS, nil
		})
		code, body, err := get(ctx, httpc, ip, "old.example.test", "/page")
		if err != nil || code != http.StatusOK || body != "legacy /page" {
			t.Fatalf("unrouted host through %s: %d %q %v, want the legacy site", ip, code, body, err)
		}
	}
	if legacy.hits.Load() < 2 {
		t.Fatalf("legacy site saw %d requests, want one per replica", legacy.hits.Load())
	}

	// The elected replica writes the status.
	pollUntil(t, "Ingress status written", time.Minute, func() (bool, error) {
		ing, err := client.NetworkingV1().Ingresses(backendNS).Get(ctx, "app", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		lbs := ing.Status.LoadBalancer.Ingress
		return len(lbs) == 1 && lbs[0].IP == lbAddress, nil
	})
	lease, err := client.CoordinationV1().Leases(ns).Get(ctx, "portico-status", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("status leader Lease: %v", err)
	}
	if !slices.ContainsFunc(pods, func(p corev1.Pod) bool { return holder(lease) == p.Name }) {
		t.Fatalf("Lease holder %q is not one of the replicas", holder(lease))
	}
	t.Logf("Ingress status %s written; leader %s", lbAddress, holder(lease))

	// helm upgrade with a new Pod annotation rolls both replicas while a
	// load balancer's worth of requests goes on.
	oldPods := map[string]bool{}
	for _, p := range pods {
		oldPods[p.Name] = true
	}
	loop := startRequestLoop(ctx, httpc, lb, 50000, 5*time.Minute)
	time.Sleep(500 * time.Millisecond)
	vals["podAnnotations"] = map[string]any{"portico.dev/rollout": "2"}
	upgrade := action.NewUpgrade(cfg)
	upgrade.Namespace = ns
	upgrade.WaitStrategy = kube.HookOnlyStrategy
	upgrade.Timeout = 2 * time.Minute
	rollStart := time.Now()
	if _, err := upgrade.RunWithContext(ctx, releaseName, ch, vals); err != nil {
		loop.stop()
		t.Fatalf("helm upgrade: %v", err)
	}
	var rollErr error
	rolled := func() (bool, error) {
		dep, err := client.AppsV1().Deployments(ns).Get(ctx, "portico", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if !deploymentRolled(dep) {
			return false, nil
		}
		list, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false, err
		}
		for _, p := range list.Items {
			if oldPods[p.Name] || !isReady(&p) {
				return false, nil
			}
		}
		pods = list.Items
		return len(list.Items) == 2 && len(lb.ready()) == 2, nil
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		ok, err := rolled()
		if ok || err != nil {
			rollErr = err
			break
		}
		if time.Now().After(deadline) {
			rollErr = errors.New("roll not finished within 5m")
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	rollTime := time.Since(rollStart)
	// A little traffic on the new replicas alone before the count.
	time.Sleep(time.Second)
	stats := loop.stop()
	if rollErr != nil {
		t.Fatalf("rolling update: %v (requests %d, failed %d: %v)", rollErr, stats.sent, stats.failed, stats.samples)
	}
	t.Logf("helm upgrade rolled both replicas in %s; the request loop sent %d requests, %d failed, to %d distinct Pod addresses",
		rollTime.Round(time.Millisecond), stats.sent, stats.failed, len(stats.seen))
	if stats.failed != 0 {
		t.Fatalf("%d of %d requests failed during the roll, e.g. %v", stats.failed, stats.sent, stats.samples)
	}
	for _, p := range pods {
		if p.Annotations["portico.dev/rollout"] != "2" {
			t.Fatalf("pod %s lacks the upgraded annotation", p.Name)
		}
		if !stats.seen[p.Status.PodIP] {
			t.Fatalf("the loop sent nothing to the new replica %s (%s)", p.Name, p.Status.PodIP)
		}
	}

	// helm uninstall removes every object of the release, and the release
	// record itself; the Pods go with their Deployment.
	manifest := rel.Manifest
	if cur, err := action.NewGet(cfg).Run(releaseName); err == nil {
		manifest = cur.(*releasev1.Release).Manifest
	}
	created, err := cfg.KubeClient.Build(bytes.NewBufferString(manifest), false)
	if err != nil {
		t.Fatal(err)
	}
	uninstall := action.NewUninstall(cfg)
	uninstall.WaitStrategy = kube.HookOnlyStrategy
	uninstall.Timeout = 2 * time.Minute
	if _, err := uninstall.Run(releaseName); err != nil {
		t.Fatalf("helm uninstall: %v", err)
	}
	pollUntil(t, "every object of the release deleted", 3*time.Minute, func() (bool, error) {
		for _, info := range created {
			err := info.Get()
			if err == nil {
				return false, nil
			}
			if !apierrors.IsNotFound(err) {
				return false, err
			}
		}
		list, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		return err == nil && len(list.Items) == 0, err
	})
	secrets, err := client.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{LabelSelector: "owner=helm,name=" + releaseName})
	if err != nil || len(secrets.Items) != 0 {
		t.Fatalf("release records left after uninstall: %d, %v", len(secrets.Items), err)
	}
	t.Logf("helm uninstall removed %d objects (%s); whole test %s", len(created), kinds(created), time.Since(began).Round(time.Millisecond))
}

// helmConfig is Helm's action configuration for the control plane's
// kubeconfig, with releases stored as Secrets in ns as the CLI does.
func helmConfig(t *testing.T, cp *controlplane.ControlPlane, ns string) *action.Configuration {
	t.Helper()
	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig = ptr.To(cp.Kubeconfig())
	flags.Namespace = ptr.To(ns)
	cfg := action.NewConfiguration()
	cfg.SetLogger(slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})).Handler())
	if err := cfg.Init(flags, ns, "secret"); err != nil {
		t.Fatal(err)
	}
	return cfg
}

type legacySite struct {
	ip   string
	hits atomic.Int64
}

// startLegacySite serves the legacy fallback from a network namespace of
// its own (the API server rejects loopback Endpoints), routed to the Pods.
func startLegacySite(t *testing.T) *legacySite {
	t.Helper()
	n := controlplane.NetnsForTest(t)
	if err := podrunner.RoutePodNetwork(n); err != nil {
		t.Fatal(err)
	}
	l, err := n.Listen("tcp", n.Addr(80))
	if err != nil {
		t.Fatal(err)
	}
	site := &legacySite{ip: n.NSIP.String()}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		site.hits.Add(1)
		io.WriteString(w, "legacy "+r.URL.Path)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return site
}

// deployEchoBackend creates the backend the Ingress routes to: echo-basic
// run by the pod runner behind a Service, and the Ingress of class
// portico for app.example.test.
func deployEchoBackend(t *testing.T, ctx context.Context, client kubernetes.Interface) string {
	t.Helper()
	const ns = "apps"
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "echo"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "echo", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name:  "echo",
					Image: podrunner.EchoBasicImage + ":v0.1.0",
					Env: []corev1.EnvVar{
						{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
						{Name: "NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
					},
					Ports: []corev1.ContainerPort{{ContainerPort: 3000}},
				}}},
			},
		},
	}
	if _, err := client.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "echo", Namespace: ns},
		Spec: corev1.ServiceSpec{
			Selector: labels,
			Ports:    []corev1.ServicePort{{Name: "http", Port: 8080, TargetPort: intstr.FromInt32(3000)}},
		},
	}
	if _, err := client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	prefix := networkingv1.PathTypePrefix
	ing := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns},
		Spec: networkingv1.IngressSpec{
			IngressClassName: ptr.To("portico"),
			Rules: []networkingv1.IngressRule{{
				Host: "app.example.test",
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
					Paths: []networkingv1.HTTPIngressPath{{
						Path:     "/",
						PathType: &prefix,
						Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
							Name: "echo", Port: networkingv1.ServiceBackendPort{Number: 8080},
						}},
					}},
				}},
			}},
		},
	}
	if _, err := client.NetworkingV1().Ingresses(ns).Create(ctx, ing, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return ns
}

// endpointLB is what a load balancer in front of the Service does without
// kube-proxy: it follows the Service's EndpointSlices (listed every 100ms
// until ctx ends) and picks ready addresses round robin.
type endpointLB struct {
	addrs atomic.Pointer[[]string]
	next  atomic.Uint64
}

func newEndpointLB(ctx context.Context, client kubernetes.Interface, ns, service string) *endpointLB {
	lb := &endpointLB{}
	lb.addrs.Store(&[]string{})
	refresh := func() {
		slices, err := client.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + service})
		if err != nil {
			return
		}
		var ready []string
		for _, s := range slices.Items {
			for _, ep := range s.Endpoints {
				if ep.Conditions.Ready != nil && *ep.Conditions.Ready && len(ep.Addresses) > 0 {
					ready = append(ready, ep.Addresses[0])
				}
			}
		}
		lb.addrs.Store(&ready)
	}
	refresh()
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				refresh()
			}
		}
	}()
	return lb
}

func (lb *endpointLB) ready() []string { return *lb.addrs.Load() }

// pick returns the next ready address, or "" when none is.
func (lb *endpointLB) pick() string {
	addrs := lb.ready()
	if len(addrs) == 0 {
		return ""
	}
	return addrs[lb.next.Add(1)%uint64(len(addrs))]
}

// get sends one request for host to the Pod address ip on the chart's
// HTTP container port. Only 10.250.0.0/16 addresses are dialled.
func get(ctx context.Context, c *http.Client, ip, host, path string) (int, string, error) {
	if !strings.HasPrefix(ip, "10.250.") {
		return 0, "", fmt.Errorf("address %s is outside the test's network namespaces", ip)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(ip, "8080")+path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(b), err
}

// echoed decodes what echo-basic answers: the request as it saw it.
func echoed(body string) (e struct {
	Path      string `json:"path"`
	Namespace string `json:"namespace"`
	Pod       string `json:"pod"`
}) {
	_ = json.Unmarshal([]byte(body), &e)
	return e
}

type loopStats struct {
	sent, failed int
	seen         map[string]bool // Pod addresses the loop sent to
	samples      []string
}

type requestLoop struct {
	done   chan struct{}
	result chan loopStats
}

// startRequestLoop sends requests one after another, each on a new
// connection to the next ready Pod address, alternating the Ingress's host
// (answered by the echo backend) with an unrouted one (the legacy site),
// until stop, max requests, or limit.
func startRequestLoop(ctx context.Context, c *http.Client, lb *endpointLB, max int, limit time.Duration) *requestLoop {
	l := &requestLoop{done: make(chan struct{}), result: make(chan loopStats, 1)}
	go func() {
		st := loopStats{seen: map[string]bool{}}
		deadline := time.Now().Add(limit)
		for st.sent < max && time.Now().Before(deadline) {
			select {
			case <-l.done:
				l.result <- st
				return
			default:
			}
			ip := lb.pick()
			st.sent++
			fail := func(msg string) {
				st.failed++
				if len(st.samples) < 5 {
					st.samples = append(st.samples, msg)
				}
			}
			if ip == "" {
				fail("no ready endpoint")
				time.Sleep(10 * time.Millisecond)
				continue
			}
			st.seen[ip] = true
			host := "app.example.test"
			if st.sent%2 == 0 {
				host = "old.example.test"
			}
			code, body, err := get(ctx, c, ip, host, "/loop")
			answered := echoed(body).Path == "/loop"
			if host != "app.example.test" {
				answered = body == "legacy /loop"
			}
			switch {
			case err != nil:
				fail(fmt.Sprintf("%s %s: %v", ip, host, err))
			case code != http.StatusOK || !answered:
				fail(fmt.Sprintf("%s %s: %d %.80q", ip, host, code, body))
			}
		}
		<-l.done
		l.result <- st
	}()
	return l
}

func (l *requestLoop) stop() loopStats {
	close(l.done)
	return <-l.result
}

func isReady(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func deploymentRolled(d *appsv1.Deployment) bool {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	st := d.Status
	return st.ObservedGeneration >= d.Generation && st.UpdatedReplicas == want &&
		st.Replicas == want && st.ReadyReplicas == want && st.AvailableReplicas == want
}

func holder(l *coordinationv1.Lease) string {
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

func kinds(list kube.ResourceList) string {
	var out []string
	for _, info := range list {
		out = append(out, info.Mapping.GroupVersionKind.Kind+"/"+info.Name)
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// dumpPodLogs prints the end of every container log the runner wrote.
func dumpPodLogs(t *testing.T, dir string) {
	logs, _ := filepath.Glob(filepath.Join(dir, "*", "*.log"))
	for _, path := range logs {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		t.Logf("--- %s (last %d lines)\n%s", path, len(lines), strings.Join(lines, "\n"))
	}
}
