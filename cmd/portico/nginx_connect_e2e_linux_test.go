package main

import (
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// startStuckListener returns the loopback port of a listener whose accept
// queue is full and never drained: Linux drops the SYN of every further
// connect, which then waits for its timeout.
func startStuckListener(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(sa.(*syscall.SockaddrInet4).Port)
	for i := 0; ; i++ {
		if i == 8 {
			t.Skip("the listener's accept queue did not fill; connects to it are not held")
		}
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, 300*time.Millisecond)
		if err != nil {
			break
		}
		t.Cleanup(func() { _ = c.Close() })
	}
	return port
}

// TestNginxProxyConnectTimeout: proxy-connect-timeout bounds the connect to
// the backend of its Ingress in place of --upstream-dial-timeout, over
// HTTP/1.1 and HTTP/2 alike (the event loops, which connect without a
// bound of their own, leave such routes to the goroutine path). The
// global bound here is far beyond the clients' own safety timeout, so a
// route that did not honour the annotation would fail the test.
func TestNginxProxyConnectTimeout(t *testing.T) {
	e := startEnv(t, "--upstream-dial-timeout", "5m")
	port := startStuckListener(t)
	e.republish(func() {
		e.write("echo.yaml", manifestService("echo", port))
		e.write("nginx.yaml", nginxIngress("hasty", "hasty.apps.example.test", "/", "Prefix", "", map[string]string{"proxy-connect-timeout": "1"}))
	})
	for _, c := range []struct{ name, url string }{
		{"HTTP/1.1", "http://hasty.apps.example.test/"},
		{"HTTP/2", "https://hasty.apps.example.test/"},
	} {
		t.Run(c.name, func(t *testing.T) {
			client := e.http1Client()
			if c.name == "HTTP/2" {
				client = e.http2Client()
			}
			client.Timeout = time.Minute
			resp, body := do(t, client, "GET", c.url, nil, "")
			if resp.StatusCode != 502 {
				t.Errorf("status %d (body %q), want 502 once the route's connect timeout passed", resp.StatusCode, body)
			}
		})
	}
}
