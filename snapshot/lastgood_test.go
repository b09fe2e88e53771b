package snapshot_test

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"portico.dev/portico/internal/testkit"
	"portico.dev/portico/routing"
	"portico.dev/portico/snapshot"
)

// TestBrokenUpdatesKeepLastGood walks one Ingress and its Secret through a
// series of edits, as a user would make them, and checks after each build
// what serves and what is reported.
func TestBrokenUpdatesKeepLastGood(t *testing.T) {
	goodCert, goodKey := testKeyPair(t, 0x11, "shop.example.com")
	newCert, newKey := testKeyPair(t, 0x22, "shop.example.com")

	objs := snapshot.Objects{
		IngressClasses: []*networkingv1.IngressClass{{
			ObjectMeta: metav1.ObjectMeta{Name: "portico"},
			Spec:       networkingv1.IngressClassSpec{Controller: "portico.dev/controller"},
		}},
		Services: []*corev1.Service{{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
		}},
	}
	setIngress := func(path string) {
		objs.Ingresses = []*networkingv1.Ingress{shopIngress(path)}
	}
	setSecret := func(cert, key []byte) {
		objs.Secrets = []*corev1.Secret{{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "shop-tls"},
			Type:       corev1.SecretTypeTLS,
			Data:       map[string][]byte{corev1.TLSCertKey: cert, corev1.TLSPrivateKeyKey: key},
		}}
	}

	steps := []struct {
		name         string
		edit         func()
		wantPath     string // the path the route table serves
		wantSerial   string // the serial served for shop.example.com
		wantProblems []string
	}{
		{
			name:       "valid start",
			edit:       func() { setIngress("/orders"); setSecret(goodCert, goodKey) },
			wantPath:   "/orders",
			wantSerial: "11",
		},
		{
			name:         "secret edited into garbage keeps the last good certificate",
			edit:         func() { setSecret([]byte("oops"), goodKey) },
			wantPath:     "/orders",
			wantSerial:   "11",
			wantProblems: []string{"InvalidSecret", "keeps serving"},
		},
		{
			name:       "secret fixed with a new certificate",
			edit:       func() { setSecret(newCert, newKey) },
			wantPath:   "/orders",
			wantSerial: "22",
		},
		{
			name:         "ingress edited with an invalid path keeps its last valid version",
			edit:         func() { setIngress("orders-without-slash") },
			wantPath:     "/orders",
			wantSerial:   "22",
			wantProblems: []string{"InvalidIngress", "last valid version"},
		},
		{
			name:       "ingress fixed with a new path",
			edit:       func() { setIngress("/checkout") },
			wantPath:   "/checkout",
			wantSerial: "22",
		},
		{
			name:         "key that does not match the certificate keeps the last good pair",
			edit:         func() { setSecret(newCert, goodKey) },
			wantPath:     "/checkout",
			wantSerial:   "22",
			wantProblems: []string{"InvalidSecret", "does not match"},
		},
		{
			name:         "the same broken content in the next build is still reported",
			edit:         func() {},
			wantPath:     "/checkout",
			wantSerial:   "22",
			wantProblems: []string{"InvalidSecret", "does not match"},
		},
	}

	var snap *snapshot.Snapshot
	for _, step := range steps {
		step.edit()
		snap = snapshot.Build(objs, goldenConfig, snap)

		routes := snap.Routes.Routes()
		if len(routes) != 1 || routes[0].Path != step.wantPath {
			t.Fatalf("%s: routes = %v, want one for %s", step.name, routes, step.wantPath)
		}
		if got := snap.Certificates.Lookup("shop.example.com"); got == nil || got.Serial != step.wantSerial {
			t.Fatalf("%s: certificate for shop.example.com = %+v, want serial %s", step.name, got, step.wantSerial)
		}
		var found []string
		for _, p := range snap.Problems {
			if p.Reason == "FallbackNotFound" || p.Reason == "NoReadyEndpoints" {
				continue // the test objects have no fallback and no endpoints
			}
			found = append(found, p.String())
		}
		if len(step.wantProblems) == 0 {
			if len(found) > 0 {
				t.Fatalf("%s: unexpected problems %q", step.name, found)
			}
			continue
		}
		if len(found) != 1 {
			t.Fatalf("%s: problems = %q, want one containing %q", step.name, found, step.wantProblems)
		}
		for _, w := range step.wantProblems {
			if !strings.Contains(found[0], w) {
				t.Fatalf("%s: problem %q does not contain %q", step.name, found[0], w)
			}
		}
	}
}

func shopIngress(path string) *networkingv1.Ingress {
	prefix := networkingv1.PathTypePrefix
	class := "portico"
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "shop"},
		Spec: networkingv1.IngressSpec{
			IngressClassName: &class,
			TLS:              []networkingv1.IngressTLS{{Hosts: []string{"shop.example.com"}, SecretName: "shop-tls"}},
			Rules: []networkingv1.IngressRule{{
				Host: "shop.example.com",
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
					Paths: []networkingv1.HTTPIngressPath{{
						Path: path, PathType: &prefix,
						Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
							Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80},
						}},
					}},
				}},
			}},
		},
	}
}

// testKeyPair returns a PEM certificate and key for host with a known serial.
func testKeyPair(t *testing.T, serial int64, host string) (certPEM, keyPEM []byte) {
	t.Helper()
	c := testkit.SelfSigned(t, testkit.Leaf{
		DNSNames:  []string{host},
		Serial:    serial,
		NotBefore: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:  time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC),
	})
	return c.CertPEM, c.KeyPEM
}

// TestRateLimitCarriesOver checks that a rebuild keeps an Ingress's rate
// limit, and with it its clients' counters, while its configuration
// holds, and starts afresh when the configuration changes.
func TestRateLimitCarriesOver(t *testing.T) {
	objs := snapshot.Objects{
		IngressClasses: []*networkingv1.IngressClass{{
			ObjectMeta: metav1.ObjectMeta{Name: "portico"},
			Spec:       networkingv1.IngressClassSpec{Controller: "portico.dev/controller"},
		}},
		Services: []*corev1.Service{{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
		}},
	}
	limited := func(path, rps string) *networkingv1.Ingress {
		ing := shopIngress(path)
		ing.Annotations = map[string]string{snapshot.NginxPrefix + "limit-rps": rps}
		return ing
	}
	limitOf := func(s *snapshot.Snapshot) *routing.RateLimit {
		t.Helper()
		routes := s.Routes.Routes()
		if len(routes) != 1 || routes[0].Admission == nil || routes[0].Admission.Limit == nil {
			t.Fatalf("routes = %v, want one with a rate limit", routes)
		}
		return routes[0].Admission.Limit
	}

	objs.Ingresses = []*networkingv1.Ingress{limited("/orders", "5")}
	first := snapshot.Build(objs, goldenConfig, nil)
	objs.Ingresses = []*networkingv1.Ingress{limited("/basket", "5")}
	second := snapshot.Build(objs, goldenConfig, first)
	if limitOf(second) != limitOf(first) {
		t.Fatal("an edit that left the limit alone gave the Ingress a new rate limit, resetting its clients")
	}
	objs.Ingresses = []*networkingv1.Ingress{limited("/basket", "6")}
	third := snapshot.Build(objs, goldenConfig, second)
	if limitOf(third) == limitOf(second) || limitOf(third).PerSecond != 6 {
		t.Fatalf("a changed limit kept the old one: %s", limitOf(third))
	}
}

// TestNginxConfigMapKeepsLastGood walks ingress-nginx's ConfigMap through
// edits: a key edited into garbage keeps its last valid value, with a
// problem naming the key; a fixed key takes its new value; a removed key
// stops applying.
func TestNginxConfigMapKeepsLastGood(t *testing.T) {
	ing := shopIngress("/orders")
	ing.Annotations = map[string]string{snapshot.NginxPrefix + "use-regex": "false"}
	objs := snapshot.Objects{
		IngressClasses: []*networkingv1.IngressClass{{
			ObjectMeta: metav1.ObjectMeta{Name: "portico"},
			Spec:       networkingv1.IngressClassSpec{Controller: "portico.dev/controller"},
		}},
		Services: []*corev1.Service{{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
		}},
		Ingresses: []*networkingv1.Ingress{ing},
	}
	cfg := goldenConfig
	cfg.NginxConfigMap = nginxConfigMap
	setData := func(data map[string]string) {
		objs.ConfigMaps = []*corev1.ConfigMap{{
			ObjectMeta: metav1.ObjectMeta{Namespace: nginxConfigMap.Namespace, Name: nginxConfigMap.Name},
			Data:       data,
		}}
	}
	steps := []struct {
		name        string
		data        map[string]string
		wantBody    int64
		wantHSTS    string
		wantProblem []string
	}{
		{"valid start", map[string]string{"proxy-body-size": "8m", "hsts-max-age": "600"}, 8 << 20, "max-age=600; includeSubDomains", nil},
		{"garbage keeps the last valid values", map[string]string{"proxy-body-size": "8 MB", "hsts-max-age": "ten minutes"}, 8 << 20, "max-age=600; includeSubDomains",
			[]string{`key hsts-max-age: "ten minutes" is not a number of seconds; its last valid value "600" keeps applying`,
				`key proxy-body-size: "8 MB" is not a size (a number with an optional k, m or g); its last valid value "8m" keeps applying`}},
		{"still broken in the next build", map[string]string{"proxy-body-size": "8 MB", "hsts-max-age": "600"}, 8 << 20, "max-age=600; includeSubDomains",
			[]string{`its last valid value "8m" keeps applying`}},
		{"fixed with new values", map[string]string{"proxy-body-size": "1k", "hsts-max-age": "60"}, 1 << 10, "max-age=60; includeSubDomains", nil},
		{"keys removed: ingress-nginx's default body size", map[string]string{"hsts": "false"}, 1 << 20, "", nil},
	}
	var snap *snapshot.Snapshot
	for _, step := range steps {
		setData(step.data)
		snap = snapshot.Build(objs, cfg, snap)
		routes := snap.Routes.Routes()
		if len(routes) != 1 {
			t.Fatalf("%s: routes = %v", step.name, routes)
		}
		r := routes[0]
		var body int64
		if r.Admission != nil {
			body = r.Admission.MaxBodyBytes
		}
		hsts := ""
		if r.Filters != nil {
			hsts = r.Filters.HSTS
		}
		if body != step.wantBody || hsts != step.wantHSTS {
			t.Errorf("%s: body limit %d, HSTS %q; want %d, %q", step.name, body, hsts, step.wantBody, step.wantHSTS)
		}
		var found []string
		for _, p := range snap.Problems {
			if p.Reason == "InvalidNginxConfigMapKey" {
				found = append(found, p.String())
			}
		}
		if len(found) != len(step.wantProblem) {
			t.Fatalf("%s: problems %q, want %d", step.name, found, len(step.wantProblem))
		}
		for i, w := range step.wantProblem {
			if !strings.Contains(found[i], w) {
				t.Errorf("%s: problem %q does not contain %q", step.name, found[i], w)
			}
		}
	}
}
