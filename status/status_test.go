package status

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"

	"portico.dev/portico/snapshot"
)

type lb = networkingv1.IngressLoadBalancerIngress

func ingressWith(name string, status ...lb) *networkingv1.Ingress {
	ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name}}
	ing.Status.LoadBalancer.Ingress = status
	return ing
}

func TestDesiredStatus(t *testing.T) {
	ours := []lb{{IP: "203.0.113.10"}}
	theirs := []lb{{IP: "198.51.100.1"}}
	cases := []struct {
		name       string
		ing        *networkingv1.Ingress
		owned      bool
		ours       []lb
		want       []lb
		wantChange bool
	}{
		{"owned, no status yet", ingressWith("a"), true, ours, ours, true},
		{"owned, already ours", ingressWith("a", ours...), true, ours, ours, false},
		{"owned, another controller's status", ingressWith("a", theirs...), true, ours, ours, true},
		{"no longer owned, still ours", ingressWith("a", ours...), false, ours, nil, true},
		{"not owned, another controller's", ingressWith("a", theirs...), false, ours, theirs, false},
		{"not owned, empty", ingressWith("a"), false, ours, nil, false},
		{"no address known: never clear", ingressWith("a", theirs...), true, nil, theirs, false},
	}
	for _, tc := range cases {
		got, change := desiredStatus(tc.ing, tc.owned, tc.ours)
		if change != tc.wantChange || !equalEntries(got, tc.want) {
			t.Errorf("%s: got %v change %v, want %v change %v", tc.name, got, change, tc.want, tc.wantChange)
		}
	}
}

func TestAddressesResolve(t *testing.T) {
	published := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "portico", Name: "portico"}}
	published.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "203.0.113.10"}, {Hostname: "lb.example.net"}}
	a := Addresses{Fixed: []string{"2001:db8::1", "gw.example.com", "203.0.113.10"}, Service: types.NamespacedName{Namespace: "portico", Name: "portico"}}
	got := a.Resolve([]*corev1.Service{published})
	want := []lb{{Hostname: "gw.example.com"}, {Hostname: "lb.example.net"}, {IP: "2001:db8::1"}, {IP: "203.0.113.10"}}
	if !equalEntries(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestSyncWritesStatusAndEventsOnce(t *testing.T) {
	owned := ingressWith("owned")
	dropped := ingressWith("dropped", lb{IP: "203.0.113.10"})
	client := fake.NewClientset(owned, dropped)
	recorder := record.NewFakeRecorder(10)
	w := &Writer{Client: client, Recorder: recorder, Addresses: Addresses{Fixed: []string{"203.0.113.10"}}}

	objs := snapshot.Objects{Ingresses: []*networkingv1.Ingress{owned, dropped}}
	snap := &snapshot.Snapshot{
		Ingresses: []types.NamespacedName{{Namespace: "shop", Name: "owned"}},
		Problems: []snapshot.Problem{{
			Object: snapshot.ObjectRef{Kind: "Ingress", Namespace: "shop", Name: "owned"}, Severity: snapshot.Warning,
			Reason: "ServiceNotFound", Message: "Service shop/web not found",
		}},
	}
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if err := w.Sync(ctx, objs, snap); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := client.NetworkingV1().Ingresses("shop").Get(ctx, "owned", metav1.GetOptions{})
	if !equalEntries(got.Status.LoadBalancer.Ingress, []lb{{IP: "203.0.113.10"}}) {
		t.Errorf("owned Ingress status %v", got.Status.LoadBalancer.Ingress)
	}
	got, _ = client.NetworkingV1().Ingresses("shop").Get(ctx, "dropped", metav1.GetOptions{})
	if len(got.Status.LoadBalancer.Ingress) != 0 {
		t.Errorf("an Ingress we no longer own keeps our status %v", got.Status.LoadBalancer.Ingress)
	}
	if n := len(recorder.Events); n != 1 {
		t.Fatalf("%d events for one steady problem, want 1", n)
	}
	if e := <-recorder.Events; e != "Warning ServiceNotFound Service shop/web not found" {
		t.Errorf("event %q", e)
	}
}

// TestSyncLeavesIngressStatus: with --update-status=false another
// controller's addresses stay on the Ingresses both serve, and problems
// are still sent as Events.
func TestSyncLeavesIngressStatus(t *testing.T) {
	shared := ingressWith("shared", lb{IP: "198.51.100.1"})
	client := fake.NewClientset(shared)
	recorder := record.NewFakeRecorder(10)
	w := &Writer{Client: client, Recorder: recorder, Addresses: Addresses{Fixed: []string{"203.0.113.10"}}, LeaveIngressStatus: true}
	objs := snapshot.Objects{Ingresses: []*networkingv1.Ingress{shared}}
	snap := &snapshot.Snapshot{
		Ingresses: []types.NamespacedName{{Namespace: "shop", Name: "shared"}},
		Problems: []snapshot.Problem{{
			Object: snapshot.ObjectRef{Kind: "Ingress", Namespace: "shop", Name: "shared"}, Severity: snapshot.Warning,
			Reason: "UnsupportedNginxAnnotation", Message: "annotation nginx.ingress.kubernetes.io/limit-rps: ignored",
		}},
	}
	ctx := context.Background()
	if err := w.Sync(ctx, objs, snap); err != nil {
		t.Fatal(err)
	}
	got, _ := client.NetworkingV1().Ingresses("shop").Get(ctx, "shared", metav1.GetOptions{})
	if !equalEntries(got.Status.LoadBalancer.Ingress, []lb{{IP: "198.51.100.1"}}) {
		t.Errorf("status %v, want the other controller's left as it is", got.Status.LoadBalancer.Ingress)
	}
	if n := len(recorder.Events); n != 1 {
		t.Errorf("%d events, want 1", n)
	}
}
