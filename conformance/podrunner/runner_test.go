package podrunner

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"portico.dev/portico/hack/controlplane"
)

const echoImage = EchoBasicImage

// echoBinary is $PORTICO_ECHO_BASIC, else the echo server built from the
// tools module into a temporary directory.
func echoBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PORTICO_ECHO_BASIC"); p != "" {
		return p
	}
	out := filepath.Join(t.TempDir(), "echo-basic")
	cmd := exec.Command("go", "build", "-o", out, "sigs.k8s.io/gateway-api-conformance-images/echo-basic")
	cmd.Dir = filepath.Join("..", "tools", "echo")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build echo-basic: %v\n%s", err, b)
	}
	return out
}

func testImages(bin string) map[string]Image {
	return map[string]Image{echoImage: EchoBasic(bin)}
}

// poll calls cond until it returns true or an error, or until timeout; the
// timeout only bounds the loop, it is not a speed assertion.
func poll(t *testing.T, what string, timeout time.Duration, cond func() (bool, error)) {
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

func TestRunnerServesDeploymentThroughEndpointSlice(t *testing.T) {
	cp := controlplane.StartForTest(t, controlplane.Options{})
	client := cp.Client()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	runner, err := New(Config{Client: client, Images: testImages(echoBinary(t)), WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- runner.Run(ctx, ready) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("runner stopped: %v", err)
	}

	ns := "podrunner-test"
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The Secret arrives after the Deployment, as the suite's do: the Pod
	// waits for it.
	labels := map[string]string{"app": "echo"}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "echo", Namespace: ns},
		Spec: corev1.ServiceSpec{
			Selector: labels,
			Ports:    []corev1.ServicePort{{Port: 8080, TargetPort: intstr.FromInt32(3000)}},
		},
	}
	if _, err := client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "echo", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{
						Name:  "echo",
						Image: echoImage + ":v0.1.0",
						Env: []corev1.EnvVar{
							{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
							{Name: "NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
							{Name: "SERVICE_NAME", Value: "echo"},
						},
						VolumeMounts: []corev1.VolumeMount{{Name: "config", MountPath: "/etc/config"}},
					}},
					Volumes: []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
						SecretName: "echo-config",
						Items:      []corev1.KeyToPath{{Key: "greeting", Path: "greeting.txt"}},
					}}}},
				},
			},
		},
	}
	if _, err := client.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	poll(t, "pod waiting for its secret", 2*time.Minute, func() (bool, error) {
		pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil || len(pods.Items) != 1 {
			return false, err
		}
		pod = pods.Items[0]
		cs := pod.Status.ContainerStatuses
		return len(cs) == 1 && cs[0].State.Waiting != nil && strings.Contains(cs[0].State.Waiting.Message, "echo-config"), nil
	})
	if pod.Spec.NodeName != runner.NodeName() {
		t.Fatalf("pod bound to %q, want %q", pod.Spec.NodeName, runner.NodeName())
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "echo-config", Namespace: ns},
		Data:       map[string][]byte{"greeting": []byte("hello")},
	}
	if _, err := client.CoreV1().Secrets(ns).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	poll(t, "pod ready", 2*time.Minute, func() (bool, error) {
		p, err := client.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		pod = *p
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady {
				return c.Status == corev1.ConditionTrue, nil
			}
		}
		return false, nil
	})
	if !strings.HasPrefix(pod.Status.PodIP, "10.250.") {
		t.Fatalf("pod IP %q is not a network-namespace address", pod.Status.PodIP)
	}
	greeting, err := os.ReadFile(filepath.Join(runner.podDir(&pod), "volumes", "config", "greeting.txt"))
	if err != nil || string(greeting) != "hello" {
		t.Fatalf("secret volume item: %q, %v", greeting, err)
	}

	poll(t, "EndpointSlice lists the pod", 2*time.Minute, func() (bool, error) {
		slices, err := client.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=echo"})
		if err != nil {
			return false, err
		}
		for _, s := range slices.Items {
			for _, ep := range s.Endpoints {
				if len(ep.Addresses) > 0 && ep.Addresses[0] == pod.Status.PodIP && ep.Conditions.Ready != nil && *ep.Conditions.Ready {
					return true, nil
				}
			}
		}
		return false, nil
	})

	resp, err := (&http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}).
		Get(fmt.Sprintf("http://%s:3000/hello", pod.Status.PodIP))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var echo struct {
		Path      string `json:"path"`
		Namespace string `json:"namespace"`
		Pod       string `json:"pod"`
		Service   string `json:"service"`
	}
	if err := json.Unmarshal(body, &echo); err != nil {
		t.Fatalf("echo response %q: %v", body, err)
	}
	if echo.Path != "/hello" || echo.Pod != pod.Name || echo.Namespace != ns || echo.Service != "echo" {
		t.Fatalf("echo response = %+v, want path /hello, pod %s, namespace %s, service echo", echo, pod.Name, ns)
	}

	// The suite's mirror tests read echo logs through the API server from
	// a point in time.
	logs, err := client.CoreV1().Pods(ns).GetLogs(pod.Name, &corev1.PodLogOptions{
		Container: "echo",
		SinceTime: &metav1.Time{Time: time.Now().Add(-time.Minute)},
	}).DoRaw(ctx)
	if err != nil {
		t.Fatalf("pod logs through the API server: %v", err)
	}
	if !strings.Contains(string(logs), "Echoing back request made to /hello to client") {
		t.Fatalf("pod logs lack the echoed request:\n%s", logs)
	}

	netnsName := controlplane.NetnsPrefix + strings.Split(pod.Status.PodIP, ".")[2]
	if _, err := os.Stat("/run/netns/" + netnsName); err != nil {
		t.Fatalf("pod network namespace: %v", err)
	}
	if err := client.AppsV1().Deployments(ns).Delete(ctx, "echo", metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationForeground)}); err != nil {
		t.Fatal(err)
	}
	poll(t, "pod deleted", 2*time.Minute, func() (bool, error) {
		_, err := client.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
	poll(t, "network namespace removed", 30*time.Second, func() (bool, error) {
		_, err := os.Stat("/run/netns/" + netnsName)
		return os.IsNotExist(err), nil
	})

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("runner: %v", err)
	}
}

func TestRunnerStopsEverythingAtExit(t *testing.T) {
	cp := controlplane.StartForTest(t, controlplane.Options{})
	client := cp.Client()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runner, err := New(Config{Client: client, Images: testImages(echoBinary(t)), WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- runner.Run(ctx, ready) }()
	<-ready

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "echo", Namespace: metav1.NamespaceDefault},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "echo", Image: echoImage + ":v0.1.0"}}},
	}
	if _, err := client.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	unknown := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "unknown", Namespace: metav1.NamespaceDefault},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "example.com/not-mapped:1"}}},
	}
	if _, err := client.CoreV1().Pods(unknown.Namespace).Create(ctx, unknown, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	crasher := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "crasher", Namespace: metav1.NamespaceDefault},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "echo", Image: echoImage + ":v0.1.0",
			Env: []corev1.EnvVar{{Name: "HTTP_PORT", Value: "not-a-port"}}}}},
	}
	if _, err := client.CoreV1().Pods(crasher.Namespace).Create(ctx, crasher, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var ip string
	poll(t, "pod running", 2*time.Minute, func() (bool, error) {
		p, err := client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		ip = p.Status.PodIP
		return p.Status.Phase == corev1.PodRunning && ip != "", nil
	})
	poll(t, "unmapped image reported", 2*time.Minute, func() (bool, error) {
		p, err := client.CoreV1().Pods(unknown.Namespace).Get(ctx, unknown.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		cs := p.Status.ContainerStatuses
		return len(cs) == 1 && cs[0].State.Waiting != nil && cs[0].State.Waiting.Reason == "ErrImagePull", nil
	})
	poll(t, "crashing container restarted and not ready", 2*time.Minute, func() (bool, error) {
		p, err := client.CoreV1().Pods(crasher.Namespace).Get(ctx, crasher.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		cs := p.Status.ContainerStatuses
		return len(cs) == 1 && cs[0].RestartCount >= 2 && !cs[0].Ready, nil
	})
	netnsName := controlplane.NetnsPrefix + strings.Split(ip, ".")[2]

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("runner: %v", err)
	}
	if _, err := os.Stat("/run/netns/" + netnsName); !os.IsNotExist(err) {
		t.Fatalf("network namespace %s left behind after Run returned (stat: %v)", netnsName, err)
	}
}
