package main

import (
	"bufio"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestNginxEnableAccessLog: with --access-log on, an Ingress with
// enable-access-log "false" writes no record, and another one does.
func TestNginxEnableAccessLog(t *testing.T) {
	// The access log goes to the process's stdout, which this test reads
	// through a pipe for the gateway's lifetime.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	e := startEnv(t, "--access-log", "stdout", "--log-format", "json")
	os.Stdout = stdout
	t.Cleanup(func() { _ = w.Close(); _ = r.Close() })
	var mu sync.Mutex
	var lines []string
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			mu.Lock()
			lines = append(lines, sc.Text())
			mu.Unlock()
		}
	}()
	port := startEcho(t)
	e.republish(func() {
		e.write("echo.yaml", manifestService("echo", port))
		e.write("nginx.yaml", nginxIngress("quiet", "log.apps.example.test", "/quiet", "Prefix", "", map[string]string{"enable-access-log": "false"})+
			"---\n"+nginxIngress("loud", "log.apps.example.test", "/loud", "Prefix", "", map[string]string{"enable-access-log": "true"}))
	})
	c := e.http1Client()
	// One host, so one kept-alive connection, one request after the
	// other: a record of the quiet request would be written before the
	// loud one is read.
	for _, path := range []string{"/quiet", "/loud"} {
		if resp, body := do(t, c, "GET", "http://log.apps.example.test"+path, nil, ""); resp.StatusCode != 200 {
			t.Fatalf("%s: status %d body %q", path, resp.StatusCode, body)
		}
	}
	var got []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		got = append(got[:0], lines...)
		mu.Unlock()
		if strings.Contains(strings.Join(got, "\n"), `"/loud"`) {
			break
		}
	}
	all := strings.Join(got, "\n")
	if !strings.Contains(all, `"/loud"`) {
		t.Fatalf("no access log record of the loud Ingress's request; stdout had %q", all)
	}
	if strings.Contains(all, `"/quiet"`) {
		t.Errorf("enable-access-log false: a record of its request was written: %q", all)
	}
}
