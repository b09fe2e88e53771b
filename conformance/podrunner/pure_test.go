package podrunner

import (
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"portico.dev/portico/hack/controlplane"
)

func TestImageRepository(t *testing.T) {
	for _, tc := range []struct{ ref, want string }{
		{"registry.k8s.io/gateway-api/conformance/echo-basic:v0.1.0", "registry.k8s.io/gateway-api/conformance/echo-basic"},
		{"registry.k8s.io/gateway-api/conformance/echo-basic", "registry.k8s.io/gateway-api/conformance/echo-basic"},
		{"localhost:5000/echo:1@sha256:abc", "localhost:5000/echo"},
		{"localhost:5000/echo", "localhost:5000/echo"},
	} {
		if got := imageRepository(tc.ref); got != tc.want {
			t.Errorf("imageRepository(%q) = %q, want %q", tc.ref, got, tc.want)
		}
	}
}

func TestRewriteMountPath(t *testing.T) {
	mounts := []volumeMount{{mountPath: "/etc/secret-volume", hostPath: "/work/pod/volumes/secret-volume"}}
	for _, tc := range []struct{ value, want string }{
		{"/etc/secret-volume/crt", "/work/pod/volumes/secret-volume/crt"},
		{"/etc/secret-volume", "/work/pod/volumes/secret-volume"},
		{"/etc/secret-volume-other/crt", "/etc/secret-volume-other/crt"},
		{"1", "1"},
	} {
		if got := rewriteMountPath(tc.value, mounts); got != tc.want {
			t.Errorf("rewriteMountPath(%q) = %q, want %q", tc.value, got, tc.want)
		}
	}
}

func TestFieldValue(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Name: "p", Namespace: "n", UID: "u",
		Labels:      map[string]string{"app": "echo"},
		Annotations: map[string]string{"a/b": "c"},
	}}
	ns := &controlplane.Netns{NSIP: netip.MustParseAddr("10.250.7.2"), HostIP: netip.MustParseAddr("10.250.7.1")}
	for _, tc := range []struct{ path, want string }{
		{"metadata.name", "p"},
		{"metadata.namespace", "n"},
		{"metadata.uid", "u"},
		{"metadata.labels['app']", "echo"},
		{"metadata.annotations['a/b']", "c"},
		{"spec.nodeName", "node"},
		{"status.podIP", "10.250.7.2"},
		{"status.hostIP", "10.250.7.1"},
	} {
		got, err := fieldValue(pod, tc.path, "node", ns)
		if err != nil || got != tc.want {
			t.Errorf("fieldValue(%q) = %q, %v; want %q", tc.path, got, err, tc.want)
		}
	}
	if _, err := fieldValue(pod, "status.phase", "node", ns); err == nil {
		t.Error("fieldValue(status.phase): want an unsupported-field error")
	}
}

func TestReadyPorts(t *testing.T) {
	img := EchoBasic("/bin/echo-basic")
	for _, tc := range []struct {
		name  string
		ports []corev1.ContainerPort
		env   []string
		want  []int
	}{
		{"default port", nil, nil, []int{3000}},
		{"declared TCP ports", []corev1.ContainerPort{{ContainerPort: 8080}, {ContainerPort: 9090, Protocol: corev1.ProtocolTCP}}, nil, []int{8080, 9090}},
		{"declared UDP port only", []corev1.ContainerPort{{ContainerPort: 8080, Protocol: corev1.ProtocolUDP}}, nil, nil},
		{"UDP mode", nil, []string{"UDP_ECHO_SERVER=1"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := readyPorts(&corev1.Container{Ports: tc.ports}, img, tc.env)
			if !slices.Equal(got, tc.want) {
				t.Errorf("readyPorts = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestFilterLog(t *testing.T) {
	const stored = `2026-01-01T10:00:00.5Z stdout F Starting server
2026-01-01T10:00:02Z stdout F Echoing back request made to /a to client
2026-01-01T10:00:03Z stderr F warning: x y
`
	for _, tc := range []struct {
		name string
		q    logQuery
		want string
	}{
		{"all", logQuery{tailLines: -1}, "Starting server\nEchoing back request made to /a to client\nwarning: x y\n"},
		{"since", logQuery{tailLines: -1, since: time.Date(2026, 1, 1, 10, 0, 1, 0, time.UTC)}, "Echoing back request made to /a to client\nwarning: x y\n"},
		{"tail", logQuery{tailLines: 1}, "warning: x y\n"},
		{"timestamps", logQuery{tailLines: 1, timestamps: true}, "2026-01-01T10:00:03Z warning: x y\n"},
		{"limit", logQuery{tailLines: -1, limitBytes: 8}, "Starting"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(filterLog(strings.NewReader(stored), tc.q)); got != tc.want {
				t.Errorf("filterLog = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestLogWriterRecordsLines(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "log")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	w := &logWriter{mu: &mu, f: f, stream: "stdout"}
	for _, chunk := range []string{"first li", "ne\nsecond line\n", "unfinished"} {
		if _, err := w.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if got := string(filterLog(strings.NewReader(string(b)), logQuery{tailLines: -1})); got != "first line\nsecond line\n" {
		t.Errorf("recorded lines = %q", got)
	}
}
