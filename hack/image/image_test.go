package main

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The layout make image writes; PORTICO_IMAGE_LAYOUT points elsewhere.
func layoutDir() string {
	if d := os.Getenv("PORTICO_IMAGE_LAYOUT"); d != "" {
		return d
	}
	return "../../bin/image/oci"
}

// builtImages reads the index make image wrote and returns its image for
// each architecture.
func builtImages(t *testing.T) map[string]v1.Image {
	t.Helper()
	idx, err := readIndex(layoutDir())
	if err != nil {
		t.Fatalf("reading the built image: %v", err)
	}
	if mt, _ := idx.MediaType(); mt != types.OCIImageIndex {
		t.Errorf("index media type %s, want %s", mt, types.OCIImageIndex)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	images := make(map[string]v1.Image)
	for _, d := range m.Manifests {
		if d.Platform == nil || d.Platform.OS != "linux" {
			t.Fatalf("index entry %s has platform %v, want linux/<arch>", d.Digest, d.Platform)
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		images[d.Platform.Architecture] = img
	}
	for _, arch := range architectures {
		if images[arch] == nil {
			t.Errorf("no linux/%s image in the index", arch)
		}
	}
	if len(images) != len(architectures) {
		t.Errorf("index has %d images, want %d", len(images), len(architectures))
	}
	return images
}

func TestImageConfig(t *testing.T) {
	elfMachine := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}
	for arch, img := range builtImages(t) {
		t.Run(arch, func(t *testing.T) {
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cf.OS != "linux" || cf.Architecture != arch {
				t.Errorf("config platform %s/%s, want linux/%s", cf.OS, cf.Architecture, arch)
			}
			c := cf.Config
			if c.User == "" || c.User == "0" || c.User == "root" || strings.HasPrefix(c.User, "0:") {
				t.Errorf("runs as user %q, want a non-root user", c.User)
			}
			if c.User != fmt.Sprintf("%d:%d", uid, uid) {
				t.Errorf("user %q, want %d:%d (the chart's runAsUser)", c.User, uid, uid)
			}
			if len(c.Entrypoint) != 1 || c.Entrypoint[0] != binPath {
				t.Errorf("entrypoint %q, want [%s]", c.Entrypoint, binPath)
			}
			for _, p := range exposedPorts {
				if _, ok := c.ExposedPorts[p]; !ok {
					t.Errorf("port %s not exposed: %v", p, c.ExposedPorts)
				}
			}
			for _, l := range []string{"source", "version", "revision", "licenses", "created"} {
				if c.Labels["org.opencontainers.image."+l] == "" {
					t.Errorf("label org.opencontainers.image.%s missing: %v", l, c.Labels)
				}
			}
			layers, err := img.Layers()
			if err != nil {
				t.Fatal(err)
			}
			if len(layers) != 3 {
				t.Errorf("%d layers, want 3 (binary, CA bundle, user)", len(layers))
			}
			for _, l := range layers {
				if mt, _ := l.MediaType(); mt != types.OCILayer {
					t.Errorf("layer media type %s, want %s", mt, types.OCILayer)
				}
			}

			files := readRootfs(t, img)
			bin, ok := files[strings.TrimPrefix(binPath, "/")]
			if !ok {
				t.Fatalf("%s not in the image", binPath)
			}
			f, err := elf.NewFile(bytes.NewReader(bin))
			if err != nil {
				t.Fatalf("%s: %v", binPath, err)
			}
			if f.Machine != elfMachine[arch] {
				t.Errorf("%s is built for %v, want %v", binPath, f.Machine, elfMachine[arch])
			}
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP {
					t.Errorf("%s is dynamically linked; the image has no libc", binPath)
				}
			}
			if ca := files[strings.TrimPrefix(caPath, "/")]; !bytes.Contains(ca, []byte("BEGIN CERTIFICATE")) {
				t.Errorf("%s holds no certificate", caPath)
			}
			if passwd := string(files["etc/passwd"]); !strings.Contains(passwd, fmt.Sprintf(":%d:%d:", uid, uid)) {
				t.Errorf("/etc/passwd does not name uid %d:\n%s", uid, passwd)
			}
		})
	}
}

// readRootfs returns the regular files of the flattened root filesystem.
func readRootfs(t *testing.T, img v1.Image) map[string][]byte {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	files := make(map[string][]byte)
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[strings.TrimPrefix(h.Name, "/")] = b
		}
	}
	return files
}

// unpack writes the image's flattened root filesystem under dir.
func unpack(t *testing.T, img v1.Image, dir string) {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(p, dir+string(filepath.Separator)) {
			t.Fatalf("layer entry %q leaves the root", h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			// Chmod after MkdirAll: the umask must not narrow /tmp's 1777.
			if err := os.Chmod(p, os.FileMode(h.Mode)&os.ModePerm|modeExtras(h.Mode)); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, os.FileMode(h.Mode)&os.ModePerm); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("layer entry %q has type %c, which the image should not hold", h.Name, h.Typeflag)
		}
	}
}

func modeExtras(m int64) os.FileMode {
	if m&0o1000 != 0 {
		return os.ModeSticky
	}
	return 0
}

// TestImageRunsInChroot runs the binary from the host architecture's image,
// unpacked, in a chroot as the image's user: --version, then a start on a
// manifest folder serving one request to a backend on loopback. The same
// root filesystem and user a container runtime would give it, without one.
func TestImageRunsInChroot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chroot and to run as the image's user (CI runs as root; try sudo make test-image)")
	}
	img := builtImages(t)[runtime.GOARCH]
	if img == nil {
		t.Skipf("the image has no %s variant to run here", runtime.GOARCH)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	unpack(t, img, root)

	chrooted := func(ctx context.Context, args ...string) *exec.Cmd {
		// The path is resolved after the chroot, inside the image.
		cmd := exec.CommandContext(ctx, cf.Config.Entrypoint[0], args...)
		cmd.Dir = "/"
		cmd.Env = cf.Config.Env
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Chroot:     root,
			Credential: &syscall.Credential{Uid: uid, Gid: uid},
		}
		return cmd
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	out, err := chrooted(ctx, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("--version in the chroot: %v\n%s", err, out)
	}
	want := "portico " + cf.Config.Labels["org.opencontainers.image.version"] + " (commit " + cf.Config.Labels["org.opencontainers.image.revision"]
	if !strings.HasPrefix(string(out), want) {
		t.Errorf("--version printed %q, want it to start with %q", out, want)
	}
	t.Logf("--version: %s", bytes.TrimSpace(out))

	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "backend saw %s %s", r.Host, r.URL.Path)
	}))
	defer backend.Close()
	_, backendPort, _ := net.SplitHostPort(backend.Listener.Addr().String())

	manifests := filepath.Join(root, "tmp", "manifests")
	if err := os.MkdirAll(manifests, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(manifests, "app.yaml"), []byte(fmt.Sprintf(appManifests, backendPort)), 0o644); err != nil {
		t.Fatal(err)
	}
	httpAddr, adminAddr := freeAddr(t), freeAddr(t)
	var logs bytes.Buffer
	cmd := chrooted(ctx, "--manifests", "/tmp/manifests", "--http-addr", httpAddr, "--https-addr", freeAddr(t), "--admin-addr", adminAddr)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("portico's output:\n%s", logs.String())
		}
	}()

	client := &http.Client{Timeout: 5 * time.Second}
	var body string
	// Bounded: until served or 60 s (a safety net, not a timing check).
	for i := 0; i < 600; i++ {
		select {
		case err := <-done:
			t.Fatalf("portico exited: %v\n%s", err, logs.String())
		default:
		}
		req, _ := http.NewRequest("GET", "http://"+httpAddr+"/hello", nil)
		req.Host = "app.example.test"
		if resp, err := client.Do(req); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				body = string(b)
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if want := "backend saw app.example.test /hello"; body != want {
		t.Fatalf("request through the chrooted portico answered %q, want %q", body, want)
	}
	resp, err := client.Get("http://" + adminAddr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz answered %d", resp.StatusCode)
	}
}

const appManifests = `apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: portico}
spec: {controller: portico.dev/controller}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: app, namespace: default}
spec:
  ingressClassName: portico
  rules:
  - host: app.example.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: app, port: {number: 80}}}}
---
apiVersion: v1
kind: Service
metadata: {name: app, namespace: default}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: app, namespace: default}
subsets:
- addresses: [{ip: 127.0.0.1}]
  ports: [{name: http, port: %s}]
`

// freeAddr is a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
