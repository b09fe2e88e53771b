package kube

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"portico.dev/portico/snapshot"
)

func TestCoalesceOneRebuildPerBurst(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changed := make(chan struct{}, 1)
	rebuilt := make(chan struct{}, 10)
	go coalesce(ctx, changed, 50*time.Millisecond, time.Hour, func() { rebuilt <- struct{}{} })

	// A burst of signals closer together than the quiet period.
	for i := 0; i < 20; i++ {
		select {
		case changed <- struct{}{}:
		default:
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case <-rebuilt:
	case <-time.After(10 * time.Second):
		t.Fatal("no rebuild after a burst")
	}
	select {
	case <-rebuilt:
		t.Fatal("a burst caused two rebuilds")
	case <-time.After(200 * time.Millisecond):
	}
}

func TestCoalesceMaxDelayBoundsAStream(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changed := make(chan struct{}, 1)
	var rebuilds atomic.Int32
	go coalesce(ctx, changed, time.Hour, 20*time.Millisecond, func() { rebuilds.Add(1) })

	// Signals that never leave a quiet hour still rebuild every maxDelay.
	deadline := time.Now().Add(10 * time.Second)
	for rebuilds.Load() < 2 && time.Now().Before(deadline) {
		select {
		case changed <- struct{}{}:
		default:
		}
		time.Sleep(time.Millisecond)
	}
	if rebuilds.Load() < 2 {
		t.Fatal("a steady stream of changes held rebuilds back")
	}
}

// TestRunListsAndFilters checks the wiring from informers to Objects with
// client-go's fake clientset; behaviour against a real API server is covered
// by the integration tests.
func TestRunListsAndFilters(t *testing.T) {
	client := fake.NewClientset(
		&networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: "portico"}},
		&networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}},
		&networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "web"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "tls"}, Type: corev1.SecretTypeTLS},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "helm-release"}, Type: "helm.sh/release.v1"},
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan snapshot.Objects, 10)
	src := &Source{Client: client, Namespaces: []string{"shop"}, Quiet: 10 * time.Millisecond}
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, func(o snapshot.Objects) { got <- o }) }()

	first := receive(t, got)
	if len(first.IngressClasses) != 1 || len(first.Ingresses) != 1 || first.Ingresses[0].Namespace != "shop" {
		t.Errorf("first objects: %d classes, ingresses %v; want 1 class and shop/web only", len(first.IngressClasses), first.Ingresses)
	}
	if len(first.Secrets) != 1 || first.Secrets[0].Name != "tls" {
		t.Errorf("secrets %v, want only the TLS one", first.Secrets)
	}

	_, err := client.NetworkingV1().Ingresses("shop").Create(ctx,
		&networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "api"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if next := receive(t, got); len(next.Ingresses) != 2 {
		t.Errorf("after a create: %d ingresses, want 2", len(next.Ingresses))
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func receive(t *testing.T, ch <-chan snapshot.Objects) snapshot.Objects {
	t.Helper()
	select {
	case o := <-ch:
		return o
	case <-time.After(10 * time.Second):
		t.Fatal("no objects delivered")
		return snapshot.Objects{}
	}
}

// TestRunWatchesNamedAuthSecrets checks that the Opaque Secret an Ingress
// names in auth-secret reaches the builder, that other Opaque Secrets do
// not, and that a Secret created after the Ingress, or no longer named, is
// followed.
func TestRunWatchesNamedAuthSecrets(t *testing.T) {
	authIngress := func(secret string) *networkingv1.Ingress {
		return &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "admin", Annotations: map[string]string{
			snapshot.NginxPrefix + "auth-type": "basic", snapshot.NginxPrefix + "auth-secret": secret}}}
	}
	opaque := func(name string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name}, Type: corev1.SecretTypeOpaque,
			Data: map[string][]byte{"auth": []byte("foo:{PLAIN}bar\n")}}
	}
	client := fake.NewClientset(authIngress("users"), opaque("users"), opaque("database-password"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan snapshot.Objects, 10)
	src := &Source{Client: client, Namespaces: []string{"shop"}, Quiet: 10 * time.Millisecond}
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, func(o snapshot.Objects) { got <- o }) }()
	names := func(o snapshot.Objects) []string {
		var out []string
		for _, s := range o.Secrets {
			out = append(out, s.Name)
		}
		return out
	}
	// Each change may deliver more than one rebuild; wait for the wanted one.
	await := func(want []string) {
		t.Helper()
		var last []string
		for range 20 {
			last = names(receive(t, got))
			if slices.Equal(last, want) {
				return
			}
		}
		t.Fatalf("secrets %q, want %q", last, want)
	}
	await([]string{"users"})

	if _, err := client.NetworkingV1().Ingresses("shop").Update(ctx, authIngress("later"), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	await(nil)
	if _, err := client.CoreV1().Secrets("shop").Create(ctx, opaque("later"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	await([]string{"later"})
}

// TestRunWatchesAuthTLSSecrets checks that the Opaque Secret an Ingress
// names in auth-tls-secret reaches the builder and that a change of its CA
// is followed.
func TestRunWatchesAuthTLSSecrets(t *testing.T) {
	ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "mtls", Annotations: map[string]string{
		snapshot.NginxPrefix + "auth-tls-secret": "shop/client-ca"}}}
	ca := func(pem string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "client-ca"}, Type: corev1.SecretTypeOpaque,
			Data: map[string][]byte{"ca.crt": []byte(pem)}}
	}
	client := fake.NewClientset(ing, ca("first"),
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "database-password"}, Type: corev1.SecretTypeOpaque})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan snapshot.Objects, 10)
	src := &Source{Client: client, Namespaces: []string{"shop"}, Quiet: 10 * time.Millisecond}
	go func() { _ = src.Run(ctx, func(o snapshot.Objects) { got <- o }) }()
	await := func(want string) {
		t.Helper()
		var last []string
		for range 20 {
			last = nil
			for _, s := range receive(t, got).Secrets {
				last = append(last, s.Name+"="+string(s.Data["ca.crt"]))
			}
			if slices.Equal(last, []string{"client-ca=" + want}) {
				return
			}
		}
		t.Fatalf("secrets %q, want only client-ca=%s", last, want)
	}
	await("first")
	if _, err := client.CoreV1().Secrets("shop").Update(ctx, ca("second"), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	await("second")
}

// TestRunNginxConfigMap: the ConfigMap --nginx-configmap names is watched
// in its namespace, outside the watched ones, in full; no other ConfigMap
// is handed over, and an edit rebuilds.
func TestRunNginxConfigMap(t *testing.T) {
	client := fake.NewClientset(
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ingress-nginx", Name: "ingress-nginx-controller"},
			Data: map[string]string{"proxy-body-size": "8m"}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ingress-nginx", Name: "other"},
			Data: map[string]string{"password": "x"}},
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan snapshot.Objects, 10)
	src := &Source{Client: client, Namespaces: []string{"shop"}, Quiet: 10 * time.Millisecond,
		NginxConfigMap: types.NamespacedName{Namespace: "ingress-nginx", Name: "ingress-nginx-controller"}}
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, func(o snapshot.Objects) { got <- o }) }()

	first := receive(t, got)
	if len(first.ConfigMaps) != 1 || first.ConfigMaps[0].Name != "ingress-nginx-controller" || first.ConfigMaps[0].Data["proxy-body-size"] != "8m" {
		t.Fatalf("ConfigMaps %v, want only ingress-nginx-controller with its data", first.ConfigMaps)
	}
	_, err := client.CoreV1().ConfigMaps("ingress-nginx").Update(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ingress-nginx", Name: "ingress-nginx-controller"},
		Data:       map[string]string{"proxy-body-size": "1m"}}, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if next := receive(t, got); len(next.ConfigMaps) != 1 || next.ConfigMaps[0].Data["proxy-body-size"] != "1m" {
		t.Errorf("after an update: %v, want proxy-body-size 1m", next.ConfigMaps)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}
