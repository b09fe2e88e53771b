package loadbench

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSelectTargets(t *testing.T) {
	all := Targets()
	tests := []struct {
		name    string
		names   []string
		want    []string
		wantErr bool
	}{
		{"all but by-name targets by default", nil, []string{"portico", "direct", "direct-tls", "direct-go-tls", "go-fasthttp", "go-epoll", "nginx", "nginx-2tier", "haproxy", "caddy"}, false},
		{"canonical order kept", []string{"nginx", "portico"}, []string{"portico", "nginx"}, false},
		{"a by-name target when named", []string{"go-epoll-gx", "go-epoll"}, []string{"go-epoll", "go-epoll-gx"}, false},
		{"duplicates collapse", []string{"direct", "direct"}, []string{"direct"}, false},
		{"unknown", []string{"nginx", "envoy"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SelectTargets(all, tt.names)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			var names []string
			for _, g := range got {
				names = append(names, g.Name)
			}
			if !slices.Equal(names, tt.want) {
				t.Errorf("got %q, want %q", names, tt.want)
			}
		})
	}
}

// Every target is either special-cased or a chain of templates that exist.
func TestTargetsAreWellFormed(t *testing.T) {
	seen := map[string]bool{}
	for _, tg := range Targets() {
		if seen[tg.Name] {
			t.Errorf("duplicate target %s", tg.Name)
		}
		seen[tg.Name] = true
		if tg.Scheme != "http" && tg.Scheme != "https" {
			t.Errorf("%s: scheme %q", tg.Name, tg.Scheme)
		}
		if (tg.start == nil) == (len(tg.Tiers) == 0) {
			t.Errorf("%s: needs exactly one of start or tiers", tg.Name)
		}
		if tg.Description == "" {
			t.Errorf("%s: no description", tg.Name)
		}
		for _, tier := range tg.Tiers {
			if _, err := templateFS.ReadFile("templates/" + tier.Template); err != nil {
				t.Errorf("%s: %v", tg.Name, err)
			}
		}
	}
}

func templateNames(t *testing.T) []string {
	t.Helper()
	entries, err := templateFS.ReadDir("templates")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// Every nginx template renders, and nginx itself accepts the result when it
// is installed.
func TestNginxTemplates(t *testing.T) {
	nginx, lookErr := exec.LookPath("nginx")
	dir := t.TempDir()
	cert, err := NewSelfSignedCertificate([]string{"bench.example.test"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, cert.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, cert.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, name := range templateNames(t) {
		if !strings.HasSuffix(name, ".nginx.conf") && name != "nginx.conf" {
			continue
		}
		for _, extra := range []int{0, 2} {
			t.Run(name, func(t *testing.T) {
				tierDir := filepath.Join(dir, name, strings.Repeat("x", extra+1))
				if err := os.MkdirAll(tierDir, 0o755); err != nil {
					t.Fatal(err)
				}
				conf, err := RenderTemplate(name, TemplateData{
					Dir: tierDir, ListenAddr: "127.0.0.1:1", NextAddr: "127.0.0.1:2", BackendAddr: "127.0.0.1:2",
					CertFile: certFile, KeyFile: keyFile, Host: "bench.example.test",
					ExtraHosts: ExtraHostNames(extra), Workers: 2, Body: ResponseBody(100),
				})
				if err != nil {
					t.Fatal(err)
				}
				if strings.Contains(string(conf), "<no value>") {
					t.Fatalf("template uses a field that does not exist:\n%s", conf)
				}
				for _, h := range ExtraHostNames(extra) {
					if strings.Contains(name, "routing") || name == "nginx.conf" {
						if !strings.Contains(string(conf), "server_name "+h+";") {
							t.Errorf("no server for %s", h)
						}
					}
				}
				if lookErr != nil {
					t.Skip("nginx not installed; rendered only")
				}
				path := filepath.Join(tierDir, "nginx.conf")
				if err := os.WriteFile(path, conf, 0o644); err != nil {
					t.Fatal(err)
				}
				test := exec.Command(nginx, append([]string{"-t", "-q"}, nginxServer.Args(path, tierDir)...)...)
				if out, err := test.CombinedOutput(); err != nil {
					t.Errorf("nginx -t rejects %s: %v\n%s\n%s", name, err, out, conf)
				}
			})
		}
	}
}

func TestRenderTemplateErrors(t *testing.T) {
	if _, err := RenderTemplate("no-such.conf", TemplateData{}); err == nil {
		t.Error("missing template rendered")
	}
	if _, err := RenderTemplate("backend.nginx.conf", TemplateData{Body: "cost: $5"}); err == nil {
		t.Error("a body nginx would expand rendered")
	}
}

func TestValidHostName(t *testing.T) {
	tests := map[string]bool{
		"bench.example.test":    true,
		"host-1.example.test":   true,
		"a":                     true,
		"":                      false,
		"Bench.example.test":    false,
		"bench..test":           false,
		"-bench.test":           false,
		"bench-.test":           false,
		"bench.test;":           false,
		"bench test":            false,
		strings.Repeat("a", 64): false,
	}
	for in, want := range tests {
		if got := validHostName(in); got != want {
			t.Errorf("validHostName(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestNewSelfSignedCertificate(t *testing.T) {
	now := time.Now()
	cert, err := NewSelfSignedCertificate([]string{"bench.example.test", "host-0.example.test"}, now)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(cert.CertPEM)
	if block == nil {
		t.Fatal("certificate is not PEM")
	}
	parsed, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(parsed)
	for _, name := range []string{"bench.example.test", "host-0.example.test"} {
		if _, err := parsed.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, CurrentTime: now}); err != nil {
			t.Errorf("does not verify for %s: %v", name, err)
		}
	}
	if _, err := parsed.Verify(x509.VerifyOptions{DNSName: "other.test", Roots: roots, CurrentTime: now}); err == nil {
		t.Error("verifies for a name it does not hold")
	}
	if _, err := NewSelfSignedCertificate(nil, now); err == nil {
		t.Error("certificate without names")
	}
}

func TestResponseBody(t *testing.T) {
	for _, n := range []int{1, 13, 100, 4096} {
		if got := ResponseBody(n); len(got) != n || strings.ContainsAny(got, "$\"\\") {
			t.Errorf("ResponseBody(%d) = %q", n, got)
		}
	}
}

func TestRequiredPrograms(t *testing.T) {
	peer := Server{Program: "haproxy", Args: func(c, _ string) []string { return []string{"-f", c} }}
	targets := []Target{
		{Name: "direct"},
		{Name: "nginx", Tiers: []Tier{{Server: nginxServer}}},
		{Name: "haproxy", Tiers: []Tier{{Server: peer}, {Server: nginxServer}}},
	}
	got := RequiredPrograms(targets)
	if want := []string{"wrk", "nginx", "haproxy"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}
