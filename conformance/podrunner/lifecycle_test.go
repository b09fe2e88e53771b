package podrunner

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"portico.dev/portico/hack/controlplane"
)

// helperEnv makes the test binary, started by the runner as a container,
// run helperMain instead of the tests.
const helperEnv = "PODRUNNER_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		helperMain(os.Args[1:])
		return
	}
	os.Exit(m.Run())
}

// helperMain is a container for the lifecycle test: it serves on :8080
// /readyz (failing until POST /ready, and again after SIGTERM), /whoami
// (who the API server says the kubeconfig named by --kubeconfig=
// authenticates as), and on SIGTERM writes "terminated" in its working
// directory after a short drain, then exits.
func helperMain(args []string) {
	var kubeconfig string
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--kubeconfig="); ok {
			kubeconfig = v
		}
	}
	var ready, draining atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() || draining.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("POST /ready", func(w http.ResponseWriter, r *http.Request) {
		ready.Store(r.URL.Query().Get("v") != "false")
	})
	mux.HandleFunc("/whoami", func(w http.ResponseWriter, r *http.Request) {
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err == nil {
			var c *kubernetes.Clientset
			if c, err = kubernetes.NewForConfig(cfg); err == nil {
				var rev *authenticationv1.SelfSubjectReview
				rev, err = c.AuthenticationV1().SelfSubjectReviews().Create(r.Context(), &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
				if err == nil {
					io.WriteString(w, rev.Status.UserInfo.Username+" "+os.Getenv("KUBERNETES_SERVICE_HOST"))
					return
				}
			}
		}
		http.Error(w, err.Error(), http.StatusInternalServerError)
	})
	srv := &http.Server{Addr: ":8080", Handler: mux}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	go func() {
		<-term
		draining.Store(true)
		time.Sleep(2 * time.Second)
		os.WriteFile("terminated", []byte("ok"), 0o644)
		srv.Close()
	}()
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func TestRewriteArg(t *testing.T) {
	mounts := []volumeMount{{mountPath: serviceAccountMountPath, hostPath: "/w/sa"}}
	for in, want := range map[string]string{
		"--kubeconfig=" + serviceAccountMountPath + "/kubeconfig": "--kubeconfig=/w/sa/kubeconfig",
		serviceAccountMountPath + "/token":                        "/w/sa/token",
		"--log-format=json":                                       "--log-format=json",
		"--x=/var/run/secrets/kubernetes.io/other":                "--x=/var/run/secrets/kubernetes.io/other",
	} {
		if got := rewriteArg(in, mounts); got != want {
			t.Errorf("rewriteArg(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestProbeURL(t *testing.T) {
	c := &corev1.Container{Ports: []corev1.ContainerPort{{Name: "admin", ContainerPort: 9090}}}
	for _, tc := range []struct {
		get  corev1.HTTPGetAction
		want string
	}{
		{corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromString("admin")}, "http://10.250.3.2:9090/readyz"},
		{corev1.HTTPGetAction{Path: "healthz", Port: intstr.FromInt32(8080), Scheme: corev1.URISchemeHTTPS}, "https://10.250.3.2:8080/healthz"},
	} {
		got, err := probeURL(c, &tc.get, "10.250.3.2")
		if err != nil || got != tc.want {
			t.Errorf("probeURL(%+v) = %q, %v; want %q", tc.get, got, err, tc.want)
		}
	}
	if _, err := probeURL(c, &corev1.HTTPGetAction{Port: intstr.FromString("nope")}, "10.250.3.2"); err == nil {
		t.Error("probe on an undeclared named port accepted")
	}
}

func TestGracePeriod(t *testing.T) {
	obj := &corev1.Pod{}
	if g := gracePeriod(obj); g != 30*time.Second {
		t.Errorf("default grace = %s", g)
	}
	obj.Spec.TerminationGracePeriodSeconds = ptr.To[int64](45)
	if g := gracePeriod(obj); g != 45*time.Second {
		t.Errorf("spec grace = %s", g)
	}
	obj.DeletionGracePeriodSeconds = ptr.To[int64](0)
	if g := gracePeriod(obj); g != 0 {
		t.Errorf("deletion grace = %s", g)
	}
}

// TestProberCheckStatuses sends a prober's check to a loopback server: an
// answer in 200-399 passes, as a kubelet counts it; 503 fails.
func TestProberCheckStatuses(t *testing.T) {
	var status atomic.Int32
	status.Store(http.StatusServiceUnavailable)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(int(status.Load())) }))
	defer srv.Close()
	host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	var portNum int32
	fmt.Sscan(port, &portNum)
	c := &corev1.Container{ReadinessProbe: &corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromInt32(portNum)}},
	}}
	pr, err := newProber(c, host)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	step := func() bool { return pr.check(ctx) }
	if step() {
		t.Fatal("503 counted as success")
	}
	status.Store(http.StatusFound)
	if !step() {
		t.Fatal("302 counted as failure (a kubelet takes 200-399)")
	}
	status.Store(http.StatusOK)
	if !step() {
		t.Fatal("200 counted as failure")
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// TestRunnerProbesAPIAccessAndGracefulTermination runs the test binary as
// a container: Ready follows its httpGet readiness probe both ways, its
// --kubeconfig under the service-account mountPath reaches the API server
// as the Pod's service account, and deleting the Pod sends SIGTERM and
// waits for the process to finish its drain.
func TestRunnerProbesAPIAccessAndGracefulTermination(t *testing.T) {
	cp := controlplane.StartForTest(t, controlplane.Options{})
	client := cp.Client()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	const image = "example.test/podrunner-helper"
	workDir := t.TempDir()
	runner, err := New(Config{Client: client, Images: map[string]Image{image: {Binary: self}}, WorkDir: workDir, APIServer: cp.Host()})
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- runner.Run(ctx, ready) }()
	<-ready

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "helper", Namespace: metav1.NamespaceDefault},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptr.To[int64](30),
			Containers: []corev1.Container{{
				Name:  "helper",
				Image: image + ":1",
				Args:  []string{"--kubeconfig=" + serviceAccountMountPath + "/kubeconfig"},
				Env:   []corev1.EnvVar{{Name: helperEnv, Value: "1"}},
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromString("http")}},
					PeriodSeconds:    1,
					FailureThreshold: 1,
				},
			}},
		},
	}
	if _, err := client.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var cur *corev1.Pod
	poll(t, "pod running", 2*time.Minute, func() (bool, error) {
		cur, err = client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		cs := cur.Status.ContainerStatuses
		return len(cs) == 1 && cs[0].State.Running != nil && cur.Status.PodIP != "", nil
	})
	httpc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	base := "http://" + net.JoinHostPort(cur.Status.PodIP, "8080")
	// Listening, but the probe fails: a few probe periods later the Pod is
	// still not Ready.
	poll(t, "helper listening", time.Minute, func() (bool, error) {
		resp, err := httpc.Get(base + "/readyz")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable, nil
	})
	time.Sleep(3 * time.Second)
	if cur, err = client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{}); err != nil || podReady(cur) {
		t.Fatalf("pod Ready while its readiness probe fails (err %v)", err)
	}

	resp, err := httpc.Get(base + "/whoami")
	if err != nil {
		t.Fatal(err)
	}
	who, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := "system:serviceaccount:default:default 127.0.0.1"; resp.StatusCode != http.StatusOK || string(who) != want {
		t.Fatalf("whoami through the pod's kubeconfig = %d %q, want %q", resp.StatusCode, who, want)
	}

	setReady := func(v bool) {
		t.Helper()
		resp, err := httpc.Post(fmt.Sprintf("%s/ready?v=%t", base, v), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	setReady(true)
	poll(t, "pod ready once the probe passes", time.Minute, func() (bool, error) {
		cur, err = client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		return err == nil && podReady(cur), err
	})
	setReady(false)
	poll(t, "pod not ready once the probe fails", time.Minute, func() (bool, error) {
		cur, err = client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		return err == nil && !podReady(cur), err
	})

	podDir := runner.podDir(cur)
	if err := client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "pod deleted", 2*time.Minute, func() (bool, error) {
		_, err := client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
	// Written after the helper's drain, before it exits: the runner waited
	// for the process rather than killing it with the namespace.
	if b, err := os.ReadFile(filepath.Join(podDir, "terminated")); err != nil || string(b) != "ok" {
		t.Fatalf("helper did not finish its SIGTERM drain: %q, %v", b, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("runner: %v", err)
	}
}

// TestTerminateKillsAfterGrace: a container that ignores SIGTERM is killed
// once the grace period is over, so a deleted Pod always goes.
func TestTerminateKillsAfterGrace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces")
	}
	n := controlplane.NetnsForTest(t)
	// The file says the trap is set: a SIGTERM before it would end the
	// shell at once.
	trapped := filepath.Join(t.TempDir(), "trapped")
	proc, err := n.Start(n.Command("sh", "-c", `trap "" TERM; touch "$0"; while :; do sleep 1; done`, trapped), "")
	if err != nil {
		t.Fatal(err)
	}
	poll(t, "SIGTERM trapped", time.Minute, func() (bool, error) {
		select {
		case <-proc.Done():
			return false, fmt.Errorf("process ended: %v", proc.Err())
		default:
		}
		_, err := os.Stat(trapped)
		return err == nil, nil
	})
	p := &pod{netns: n, containers: []*container{{name: "stubborn", proc: proc}}, stopped: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		p.terminate(time.Second)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("terminate did not return: the process survived the grace period")
	}
	select {
	case <-proc.Done():
	default:
		t.Fatal("terminate returned with the process still running")
	}
}
