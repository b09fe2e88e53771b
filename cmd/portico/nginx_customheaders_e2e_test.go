package main

import "testing"

// TestNginxCustomHeaders: in manifest mode, custom-headers sets the
// headers of its ConfigMap on the backend's responses, over HTTP/1.1 and
// HTTP/2, and leaves out one that would frame the response.
func TestNginxCustomHeaders(t *testing.T) {
	e := startEnv(t)
	port := startEcho(t)
	e.republish(func() {
		e.write("echo.yaml", manifestService("echo", port))
		e.write("headers.yaml", `apiVersion: v1
kind: ConfigMap
metadata: {name: security-headers, namespace: default}
data:
  X-Frame-Options: DENY
  Content-Length: "0"
`)
		e.write("nginx.yaml", nginxIngress("headed", "headed.apps.example.test", "/", "Prefix", "", map[string]string{"custom-headers": "security-headers"}))
	})
	for _, c := range []struct{ name, url string }{
		{"HTTP/1.1", "http://headed.apps.example.test/"},
		{"HTTP/2", "https://headed.apps.example.test/"},
	} {
		client := e.http1Client()
		if c.name == "HTTP/2" {
			client = e.http2Client()
		}
		resp, body := do(t, client, "GET", c.url, nil, "")
		if resp.StatusCode != 200 || resp.Header.Get("X-Frame-Options") != "DENY" || body == "" {
			t.Errorf("%s: status %d X-Frame-Options %q body %q, want 200 DENY and the backend's body", c.name, resp.StatusCode, resp.Header.Get("X-Frame-Options"), body)
		}
	}
}
