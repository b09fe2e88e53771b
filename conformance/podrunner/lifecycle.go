package podrunner

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"portico.dev/portico/hack/controlplane"
)

// PodNetworkCIDR holds every network namespace controlplane.NewNetns
// creates.
const PodNetworkCIDR = "10.250.0.0/16"

// serviceAccountMountPath is where a kubelet mounts the kube-api-access
// volume the ServiceAccount admission plugin adds to every Pod.
const serviceAccountMountPath = "/var/run/secrets/kubernetes.io/serviceaccount"

// RoutePodNetwork lets the namespace reach the other namespaces of
// PodNetworkCIDR through the host, as Pods reach each other in a cluster
// (a gateway Pod dialling a backend Pod). Forwarding is enabled on the
// host end of this namespace's veth only, and the route covers the Pod
// network only: nothing leaves 10.250.0.0/16.
func RoutePodNetwork(n *controlplane.Netns) error {
	args := []string{"-n", n.Name, "route", "replace", PodNetworkCIDR, "via", n.HostIP.String()}
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	// Forwarding is decided by the interface a packet arrives on, so each
	// namespace's host end needs it: requests arrive on the client's,
	// replies on the server's.
	return os.WriteFile(filepath.Join("/proc/sys/net/ipv4/conf", n.HostIF, "forwarding"), []byte("1"), 0o644)
}

// forwardAPIServer listens inside the Pod's namespace on the API server's
// own loopback address and copies each connection to the API server on the
// host's loopback, so a client in the Pod uses the control plane's URL and
// certificate unchanged. The namespace closes the listener.
func (p *pod) forwardAPIServer(apiServer string) error {
	u, err := url.Parse(apiServer)
	if err != nil {
		return fmt.Errorf("APIServer: %w", err)
	}
	l, err := p.netns.Listen("tcp", u.Host)
	if err != nil {
		return fmt.Errorf("API server forward: %w", err)
	}
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			go p.proxyAPIConn(in, u.Host)
		}
	}()
	return nil
}

func (p *pod) proxyAPIConn(in net.Conn, addr string) {
	defer in.Close()
	out, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return
	}
	defer out.Close()
	done := make(chan struct{}, 2)
	go func() { io.Copy(out, in); done <- struct{}{} }()
	go func() { io.Copy(in, out); done <- struct{}{} }()
	// Either side ending, or the Pod stopping, ends both: a watch the
	// client no longer reads must not keep the copy alive.
	select {
	case <-done:
	case <-p.stopped:
	}
}

// apiEnv is what a kubelet sets for the kubernetes Service, pointing at
// the forward.
func apiEnv(apiServer string) []string {
	u, err := url.Parse(apiServer)
	if err != nil || apiServer == "" {
		return nil
	}
	return []string{"KUBERNETES_SERVICE_HOST=" + u.Hostname(), "KUBERNETES_SERVICE_PORT=" + u.Port()}
}

// writeKubeconfig adds a kubeconfig to each service-account volume of the
// Pod: with no mount namespace, client-go's in-cluster configuration
// cannot find the token at its fixed path, so a Pod points its client at
// serviceAccountMountPath/kubeconfig instead (the path is rewritten like
// any other). It authenticates with the Pod's own bound token, so the
// Pod's RBAC applies.
func writeKubeconfig(apiServer string, mounts map[string][]volumeMount) error {
	seen := map[string]bool{}
	for _, ms := range mounts {
		for _, m := range ms {
			if m.mountPath != serviceAccountMountPath || seen[m.hostPath] {
				continue
			}
			seen[m.hostPath] = true
			cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: pod
  user:
    tokenFile: %s
contexts:
- name: pod
  context: {cluster: local, user: pod}
current-context: pod
`, apiServer, filepath.Join(m.hostPath, "ca.crt"), filepath.Join(m.hostPath, "token"))
			if err := os.WriteFile(filepath.Join(m.hostPath, "kubeconfig"), []byte(cfg), 0o600); err != nil {
				return err
			}
		}
	}
	return nil
}

// rewriteArg is rewriteMountPath for a container argument, which may also
// be a --flag=path.
func rewriteArg(arg string, mounts []volumeMount) string {
	if v := rewriteMountPath(arg, mounts); v != arg {
		return v
	}
	if k, v, ok := strings.Cut(arg, "="); ok {
		return k + "=" + rewriteMountPath(v, mounts)
	}
	return arg
}

// probeDefaults fills what the API server leaves zero in a probe with a
// kubelet's defaults.
func probeDefaults(pr corev1.Probe) corev1.Probe {
	if pr.PeriodSeconds <= 0 {
		pr.PeriodSeconds = 10
	}
	if pr.TimeoutSeconds <= 0 {
		pr.TimeoutSeconds = 1
	}
	if pr.SuccessThreshold <= 0 {
		pr.SuccessThreshold = 1
	}
	if pr.FailureThreshold <= 0 {
		pr.FailureThreshold = 3
	}
	return pr
}

// probeURL is where an httpGet probe of c is sent: the Pod IP (or the
// probe's host) and the port, by number or by the container port's name.
func probeURL(c *corev1.Container, get *corev1.HTTPGetAction, podIP string) (string, error) {
	port := get.Port.IntValue()
	if get.Port.Type == intstr.String {
		port = 0
		for _, cp := range c.Ports {
			if cp.Name == get.Port.StrVal {
				port = int(cp.ContainerPort)
			}
		}
	}
	if port <= 0 {
		return "", fmt.Errorf("probe port %q: no such container port", get.Port.String())
	}
	host := get.Host
	if host == "" {
		host = podIP
	}
	scheme := "http"
	if get.Scheme == corev1.URISchemeHTTPS {
		scheme = "https"
	}
	path := get.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	return scheme + "://" + net.JoinHostPort(host, strconv.Itoa(port)) + path, nil
}

// prober runs one container's httpGet readiness probe, as a kubelet does:
// every periodSeconds after initialDelaySeconds, Ready after
// successThreshold answers in 200-399, not Ready after failureThreshold
// failures (another status, a timeout, a refused connection). It keeps
// probing while the Pod terminates, so a Pod that fails its probe on
// SIGTERM leaves its Service's endpoints as it would in a cluster.
type prober struct {
	probe  corev1.Probe
	url    string
	header http.Header
	client *http.Client

	mu sync.Mutex
	ok bool
}

func newProber(c *corev1.Container, podIP string) (*prober, error) {
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil {
		return nil, nil
	}
	pr := probeDefaults(*c.ReadinessProbe)
	u, err := probeURL(c, pr.HTTPGet, podIP)
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	for _, hh := range pr.HTTPGet.HTTPHeaders {
		h.Add(hh.Name, hh.Value)
	}
	h.Set("User-Agent", "kube-probe/podrunner")
	return &prober{
		probe:  pr,
		url:    u,
		header: h,
		client: &http.Client{
			Timeout: time.Duration(pr.TimeoutSeconds) * time.Second,
			Transport: &http.Transport{
				Proxy:             nil,
				DisableKeepAlives: true,
				// A kubelet does not verify the serving certificate either.
				TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
			},
			// Like a kubelet: a redirect is an answer, not followed.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

func (pr *prober) ready() bool {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return pr.ok
}

func (pr *prober) set(ok bool) {
	pr.mu.Lock()
	pr.ok = ok
	pr.mu.Unlock()
}

// check sends one probe.
func (pr *prober) check(ctx context.Context) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, pr.url, nil)
	if err != nil {
		return false
	}
	req.Header = pr.header.Clone()
	resp, err := pr.client.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 10<<10))
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 400
}

// run probes until the Pod stops or the process exits, calling changed
// each time the result flips.
func (pr *prober) run(ctx context.Context, stopped <-chan struct{}, exited <-chan struct{}, changed func()) {
	wait := time.Duration(pr.probe.InitialDelaySeconds) * time.Second
	period := time.Duration(pr.probe.PeriodSeconds) * time.Second
	var successes, failures int32
	for {
		select {
		case <-ctx.Done():
			return
		case <-stopped:
			return
		case <-exited:
			pr.set(false)
			return
		case <-time.After(wait):
		}
		wait = period
		if pr.check(ctx) {
			successes, failures = successes+1, 0
		} else {
			successes, failures = 0, failures+1
		}
		was := pr.ready()
		switch {
		case !was && successes >= pr.probe.SuccessThreshold:
			pr.set(true)
			changed()
		case was && failures >= pr.probe.FailureThreshold:
			pr.set(false)
			changed()
		}
	}
}

// gracePeriod is how long a deleted Pod's processes get between SIGTERM
// and SIGKILL: the deletion's grace period, else the Pod's
// terminationGracePeriodSeconds, else a kubelet's 30 seconds.
func gracePeriod(obj *corev1.Pod) time.Duration {
	switch {
	case obj.DeletionGracePeriodSeconds != nil:
		return time.Duration(*obj.DeletionGracePeriodSeconds) * time.Second
	case obj.Spec.TerminationGracePeriodSeconds != nil:
		return time.Duration(*obj.Spec.TerminationGracePeriodSeconds) * time.Second
	}
	return 30 * time.Second
}

// terminate sends SIGTERM to every container and SIGKILL to those still
// running after grace, all containers at once as a kubelet does.
func (p *pod) terminate(grace time.Duration) {
	var wg sync.WaitGroup
	for _, c := range p.containers {
		wg.Go(func() { c.proc.Stop(grace) })
	}
	wg.Wait()
}
