package controlplane

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// serveEnv makes the test binary act as a tiny HTTP backend (used as the
// process started inside a network namespace).
const serveEnv = "PORTICO_CONTROLPLANE_TEST_SERVE"

func TestMain(m *testing.M) {
	if addr := os.Getenv(serveEnv); addr != "" {
		err := http.ListenAndServe(addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "child %s", addr)
		}))
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func TestControlPlane(t *testing.T) {
	began := time.Now()
	cp := StartForTest(t, Options{})
	t.Logf("control plane ready in %s (Start: %s)", time.Since(began).Round(time.Millisecond), cp.StartupTime().Round(time.Millisecond))
	logRSS(t, cp)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := cp.Client()

	if _, err := os.Stat(cp.Kubeconfig()); err != nil {
		t.Fatalf("kubeconfig: %v", err)
	}
	v, err := c.Discovery().ServerVersion()
	if err != nil {
		t.Fatalf("server version: %v", err)
	}
	t.Logf("server version %s", v.GitVersion)

	const ns = "portico-it"
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace: %v", err)
	}

	t.Run("endpointslice controller", func(t *testing.T) {
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "web"},
			Spec: corev1.ServiceSpec{
				Selector: map[string]string{"app": "web"},
				Ports:    []corev1.ServicePort{{Name: "http", Port: 80}},
			},
		}
		if _, err := c.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create service: %v", err)
		}
		// No pods match, so the controller writes one placeholder slice
		// with no endpoints.
		slice := waitSlice(ctx, t, c, ns, "web", "endpointslice-controller.k8s.io")
		if len(slice.Endpoints) != 0 {
			t.Errorf("endpoints = %v, want none", slice.Endpoints)
		}
	})

	t.Run("endpointslice mirroring", func(t *testing.T) {
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "external"},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
		}
		if _, err := c.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create service: %v", err)
		}
		// Endpoints is deprecated in favour of EndpointSlice, but it is
		// exactly what the mirroring controller reads.
		ep := &corev1.Endpoints{
			ObjectMeta: metav1.ObjectMeta{Name: "external"},
			Subsets: []corev1.EndpointSubset{{
				Addresses: []corev1.EndpointAddress{{IP: "10.250.0.10"}},
				Ports:     []corev1.EndpointPort{{Name: "http", Port: 8080, Protocol: "TCP"}},
			}},
		}
		if _, err := c.CoreV1().Endpoints(ns).Create(ctx, ep, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create endpoints: %v", err)
		}
		slice := waitSlice(ctx, t, c, ns, "external", "endpointslicemirroring-controller.k8s.io")
		if len(slice.Endpoints) != 1 || len(slice.Endpoints[0].Addresses) != 1 || slice.Endpoints[0].Addresses[0] != "10.250.0.10" {
			t.Errorf("mirrored endpoints = %+v, want 10.250.0.10", slice.Endpoints)
		}
		if len(slice.Ports) != 1 || slice.Ports[0].Port == nil || *slice.Ports[0].Port != 8080 {
			t.Errorf("mirrored ports = %+v, want 8080", slice.Ports)
		}
	})

	t.Run("loopback endpoints rejected", func(t *testing.T) {
		ep := &corev1.Endpoints{
			ObjectMeta: metav1.ObjectMeta{Name: "loopback"},
			Subsets: []corev1.EndpointSubset{{
				Addresses: []corev1.EndpointAddress{{IP: "127.0.0.1"}},
				Ports:     []corev1.EndpointPort{{Port: 8080, Protocol: "TCP"}},
			}},
		}
		_, err := c.CoreV1().Endpoints(ns).Create(ctx, ep, metav1.CreateOptions{})
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "loopback") {
			t.Fatalf("create loopback endpoints: err = %v, want Invalid (loopback range)", err)
		}
	})

	t.Run("API server restart", func(t *testing.T) {
		stopped := time.Now()
		cp.StopAPIServer()
		t.Logf("API server stopped in %s", time.Since(stopped).Round(time.Millisecond))
		short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
		_, err := c.CoreV1().Namespaces().Get(short, ns, metav1.GetOptions{})
		cancelShort()
		if err == nil {
			t.Fatal("API call succeeded with the API server stopped")
		}
		restarted := time.Now()
		if err := cp.StartAPIServer(ctx); err != nil {
			t.Fatalf("restart API server: %v", err)
		}
		t.Logf("API server ready again in %s", time.Since(restarted).Round(time.Millisecond))
		// Same client, same address: state in etcd survived.
		if _, err := c.CoreV1().Services(ns).Get(ctx, "web", metav1.GetOptions{}); err != nil {
			t.Fatalf("get service after restart: %v", err)
		}
		logRSS(t, cp)
	})
}

func waitSlice(ctx context.Context, t *testing.T, c kubernetes.Interface, ns, svc, managedBy string) *discoveryv1.EndpointSlice {
	t.Helper()
	sel := discoveryv1.LabelServiceName + "=" + svc + "," + discoveryv1.LabelManagedBy + "=" + managedBy
	began := time.Now()
	for {
		list, err := c.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err == nil && len(list.Items) > 0 {
			t.Logf("EndpointSlice %s for %s/%s after %s", list.Items[0].Name, ns, svc, time.Since(began).Round(time.Millisecond))
			return &list.Items[0]
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no EndpointSlice (%s): last error %v", sel, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// logRSS records the resident memory of each component.
func logRSS(t *testing.T, cp *ControlPlane) {
	t.Helper()
	for name, pid := range cp.Processes() {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "VmRSS:") {
				t.Logf("%s (pid %d) RSS %s", name, pid, strings.TrimSpace(strings.TrimPrefix(line, "VmRSS:")))
			}
		}
	}
}

func TestNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv(SkipEnv) == "1" {
			t.Skip("network namespaces need root")
		}
		t.Fatal("network namespaces need root")
	}
	n := NetnsForTest(t)
	t.Logf("namespace %s: host %s, inside %s", n.Name, n.HostIP, n.NSIP)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}

	t.Run("in-process listener", func(t *testing.T) {
		l, err := n.Listen("tcp", n.Addr(0))
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "from %s", r.RemoteAddr)
		})}
		go srv.Serve(l)
		defer srv.Close()
		body := get(t, client, "http://"+l.Addr().String()+"/")
		// The request crossed the veth: it came from the host side.
		if !strings.HasPrefix(body, "from "+n.HostIP.String()+":") {
			t.Errorf("body = %q, want a request from %s", body, n.HostIP)
		}
		// Not reachable on the host's own loopback: the socket is in the namespace.
		_, port, _ := net.SplitHostPort(l.Addr().String())
		if conn, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second); err == nil {
			conn.Close()
			t.Errorf("listener reachable on host loopback port %s", port)
		}
	})

	t.Run("child process", func(t *testing.T) {
		addr := n.Addr(18080)
		cmd := n.Command(os.Args[0])
		cmd.Env = append(os.Environ(), serveEnv+"="+addr)
		p, err := n.Start(cmd, t.TempDir()+"/child.log")
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := client.Get("http://" + addr + "/")
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(b) != "child "+addr {
					t.Errorf("body = %q", b)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("child in namespace not reachable at %s: %v", addr, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		out, err := exec.Command("ip", "netns", "exec", n.Name, "ip", "-4", "-o", "addr", "show", n.NSIF).CombinedOutput()
		if err != nil || !strings.Contains(string(out), n.NSIP.String()+"/30") {
			t.Errorf("ip addr in namespace: %v: %s", err, out)
		}
		p.Stop(5 * time.Second)
	})

	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if out, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(out), n.Name+" ") || strings.Contains(string(out), n.Name+"\n") {
		t.Errorf("namespace %s still listed after Close: %s", n.Name, out)
	}
	if err := exec.Command("ip", "link", "show", n.HostIF).Run(); err == nil {
		t.Errorf("host interface %s still present after Close", n.HostIF)
	}
}

func get(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
