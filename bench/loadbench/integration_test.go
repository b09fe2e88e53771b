package loadbench

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func requirePrograms(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Skipf("%s not installed", n)
		}
	}
}

// benchKeyPair is the benchmark certificate for bench.example.test, ready
// for a Go TLS server.
func benchKeyPair(t *testing.T) tls.Certificate {
	t.Helper()
	cert, err := NewSelfSignedCertificate([]string{"bench.example.test"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(cert.CertPEM, cert.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

// wrk must present the virtual host as SNI and Host while connecting to
// loopback; this is what makes the TLS targets pick the benchmark
// certificate the way a real client would.
func TestWrkSendsVirtualHostOverLoopback(t *testing.T) {
	requirePrograms(t, "wrk")
	pair := benchKeyPair(t)
	var (
		mu    sync.Mutex
		snis  = map[string]int{}
		hosts = map[string]int{}
	)
	body := ResponseBody(100)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			hosts[r.Host]++
			if r.TLS != nil {
				snis[r.TLS.ServerName]++
			}
			mu.Unlock()
			_, _ = w.Write([]byte(body))
		}),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{pair}},
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	defer srv.Close()

	dir := t.TempDir()
	script := filepath.Join(dir, "s.lua")
	if err := os.WriteFile(script, []byte(wrkScript), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Threads: 1, Connections: 2, Host: "bench.example.test"}
	port := ln.Addr().(*net.TCPAddr).Port
	url := "https://bench.example.test:" + strconv.Itoa(port) + "/"
	res, err := runWrk(context.Background(), cfg, script, url, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests == 0 || res.FromText || res.P50 <= 0 || res.P99 < res.P50 || res.Errors != 0 {
		t.Errorf("result = %+v", res)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(snis) != 1 || snis["bench.example.test"] == 0 {
		t.Errorf("SNI seen = %v, want only bench.example.test", snis)
	}
	if len(hosts) != 1 || hosts["bench.example.test"] == 0 {
		t.Errorf("Host seen = %v, want only bench.example.test", hosts)
	}
}

// A short real benchmark over the nginx targets: the backend, a direct run
// and a two-tier chain, end to end.
func TestExecuteNginxTargets(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real load")
	}
	requirePrograms(t, "wrk", "nginx")
	targets, err := SelectTargets(Targets(), []string{"direct", "nginx-2tier"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Targets: targets, Rounds: 1, Duration: time.Second, Connections: 4, Threads: 1, Workers: 1,
		Host: "bench.example.test", BodySize: 100, WorkDir: t.TempDir(),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	runs, err := Execute(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 {
		t.Fatalf("%d runs, want 2", len(runs))
	}
	for _, r := range runs {
		if r.Err != nil {
			t.Fatalf("%s: %v", r.Target, r.Err)
		}
		if r.Result.Requests == 0 || r.Result.Errors != 0 {
			t.Errorf("%s: %+v", r.Target, r.Result)
		}
	}
	if runs[0].Memory != (Memory{}) {
		t.Errorf("direct has no proxy but reports memory %+v", runs[0].Memory)
	}
	if m := runs[1].Memory; m.RSS <= 0 || m.PSS <= 0 || m.PSS > m.RSS {
		t.Errorf("nginx-2tier memory = %+v", m)
	}
	// direct is charged with the backend's CPU time, nginx-2tier with
	// both tiers'.
	for _, r := range runs {
		if r.CPU <= 0 || r.CPUPerRequest() <= 0 {
			t.Errorf("%s: CPU %s for %d requests", r.Target, r.CPU, r.Result.Requests)
		}
	}
}

// A target that cannot start is recorded as failed with its log, and the
// benchmark goes on.
func TestExecuteRecordsFailedTarget(t *testing.T) {
	requirePrograms(t, "nginx")
	dir := t.TempDir()
	fake := filepath.Join(dir, "portico")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho 'cannot load manifests' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	targets, err := SelectTargets(Targets(), []string{"portico"})
	if err != nil {
		t.Fatal(err)
	}
	workDir := filepath.Join(dir, "work")
	if err := os.Mkdir(workDir, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Targets: targets, Rounds: 2, Duration: time.Second, Connections: 1, Threads: 1, Workers: 1,
		Host: "bench.example.test", BodySize: 100, WorkDir: workDir,
		Programs: map[string]string{"portico": fake},
	}
	runs, err := Execute(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 {
		t.Fatalf("%d runs, want 2", len(runs))
	}
	for _, r := range runs {
		if r.Err == nil || !strings.Contains(r.Err.Error(), "cannot load manifests") {
			t.Errorf("round %d error = %v, want the process log", r.Round, r.Err)
		}
	}
	manifest, err := os.ReadFile(filepath.Join(workDir, "round1-portico", "manifests", "bench.yaml"))
	if err != nil || !strings.Contains(string(manifest), "kind: Ingress") {
		t.Errorf("manifests not written: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	valid := func() Config {
		return Config{
			Targets: Targets(), Rounds: 1, Duration: time.Second, Connections: 2, Threads: 2, Workers: 1,
			Host: "bench.example.test", BodySize: 100, WorkDir: "/tmp/x",
		}
	}
	tests := []struct {
		name   string
		modify func(*Config)
	}{
		{"no targets", func(c *Config) { c.Targets = nil }},
		{"no rounds", func(c *Config) { c.Rounds = 0 }},
		{"short duration", func(c *Config) { c.Duration = time.Millisecond }},
		{"negative warm-up", func(c *Config) { c.Warmup = -time.Second }},
		{"fewer connections than threads", func(c *Config) { c.Connections = 1 }},
		{"no workers", func(c *Config) { c.Workers = 0 }},
		{"empty body", func(c *Config) { c.BodySize = 0 }},
		{"negative hosts", func(c *Config) { c.ExtraHosts = -1 }},
		{"bad host", func(c *Config) { c.Host = "bench.test; evil" }},
		{"no work dir", func(c *Config) { c.WorkDir = "" }},
	}
	base := valid()
	if err := base.Validate(); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.modify(&c)
			if err := c.Validate(); err == nil {
				t.Error("accepted")
			}
		})
	}
}

// The portico target follows the binary's contract: flags, manifests,
// /readyz, and the benchmark route over TLS.
func TestExecutePorticoContract(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real load")
	}
	requirePrograms(t, "wrk", "nginx")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(fakePorticoEnv, "1")
	targets, err := SelectTargets(Targets(), []string{"portico"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Targets: targets, Rounds: 1, Duration: time.Second, Connections: 2, Threads: 1, Workers: 1,
		Host: "bench.example.test", BodySize: 100, WorkDir: t.TempDir(), ExtraHosts: 2,
		Programs: map[string]string{"portico": self},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	runs, err := Execute(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 || runs[0].Err != nil {
		t.Fatalf("runs = %+v", runs)
	}
	if r := runs[0]; r.Result.Requests == 0 || r.Result.Errors != 0 || r.Memory.RSS <= 0 {
		t.Errorf("run = %+v", r)
	}
}

// Cancelling stops the load at once and reports that the benchmark is
// incomplete.
func TestExecuteStopsWhenCancelled(t *testing.T) {
	requirePrograms(t, "wrk", "nginx")
	targets, err := SelectTargets(Targets(), []string{"direct", "nginx"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Targets: targets, Rounds: 3, Duration: time.Minute, Connections: 1, Threads: 1, Workers: 1,
		Host: "bench.example.test", BodySize: 100, WorkDir: t.TempDir(),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	runs, err := Execute(ctx, cfg)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the context's error", err)
	}
	if len(runs) != 1 || runs[0].Err == nil {
		t.Errorf("runs = %+v, want one interrupted run", runs)
	}
	// A generous bound: the one-minute run must not have completed.
	if elapsed := time.Since(start); elapsed > 45*time.Second {
		t.Errorf("took %s after cancellation", elapsed)
	}
}
