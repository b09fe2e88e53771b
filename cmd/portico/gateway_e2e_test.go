package main

import (
	"context"
	stdtls "crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

const gatewayManifests = `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: portico}
spec: {controllerName: portico.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge, namespace: default}
spec:
  gatewayClassName: portico
  addresses: [{value: 127.0.1.10}]
  listeners:
  - {name: http, protocol: HTTP, port: %[1]d}
  - name: https
    protocol: HTTPS
    port: %[2]d
    hostname: app.example.test
    tls: {certificateRefs: [{name: app-tls}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: pooled, namespace: default}
spec:
  gatewayClassName: portico
  listeners:
  - {name: http, protocol: HTTP, port: %[4]d}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: app, namespace: default}
spec:
  parentRefs: [{name: edge}, {name: pooled}]
  hostnames: [app.example.test]
  rules:
  %[3]s
  - backendRefs: [{name: legacy-fallback, port: 80}]
`

const apiRule = `- matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs: [{name: app, port: 80}]`

// waitSockets waits until the Gateway sockets bound are want.
func waitSockets(t *testing.T, g *gatewayListeners, want ...string) {
	t.Helper()
	slices.Sort(want)
	var got []string
	for range 200 {
		got = g.sockets()
		slices.Sort(got)
		if slices.Equal(got, want) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("gateway sockets %v, want %v", got, want)
}

// TestGatewayAPIFromManifests serves Gateways, HTTPRoutes and a certificate
// from a manifest folder on sockets of their own, next to the Ingress
// listeners, and follows edits without dropping connections.
func TestGatewayAPIFromManifests(t *testing.T) {
	e := startEnv(t, "--gateway-address-pool", "127.0.1.0/24")
	httpPort, httpsPort, pooledPort := freePort(t), freePort(t), freePort(t)
	e.write("gateway.yaml", fmt.Sprintf(gatewayManifests, httpPort, httpsPort, apiRule, pooledPort))
	// With a pool, static addresses must lie in it.
	edgeHTTP := fmt.Sprintf("HTTP 127.0.1.10:%d", httpPort)
	edgeHTTPS := fmt.Sprintf("HTTPS 127.0.1.10:%d", httpsPort)
	pooledHTTP := fmt.Sprintf("HTTP 127.0.1.1:%d", pooledPort)
	waitSockets(t, e.proc.listeners, edgeHTTP, edgeHTTPS, pooledHTTP)

	if st := e.proc.store.Load().GatewayAPI.Gateways[types.NamespacedName{Namespace: "default", Name: "pooled"}]; len(st.Addresses) != 1 || st.Addresses[0].Value != "127.0.1.1" {
		t.Errorf("pooled Gateway addresses %+v, want the pool's first address", st.Addresses)
	}

	plain := func(addr string) *http.Client {
		return &http.Client{Transport: &http.Transport{DialContext: e.dialGateway(addr)}}
	}
	edge := plain(fmt.Sprintf("127.0.1.10:%d", httpPort))
	defer edge.CloseIdleConnections()
	fetch := func(c *http.Client, url string) (string, bool) {
		t.Helper()
		reused := false
		trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, url, nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return fmt.Sprintf("%d %s", resp.StatusCode, body), reused
	}

	if got, _ := fetch(edge, "http://app.example.test/api/orders"); !strings.HasPrefix(got, "200 app GET /api/orders") {
		t.Errorf("Gateway HTTP /api: %q", got)
	}
	if got, _ := fetch(edge, "http://app.example.test/about"); !strings.HasPrefix(got, "200 legacy GET /about") {
		t.Errorf("Gateway HTTP /about: %q", got)
	}
	if got, _ := fetch(plain(fmt.Sprintf("127.0.1.1:%d", pooledPort)), "http://app.example.test/api/x"); !strings.HasPrefix(got, "200 app GET /api/x") {
		t.Errorf("pooled Gateway: %q", got)
	}
	// Ingress hosts are not served on Gateway sockets, nor the reverse.
	if got, _ := fetch(edge, "http://other.example.test/"); !strings.HasPrefix(got, "404") {
		t.Errorf("an Ingress host on a Gateway socket: %q", got)
	}

	tlsClient := &http.Client{Transport: &http.Transport{
		DialContext:       e.dialGateway(fmt.Sprintf("127.0.1.10:%d", httpsPort)),
		TLSClientConfig:   &stdtls.Config{RootCAs: e.ca.pool},
		ForceAttemptHTTP2: true,
	}}
	defer tlsClient.CloseIdleConnections()
	resp, err := tlsClient.Get("https://app.example.test/api/secure")
	if err != nil {
		t.Fatalf("Gateway HTTPS: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasPrefix(string(body), "app GET /api/secure") || resp.ProtoMajor != 2 || resp.TLS.PeerCertificates[0].SerialNumber.Int64() != 1 {
		t.Errorf("Gateway HTTPS: %q over HTTP/%d with certificate serial %d, want app over h2 with app-tls (1)",
			body, resp.ProtoMajor, resp.TLS.PeerCertificates[0].SerialNumber.Int64())
	}

	// Gateway routes' metric series survive the next snapshot.
	gen := e.proc.store.Load().Generation
	e.write("extra.yaml", manifestService("extra", "1"))
	for range 200 {
		if e.proc.store.Load().Generation > gen {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got, _ := fetch(http.DefaultClient, "http://"+e.admin+"/metrics"); !strings.Contains(got, `kind="HTTPRoute",method="GET",name="app",namespace="default"`) {
		t.Error("no request series for the HTTPRoute after a new snapshot")
	}

	// The route loses its /api rule: the socket stays, the same keep-alive
	// connection gets the new routes.
	e.write("gateway.yaml", fmt.Sprintf(gatewayManifests, httpPort, httpsPort, "", pooledPort))
	var got string
	var reused bool
	for range 200 {
		if got, reused = fetch(edge, "http://app.example.test/api/orders"); strings.HasPrefix(got, "200 legacy") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.HasPrefix(got, "200 legacy GET /api/orders") || !reused {
		t.Errorf("after the edit: %q (connection reused: %v), want legacy on the same connection", got, reused)
	}

	// The Gateways go: their sockets close; the Ingress listeners stay.
	if err := os.Remove(filepath.Join(e.dir, "gateway.yaml")); err != nil {
		t.Fatal(err)
	}
	waitSockets(t, e.proc.listeners)
	if c, err := net.Dial("tcp", fmt.Sprintf("127.0.1.10:%d", httpPort)); err == nil {
		c.Close()
		t.Error("a removed Gateway's socket still accepts connections")
	}
	if c, err := net.Dial("tcp", e.http); err != nil {
		t.Errorf("the Ingress HTTP listener: %v", err)
	} else {
		c.Close()
	}
}
