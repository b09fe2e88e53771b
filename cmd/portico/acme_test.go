package main

import (
	stdtls "crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"portico.dev/portico/tls/acme/acmetest"
)

const acmeIngress = `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: acme
  namespace: default
  annotations:
    portico.dev/acme: "true"
spec:
  ingressClassName: portico
  rules:
  - host: acme.example.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: app, port: {number: 80}}}}
  - host: app.example.test
    http:
      paths:
      - {path: /acme, pathType: Prefix, backend: {service: {name: app, port: {number: 80}}}}
`

// TestACMEIssuesForAnnotatedIngress runs Portico (manifest mode, state in a
// folder) against Pebble: a host added by an annotated Ingress gets a
// certificate through an HTTP-01 challenge on Portico's plain-HTTP
// listener, while a host with a Secret keeps it and an unrouted name keeps
// the default certificate.
func TestACMEIssuesForAnnotatedIngress(t *testing.T) {
	httpPort := acmetest.FreePorts(t, 1)[0]
	pb := acmetest.Start(t, httpPort)
	roots := filepath.Join(t.TempDir(), "acme-roots.pem")
	if err := os.WriteFile(roots, pb.ListenerRootsPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	e := startEnv(t, "--http-addr", net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort)),
		"--acme-directory", pb.Directory, "--acme-ca-roots", roots, "--acme-storage-dir", t.TempDir())

	e.write("acme.yaml", acmeIngress)
	issued := func(serverName string) (*stdtls.ConnectionState, error) {
		conn, err := stdtls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", e.https,
			&stdtls.Config{ServerName: serverName, RootCAs: pb.IssuerRoots})
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		state := conn.ConnectionState()
		return &state, nil
	}
	// Bounded wait for the snapshot, the order and the challenge.
	deadline := time.Now().Add(60 * time.Second)
	var err error
	for {
		if _, err = issued("acme.example.test"); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("acme.example.test was not served a certificate from the ACME CA: %v", err)
	}

	// The Secret wins for its host, even though the annotated Ingress
	// routes it too; and no certificate is ordered for a name no Ingress
	// routes.
	if serial, err := e.handshakeSerial("app.example.test"); err != nil || serial != "1" {
		t.Errorf("app.example.test: serial %q, %v; want its Secret's certificate (serial 1)", serial, err)
	}
	if _, err := issued("stranger.example.test"); err == nil {
		t.Error("an unrouted name was served a certificate from the ACME CA")
	}

	admin := &http.Client{Timeout: 5 * time.Second}
	_, metricsText := get(t, admin, "http://"+e.admin+"/metrics")
	for _, want := range []string{
		`portico_acme_certificate_expiry_timestamp_seconds{host="acme.example.test"}`,
		`portico_acme_orders_total{result="obtained"} 1`,
	} {
		if !strings.Contains(metricsText, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestACMEFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string // error substring; "" for success
		ns   string
	}{
		{args: []string{"--acme-directory", "https://ca.example/dir"}, want: "--acme-storage-dir"},
		{args: []string{"--acme-directory", "https://ca.example/dir", "--acme-storage-dir", "/tmp/x", "--http-addr", ""}, want: "--http-addr"},
		{args: []string{"--acme-directory", "https://ca.example/dir", "--acme-storage-dir", "/tmp/x", "--acme-on-demand-rate", "0"}, want: "--acme-on-demand-rate"},
		{args: []string{"--acme-directory", "https://ca.example/dir", "--kubeconfig", "/k"}, env: map[string]string{"POD_NAMESPACE": "ingress"}, ns: "ingress"},
		{args: []string{"--acme-directory", "https://ca.example/dir", "--kubeconfig", "/k", "--acme-namespace", "acme"}, ns: "acme"},
		{args: []string{"--kubeconfig", "/k"}},
	} {
		cfg, err := parseConfig(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
		switch {
		case tc.want != "":
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v: error %v, want one naming %s", tc.args, err, tc.want)
			}
		case err != nil:
			t.Errorf("%v: %v", tc.args, err)
		case cfg.ACME.Namespace != tc.ns:
			t.Errorf("%v: ACME namespace %q, want %q", tc.args, cfg.ACME.Namespace, tc.ns)
		}
	}
}
