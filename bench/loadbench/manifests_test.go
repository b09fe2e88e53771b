package loadbench

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/yaml"
)

func TestWriteManifests(t *testing.T) {
	cert, err := NewSelfSignedCertificate([]string{"bench.example.test"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		extraHosts int
	}{
		{"one host", 0},
		{"many hosts", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			p := ManifestParams{Host: "bench.example.test", ExtraHosts: ExtraHostNames(tt.extraHosts), BackendPort: 18080, Cert: cert}
			if err := WriteManifests(&b, p); err != nil {
				t.Fatal(err)
			}
			docs := strings.Split(b.String(), "\n---\n")
			kinds := map[string]string{}
			for _, d := range docs {
				var meta struct {
					Kind string `json:"kind"`
				}
				if err := yaml.Unmarshal([]byte(d), &meta); err != nil {
					t.Fatalf("document does not parse: %v\n%s", err, d)
				}
				kinds[meta.Kind] = d
			}
			for _, k := range []string{"IngressClass", "Secret", "Service", "Endpoints", "Ingress"} {
				if _, ok := kinds[k]; !ok {
					t.Fatalf("no %s in manifests", k)
				}
			}

			var class networkingv1.IngressClass
			mustUnmarshal(t, kinds["IngressClass"], &class)
			if class.Name != "portico" || class.Spec.Controller != "portico.dev/controller" {
				t.Errorf("IngressClass = %s/%s", class.Name, class.Spec.Controller)
			}

			var secret corev1.Secret
			mustUnmarshal(t, kinds["Secret"], &secret)
			if secret.Type != corev1.SecretTypeTLS || secret.Name != "bench-tls" || secret.Namespace != "default" {
				t.Errorf("Secret = %s %s/%s", secret.Type, secret.Namespace, secret.Name)
			}
			if !bytes.Equal(secret.Data["tls.crt"], cert.CertPEM) || !bytes.Equal(secret.Data["tls.key"], cert.KeyPEM) {
				t.Error("Secret data does not round-trip the certificate and key")
			}

			var svc corev1.Service
			mustUnmarshal(t, kinds["Service"], &svc)
			if svc.Spec.Selector != nil || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != "http" || svc.Spec.Ports[0].Port != 80 {
				t.Errorf("Service spec = %+v", svc.Spec)
			}

			var eps corev1.Endpoints
			mustUnmarshal(t, kinds["Endpoints"], &eps)
			if len(eps.Subsets) != 1 || eps.Subsets[0].Addresses[0].IP != "127.0.0.1" ||
				eps.Subsets[0].Ports[0].Name != "http" || eps.Subsets[0].Ports[0].Port != 18080 {
				t.Errorf("Endpoints = %+v", eps.Subsets)
			}

			var ing networkingv1.Ingress
			mustUnmarshal(t, kinds["Ingress"], &ing)
			if ing.Spec.IngressClassName == nil || *ing.Spec.IngressClassName != "portico" {
				t.Error("Ingress lacks ingressClassName portico")
			}
			if len(ing.Spec.TLS) != 1 || ing.Spec.TLS[0].SecretName != "bench-tls" || ing.Spec.TLS[0].Hosts[0] != "bench.example.test" {
				t.Errorf("Ingress TLS = %+v", ing.Spec.TLS)
			}
			if got, want := len(ing.Spec.Rules), 1+tt.extraHosts; got != want {
				t.Fatalf("%d rules, want %d", got, want)
			}
			for i, r := range ing.Spec.Rules {
				wantHost := "bench.example.test"
				if i > 0 {
					wantHost = ExtraHostNames(tt.extraHosts)[i-1]
				}
				path := r.HTTP.Paths[0]
				if r.Host != wantHost || path.Path != "/" || *path.PathType != networkingv1.PathTypePrefix ||
					path.Backend.Service.Name != "bench-backend" || path.Backend.Service.Port.Name != "http" {
					t.Errorf("rule %d = %+v", i, r)
				}
			}
		})
	}
}

func TestWriteManifestsRejectsBadInput(t *testing.T) {
	cert := Certificate{CertPEM: []byte("c"), KeyPEM: []byte("k")}
	tests := []struct {
		name string
		p    ManifestParams
	}{
		{"no host", ManifestParams{BackendPort: 80, Cert: cert}},
		{"no port", ManifestParams{Host: "a.test", Cert: cert}},
		{"port out of range", ManifestParams{Host: "a.test", BackendPort: 70000, Cert: cert}},
		{"no certificate", ManifestParams{Host: "a.test", BackendPort: 80}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := WriteManifests(&bytes.Buffer{}, tt.p); err == nil {
				t.Error("no error")
			}
		})
	}
}

func mustUnmarshal(t *testing.T, doc string, v any) {
	t.Helper()
	if err := yaml.UnmarshalStrict([]byte(doc), v); err != nil {
		t.Fatalf("unmarshal: %v\n%s", err, doc)
	}
}

// Secret data must be standard base64 so Kubernetes tooling reads it.
func TestManifestsUseStandardBase64(t *testing.T) {
	cert := Certificate{CertPEM: []byte{0xfb, 0xff}, KeyPEM: []byte("k")}
	var b bytes.Buffer
	if err := WriteManifests(&b, ManifestParams{Host: "a.test", BackendPort: 80, Cert: cert}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "tls.crt: "+base64.StdEncoding.EncodeToString(cert.CertPEM)+"\n") {
		t.Error("certificate is not standard base64")
	}
}
