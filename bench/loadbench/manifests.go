package loadbench

import (
	"encoding/base64"
	"fmt"
	"io"
	"strings"
)

// ManifestParams describes the Kubernetes objects Portico serves during a
// benchmark.
type ManifestParams struct {
	// Host is the virtual host the load is sent to.
	Host string
	// ExtraHosts are further virtual hosts routed to the same backend; they
	// grow the route table without receiving load.
	ExtraHosts  []string
	BackendPort int
	Cert        Certificate
}

// Manifest object names, shared with the peer templates so every target
// routes the same way.
const (
	ingressClassName = "portico"
	tlsSecretName    = "bench-tls"
	backendService   = "bench-backend"
	benchNamespace   = "default"
)

// WriteManifests writes the IngressClass, TLS Secret, selector-less Service
// with its Endpoints, and the Ingress as one multi-document YAML stream.
func WriteManifests(w io.Writer, p ManifestParams) error {
	if p.Host == "" {
		return fmt.Errorf("manifests need a host")
	}
	if p.BackendPort <= 0 || p.BackendPort > 65535 {
		return fmt.Errorf("invalid backend port %d", p.BackendPort)
	}
	if len(p.Cert.CertPEM) == 0 || len(p.Cert.KeyPEM) == 0 {
		return fmt.Errorf("manifests need a TLS certificate and key")
	}
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: %s
spec:
  controller: portico.dev/controller
---
apiVersion: v1
kind: Secret
type: kubernetes.io/tls
metadata:
  name: %s
  namespace: %s
data:
  tls.crt: %s
  tls.key: %s
---
apiVersion: v1
kind: Service
metadata:
  name: %s
  namespace: %s
spec:
  ports:
  - name: http
    port: 80
    protocol: TCP
---
apiVersion: v1
kind: Endpoints
metadata:
  name: %s
  namespace: %s
subsets:
- addresses:
  - ip: 127.0.0.1
  ports:
  - name: http
    port: %d
    protocol: TCP
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: bench
  namespace: %s
spec:
  ingressClassName: %s
  tls:
  - hosts:
    - %s
    secretName: %s
  rules:
`,
		ingressClassName,
		tlsSecretName, benchNamespace,
		base64.StdEncoding.EncodeToString(p.Cert.CertPEM),
		base64.StdEncoding.EncodeToString(p.Cert.KeyPEM),
		backendService, benchNamespace,
		backendService, benchNamespace, p.BackendPort,
		benchNamespace, ingressClassName, p.Host, tlsSecretName)
	for _, h := range append([]string{p.Host}, p.ExtraHosts...) {
		fmt.Fprintf(&b, `  - host: %s
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: %s
            port:
              name: http
`, h, backendService)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// ExtraHostNames returns n host names of the form host-N.example.test, used
// to grow route tables for the many-hosts workload.
func ExtraHostNames(n int) []string {
	hosts := make([]string, 0, max(n, 0))
	for i := range n {
		hosts = append(hosts, fmt.Sprintf("host-%d.example.test", i))
	}
	return hosts
}
