package loadbench

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The HAProxy and Caddy templates render with and without extra hosts, and
// the programs themselves accept the result (haproxy -c, caddy validate)
// when they are installed.
func TestPeerTemplates(t *testing.T) {
	dir := t.TempDir()
	cert, err := NewSelfSignedCertificate(certNames("bench.example.test"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, pemFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), filepath.Join(dir, "tls.pem")
	for path, data := range map[string][]byte{
		certFile: cert.CertPEM,
		keyFile:  cert.KeyPEM,
		pemFile:  append(append([]byte{}, cert.CertPEM...), cert.KeyPEM...),
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		template string
		server   Server
		// want are lines the rendered config holds; {host} is replaced by
		// every routed host in turn.
		want     []string
		wantHost string
	}{
		{
			template: "haproxy.cfg",
			server:   haproxyServer,
			want: []string{
				"nbthread 2",
				"bind 127.0.0.1:1 ssl crt " + pemFile + " alpn h2,http/1.1",
				"acl routed_host req.hdr(host),field(1,:),lower -f ",
				"acl root_prefix path_beg /",
				"use_backend bench_backend if routed_host root_prefix",
				"http-reuse always",
				"server backend 127.0.0.1:2",
			},
		},
		{
			template: "Caddyfile",
			server:   caddyServer,
			want: []string{
				"admin off",
				"auto_https off",
				"bind 127.0.0.1",
				`tls "` + certFile + `" "` + keyFile + `"`,
				"handle /* {",
				"reverse_proxy 127.0.0.1:2 {",
				"keepalive_idle_conns_per_host 256",
			},
			wantHost: "https://{host}:1",
		},
	}
	for _, tt := range tests {
		for _, extra := range []int{0, 2} {
			name := tt.template + "/hosts" + strings.Repeat("+", extra)
			t.Run(name, func(t *testing.T) {
				tierDir := filepath.Join(dir, tt.template, strings.Repeat("x", extra+1))
				if err := os.MkdirAll(tierDir, 0o755); err != nil {
					t.Fatal(err)
				}
				hosts := append([]string{"bench.example.test"}, ExtraHostNames(extra)...)
				hostsFile := filepath.Join(tierDir, "hosts.lst")
				if err := os.WriteFile(hostsFile, []byte(strings.Join(hosts, "\n")+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				conf, err := RenderTemplate(tt.template, TemplateData{
					Dir: tierDir, ListenAddr: "127.0.0.1:1", NextAddr: "127.0.0.1:2", BackendAddr: "127.0.0.1:2",
					CertFile: certFile, KeyFile: keyFile, CertKeyFile: pemFile, HostsFile: hostsFile,
					Host: "bench.example.test", ExtraHosts: ExtraHostNames(extra), Workers: 2, Body: ResponseBody(100),
				})
				if err != nil {
					t.Fatal(err)
				}
				text := string(conf)
				if strings.Contains(text, "<no value>") {
					t.Fatalf("template uses a field that does not exist:\n%s", text)
				}
				for _, w := range tt.want {
					if !strings.Contains(text, w) {
						t.Errorf("config lacks %q:\n%s", w, text)
					}
				}
				if tt.wantHost != "" {
					for _, h := range hosts {
						if w := strings.ReplaceAll(tt.wantHost, "{host}", h); !strings.Contains(text, w) {
							t.Errorf("config lacks %q", w)
						}
					}
				}
				prog, lookErr := exec.LookPath(tt.server.Program)
				if lookErr != nil {
					t.Skipf("%s not installed; rendered only", tt.server.Program)
				}
				path := filepath.Join(tierDir, tt.template)
				if err := os.WriteFile(path, conf, 0o644); err != nil {
					t.Fatal(err)
				}
				cmd := exec.Command(prog, tt.server.ValidateArgs(path, tierDir)...)
				if tt.server.Env != nil {
					cmd.Env = append(os.Environ(), tt.server.Env(tierDir, 2)...)
				}
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Errorf("%s rejects %s: %v\n%s\n%s", tt.server.Program, tt.template, err, out, text)
				}
			})
		}
	}
}

func TestPeerTemplatesRejectUnsafeValues(t *testing.T) {
	tests := []struct {
		template string
		data     TemplateData
	}{
		{"haproxy.cfg", TemplateData{ListenAddr: "127.0.0.1:1", CertKeyFile: "/tmp/a b.pem", HostsFile: "/tmp/h"}},
		{"haproxy.cfg", TemplateData{ListenAddr: "127.0.0.1:1", CertKeyFile: "/tmp/a.pem", HostsFile: "/tmp/$h"}},
		{"Caddyfile", TemplateData{ListenAddr: "127.0.0.1:1", Dir: "/tmp/{x}", CertFile: "/c", KeyFile: "/k", Host: "a"}},
		{"Caddyfile", TemplateData{ListenAddr: "no-port", Dir: "/tmp", CertFile: "/c", KeyFile: "/k", Host: "a"}},
	}
	for _, tt := range tests {
		if _, err := RenderTemplate(tt.template, tt.data); err == nil {
			t.Errorf("%s rendered with %+v", tt.template, tt.data)
		}
	}
}

func TestCaddyEnvStaysInDir(t *testing.T) {
	env := caddyEnv("/w/tier0", 2)
	want := []string{"GOMAXPROCS=2", "HOME=/w/tier0", "XDG_DATA_HOME=/w/tier0/data", "XDG_CONFIG_HOME=/w/tier0/config"}
	if strings.Join(env, " ") != strings.Join(want, " ") {
		t.Errorf("caddyEnv = %q, want %q", env, want)
	}
}
