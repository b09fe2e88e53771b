package main

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// mirrored is one request a mirror backend received.
type mirrored struct {
	method, uri, host, body string
}

// startMirrorBackend records every request it receives.
func startMirrorBackend(t *testing.T) (port string, seen func() []mirrored) {
	var mu sync.Mutex
	var got []mirrored
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, mirrored{r.Method, r.RequestURI, r.Host, string(b)})
		mu.Unlock()
		w.WriteHeader(http.StatusTeapot)
	}))
	t.Cleanup(srv.Close)
	_, port, _ = net.SplitHostPort(srv.Listener.Addr().String())
	return port, func() []mirrored {
		mu.Lock()
		defer mu.Unlock()
		return append([]mirrored(nil), got...)
	}
}

// TestNginxMirror: mirror-target copies each request to a Service of the
// Ingress's namespace, with its URI and body (none with
// mirror-request-body off) and the Host of mirror-host or the target,
// while the client gets the main backend's answer; a target outside the
// namespace gets nothing.
func TestNginxMirror(t *testing.T) {
	e := startEnv(t)
	shadow, seen := startMirrorBackend(t)
	e.republish(func() {
		e.write("echo.yaml", manifestService("echo", startEcho(t))+"---\n"+manifestService("shadow", shadow))
		e.write("nginx.yaml", strings.Join([]string{
			nginxIngress("outside", "outside.apps.example.test", "/", "Prefix", "", map[string]string{
				"mirror-target": "http://127.0.0.1:" + shadow + "$request_uri"}),
			nginxIngress("mirrored", "mirrored.apps.example.test", "/", "Prefix", "", map[string]string{
				"mirror-target": "http://shadow.default.svc.cluster.local$request_uri"}),
			nginxIngress("headers-only", "headers-only.apps.example.test", "/", "Prefix", "", map[string]string{
				"mirror-target": "http://shadow$request_uri", "mirror-request-body": "off", "mirror-host": "shadow.example.test"}),
		}, "---\n"))
	})
	c := e.http1Client()
	for _, host := range []string{"outside", "mirrored", "headers-only"} {
		resp, body := do(t, c, "POST", "http://"+host+".apps.example.test/orders?id=7", nil, "order "+host)
		if resp.StatusCode != 200 || !strings.Contains(body, "uri=/orders?id=7") {
			t.Fatalf("%s: status %d body %q, want the main backend's answer", host, resp.StatusCode, body)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(seen()) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	want := map[string]mirrored{
		"shadow.default.svc.cluster.local": {"POST", "/orders?id=7", "shadow.default.svc.cluster.local", "order mirrored"},
		"shadow.example.test":              {"POST", "/orders?id=7", "shadow.example.test", ""},
	}
	got := seen()
	if len(got) != 2 {
		t.Fatalf("the mirror Service received %+v, want one copy from each Ingress with a Service target", got)
	}
	for _, m := range got {
		if w, ok := want[m.host]; !ok || m != w {
			t.Errorf("mirror received %+v, want one of %+v", m, want)
		}
	}
}
