package controlplane

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Binary names looked up in Options.BinDir (etcd also on PATH, where
// Debian's etcd-server package puts it).
const (
	etcdBin       = "etcd"
	apiServerBin  = "kube-apiserver"
	controllerBin = "kube-controller-manager"
)

// ServiceClusterIPRange is the range the API server allocates ClusterIPs from.
const ServiceClusterIPRange = "10.96.0.0/16"

// Options configures Start.
type Options struct {
	// Dir holds the PKI, kubeconfigs, etcd data and process logs. Empty means
	// a new temporary directory, removed by Stop; a given Dir is kept.
	Dir string
	// BinDir holds kube-apiserver and kube-controller-manager (and may hold
	// etcd). Empty means DefaultBinDir().
	BinDir string
	// Logger receives progress messages; nil means slog.Default().
	Logger *slog.Logger
	// ExtraAPIServerArgs and ExtraControllerManagerArgs are appended to the
	// generated flags (later flags win), e.g. for feature gates.
	ExtraAPIServerArgs         []string
	ExtraControllerManagerArgs []string
}

// ControlPlane is a running etcd, kube-apiserver and kube-controller-manager.
type ControlPlane struct {
	dir        string
	removeDir  bool
	binDir     string
	etcdPath   string
	log        *slog.Logger
	pki        *pki
	kubeconfig string
	host       string
	apiArgs    []string
	startup    time.Duration

	spawner *spawner

	mu         sync.Mutex
	etcd       *Process
	apiserver  *Process
	controller *Process
	client     kubernetes.Interface
	stopOnce   sync.Once
}

// DefaultBinDir is $PORTICO_CONTROLPLANE_BIN, else bin/controlplane in the
// repository that contains the working directory (go test runs in the
// package directory, so this finds the repository from any test).
func DefaultBinDir() string {
	if d := os.Getenv("PORTICO_CONTROLPLANE_BIN"); d != "" {
		return d
	}
	if root := repoRoot(); root != "" {
		return filepath.Join(root, "bin", "controlplane")
	}
	return filepath.Join("bin", "controlplane")
}

// repoRoot walks up from the working directory to the go.mod of module
// portico.dev/portico (skipping nested modules such as the tools module).
func repoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if f, err := os.Open(filepath.Join(dir, "go.mod")); err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				if fields := strings.Fields(sc.Text()); len(fields) == 2 && fields[0] == "module" {
					if fields[1] == "portico.dev/portico" {
						f.Close()
						return dir
					}
					break
				}
			}
			f.Close()
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// Available reports whether the control-plane binaries can be found; the
// error says how to get them.
func Available(binDir string) error {
	if binDir == "" {
		binDir = DefaultBinDir()
	}
	var missing []string
	for _, b := range []string{apiServerBin, controllerBin} {
		if !isExecutable(filepath.Join(binDir, b)) {
			missing = append(missing, filepath.Join(binDir, b))
		}
	}
	if _, err := findEtcd(binDir); err != nil {
		missing = append(missing, "etcd (Debian package etcd-server)")
	}
	if len(missing) > 0 {
		return fmt.Errorf("control plane binaries missing: %s; run make controlplane first", strings.Join(missing, ", "))
	}
	return nil
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

func findEtcd(binDir string) (string, error) {
	if p := filepath.Join(binDir, etcdBin); isExecutable(p) {
		return p, nil
	}
	return exec.LookPath(etcdBin)
}

// Start starts etcd, kube-apiserver and kube-controller-manager on free
// loopback ports and returns once the API server's /readyz is ok, the
// controller manager is healthy and its controllers have created the
// default ServiceAccount. ctx bounds the start-up only: the processes run
// until Stop. On error everything started so far is stopped.
func Start(ctx context.Context, opts Options) (_ *ControlPlane, err error) {
	began := time.Now()
	cp := &ControlPlane{binDir: opts.BinDir, log: opts.Logger, dir: opts.Dir}
	if cp.binDir == "" {
		cp.binDir = DefaultBinDir()
	}
	if cp.log == nil {
		cp.log = slog.Default()
	}
	if err := Available(cp.binDir); err != nil {
		return nil, err
	}
	if cp.etcdPath, err = findEtcd(cp.binDir); err != nil {
		return nil, err
	}
	// Children run in Dir, where a relative binary path would not resolve.
	if cp.binDir, err = filepath.Abs(cp.binDir); err != nil {
		return nil, err
	}
	if cp.etcdPath, err = filepath.Abs(cp.etcdPath); err != nil {
		return nil, err
	}
	if cp.dir == "" {
		if cp.dir, err = os.MkdirTemp("", "portico-controlplane-"); err != nil {
			return nil, err
		}
		cp.removeDir = true
	} else if err := os.MkdirAll(cp.dir, 0o755); err != nil {
		return nil, err
	}
	if cp.dir, err = filepath.Abs(cp.dir); err != nil {
		return nil, err
	}
	cp.spawner = newSpawner()
	defer func() {
		if err != nil {
			cp.Stop()
		}
	}()

	if cp.pki, err = writePKI(filepath.Join(cp.dir, "pki")); err != nil {
		return nil, fmt.Errorf("generate certificates: %w", err)
	}
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	etcdClient, etcdPeer, apiPort, kcmPort := ports[0], ports[1], ports[2], ports[3]
	cp.host = "https://127.0.0.1:" + strconv.Itoa(apiPort)

	cp.kubeconfig = filepath.Join(cp.dir, "kubeconfig")
	if err := writeKubeconfig(cp.kubeconfig, cp.host, cp.pki.caPEM, adminUser, cp.pki.adminToken); err != nil {
		return nil, err
	}
	kcmKubeconfig := filepath.Join(cp.dir, "controller-manager.kubeconfig")
	if err := writeKubeconfig(kcmKubeconfig, cp.host, cp.pki.caPEM, controllerUser, cp.pki.controllerTok); err != nil {
		return nil, err
	}

	// etcd: one member, client and peer on loopback only.
	clientURL := fmt.Sprintf("http://127.0.0.1:%d", etcdClient)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPeer)
	etcdArgs := []string{
		"--name=portico",
		"--data-dir=" + filepath.Join(cp.dir, "etcd"),
		"--listen-client-urls=" + clientURL,
		"--advertise-client-urls=" + clientURL,
		"--listen-peer-urls=" + peerURL,
		"--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=portico=" + peerURL,
		"--initial-cluster-state=new",
		"--logger=zap",
		"--log-outputs=stderr",
	}
	cp.log.Info("starting etcd", "client", clientURL)
	if cp.etcd, err = cp.start("etcd", cp.etcdPath, etcdArgs); err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, cp.etcd, &http.Client{Transport: noProxy(nil)}, clientURL+"/health", "", `"health":"true"`, time.Minute); err != nil {
		return nil, cp.etcd.failure(err)
	}

	cp.apiArgs = []string{
		"--etcd-servers=" + clientURL,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(apiPort),
		// The API server accepts a loopback advertise address, but its
		// endpoint reconciler would then write 127.0.0.1 into the
		// default/kubernetes Endpoints, which validation rejects ("may not
		// be in the loopback range") on every sync. Upstream's own test
		// server pairs a loopback address with reconciler "none", and so do
		// we: nothing here needs endpoints for the kubernetes Service.
		"--advertise-address=127.0.0.1",
		"--endpoint-reconciler-type=none",
		"--cert-dir=" + filepath.Join(cp.dir, "apiserver"),
		"--tls-cert-file=" + cp.pki.servingFile,
		"--tls-private-key-file=" + cp.pki.servingKey,
		"--client-ca-file=" + cp.pki.caFile,
		"--token-auth-file=" + cp.pki.tokenFile,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + cp.pki.saPubFile,
		"--service-account-signing-key-file=" + cp.pki.saKeyFile,
		// RBAC so the deploy manifests' roles are enforced in dry-runs;
		// Node is what real clusters run alongside it.
		"--authorization-mode=Node,RBAC",
		"--service-cluster-ip-range=" + ServiceClusterIPRange,
		"--profiling=false",
		// Close watches on SIGTERM instead of letting open watch streams
		// hold http.Server.Shutdown for the full --request-timeout (60s):
		// StopAPIServer is used by tests and should take seconds.
		"--shutdown-watch-termination-grace-period=2s",
	}
	cp.apiArgs = append(cp.apiArgs, opts.ExtraAPIServerArgs...)
	if err := cp.startAPIServer(ctx); err != nil {
		return nil, err
	}

	kcmArgs := []string{
		"--kubeconfig=" + kcmKubeconfig,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(kcmPort),
		"--cert-dir=" + filepath.Join(cp.dir, "controller-manager"),
		"--tls-cert-file=" + cp.pki.servingFile,
		"--tls-private-key-file=" + cp.pki.servingKey,
		// kube-controller-manager v1.37 has no cloud controllers left (they
		// live in cloud-controller-manager), so the default set is all we
		// need: endpointslice, endpointslice-mirroring, namespace,
		// serviceaccount(-token), garbage collector, deployment/replicaset…
		"--controllers=*",
		"--use-service-account-credentials=true",
		"--service-account-private-key-file=" + cp.pki.saKeyFile,
		"--root-ca-file=" + cp.pki.caFile,
		"--cluster-signing-cert-file=" + cp.pki.caFile,
		"--cluster-signing-key-file=" + cp.pki.caKeyFile,
		"--cluster-name=portico",
		// One instance: leader election would only delay start-up.
		"--leader-elect=false",
		"--profiling=false",
	}
	kcmArgs = append(kcmArgs, opts.ExtraControllerManagerArgs...)
	cp.log.Info("starting kube-controller-manager")
	if cp.controller, err = cp.start("kube-controller-manager", filepath.Join(cp.binDir, controllerBin), kcmArgs); err != nil {
		return nil, err
	}
	kcmURL := fmt.Sprintf("https://127.0.0.1:%d/healthz", kcmPort)
	if err := waitHTTP(ctx, cp.controller, cp.httpClient(), kcmURL, "", "ok", 2*time.Minute); err != nil {
		return nil, cp.controller.failure(err)
	}
	// The service-account controller creating default/default shows the
	// controllers have synced their informers and are acting.
	if err := cp.waitDefaultServiceAccount(ctx, 2*time.Minute); err != nil {
		return nil, cp.controller.failure(err)
	}
	cp.startup = time.Since(began)
	cp.log.Info("control plane ready", "server", cp.host, "kubeconfig", cp.kubeconfig, "startup", cp.startup.Round(time.Millisecond))
	return cp, nil
}

func (cp *ControlPlane) start(name, bin string, args []string) (*Process, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = cp.dir
	cmd.Env = os.Environ()
	if runtime.GOARCH != "amd64" {
		// etcd 3.4 refuses other architectures unless told otherwise.
		cmd.Env = append(cmd.Env, "ETCD_UNSUPPORTED_ARCH="+runtime.GOARCH)
	}
	return startProcess(cp.spawner.start, name, filepath.Join(cp.dir, name+".log"), cmd, true)
}

func (cp *ControlPlane) startAPIServer(ctx context.Context) error {
	cp.log.Info("starting kube-apiserver", "server", cp.host)
	p, err := cp.start("kube-apiserver", filepath.Join(cp.binDir, apiServerBin), cp.apiArgs)
	if err != nil {
		return err
	}
	cp.mu.Lock()
	cp.apiserver = p
	cp.mu.Unlock()
	if err := waitHTTP(ctx, p, cp.httpClient(), cp.host+"/readyz", cp.pki.adminToken, "ok", 3*time.Minute); err != nil {
		return p.failure(err)
	}
	return nil
}

func (cp *ControlPlane) waitDefaultServiceAccount(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		_, last = cp.Client().CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{})
		if last == nil {
			return nil
		}
		if !apierrors.IsNotFound(last) && ctx.Err() == nil {
			cp.log.Debug("waiting for default service account", "err", last)
		}
		if cp.controller.exited() {
			return errExited
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("default ServiceAccount not created: %v (%w)", last, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// httpClient trusts the test CA and never uses a proxy: every address the
// control plane has is loopback.
func (cp *ControlPlane) httpClient() *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(cp.pki.caPEM)
	return &http.Client{Transport: noProxy(&tls.Config{RootCAs: pool}), Timeout: 5 * time.Second}
}

func noProxy(tc *tls.Config) *http.Transport {
	return &http.Transport{Proxy: nil, TLSClientConfig: tc, DisableKeepAlives: true}
}

// waitHTTP polls url until it answers 200 with a body containing want, the
// process exits, or the timeout or ctx ends.
func waitHTTP(ctx context.Context, p *Process, c *http.Client, url, token, want string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last string
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.Contains(string(body), want) {
				return nil
			}
			last = fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
		} else {
			last = err.Error()
		}
		if p.exited() {
			return errExited
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %s (%w)", url, last, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// freePorts returns n distinct free loopback ports. The listeners are held
// until all are chosen so the kernel cannot hand out one twice; a process
// elsewhere can still take a port before our child binds it, which shows as
// a start failure with the bind error in the log tail.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// writeKubeconfig writes a kubeconfig by hand: client-go's clientcmd would
// pull github.com/spf13/pflag into the root module's graph.
func writeKubeconfig(path, server string, caPEM []byte, user, token string) error {
	const tmpl = `apiVersion: v1
kind: Config
clusters:
- name: portico
  cluster:
    server: %q
    certificate-authority-data: %s
users:
- name: %q
  user:
    token: %q
contexts:
- name: portico
  context:
    cluster: portico
    user: %q
current-context: portico
`
	cfg := fmt.Sprintf(tmpl, server, base64.StdEncoding.EncodeToString(caPEM), user, token, user)
	return os.WriteFile(path, []byte(cfg), 0o600)
}

// Kubeconfig returns the path of the admin kubeconfig (Dir/kubeconfig).
func (cp *ControlPlane) Kubeconfig() string { return cp.kubeconfig }

// Dir returns the directory holding logs, PKI and etcd data.
func (cp *ControlPlane) Dir() string { return cp.dir }

// Host returns the API server URL.
func (cp *ControlPlane) Host() string { return cp.host }

// StartupTime is how long Start took until the control plane was ready.
func (cp *ControlPlane) StartupTime() time.Duration { return cp.startup }

// RESTConfig returns a new admin (system:masters) client configuration.
func (cp *ControlPlane) RESTConfig() *rest.Config {
	return &rest.Config{
		Host:            cp.host,
		BearerToken:     cp.pki.adminToken,
		TLSClientConfig: rest.TLSClientConfig{CAData: append([]byte(nil), cp.pki.caPEM...)},
		QPS:             100,
		Burst:           200,
	}
}

// Client returns an admin clientset, shared between calls.
func (cp *ControlPlane) Client() kubernetes.Interface {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if cp.client == nil {
		cp.client = kubernetes.NewForConfigOrDie(cp.RESTConfig())
	}
	return cp.client
}

// Processes returns the pid of each running component, by name.
func (cp *ControlPlane) Processes() map[string]int {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	out := map[string]int{}
	for _, p := range []*Process{cp.etcd, cp.apiserver, cp.controller} {
		if p != nil && !p.exited() {
			out[p.name] = p.Pid()
		}
	}
	return out
}

// StopAPIServer stops only the API server (etcd and the controller manager
// keep running), for tests of behaviour while the API is unreachable.
func (cp *ControlPlane) StopAPIServer() {
	cp.mu.Lock()
	p := cp.apiserver
	cp.mu.Unlock()
	if p != nil {
		cp.log.Info("stopping kube-apiserver")
		p.Stop(30 * time.Second)
	}
}

// StartAPIServer restarts a stopped API server on the same address and with
// the same credentials, so existing clients reconnect by themselves, and
// waits for /readyz.
func (cp *ControlPlane) StartAPIServer(ctx context.Context) error {
	cp.mu.Lock()
	p := cp.apiserver
	cp.mu.Unlock()
	if p != nil && !p.exited() {
		return errors.New("kube-apiserver is already running")
	}
	return cp.startAPIServer(ctx)
}

// Stop stops the controller manager, the API server and etcd, in that
// order, and removes Dir if Start created it. It is safe to call more than
// once.
func (cp *ControlPlane) Stop() {
	cp.stopOnce.Do(func() {
		cp.mu.Lock()
		procs := []*Process{cp.controller, cp.apiserver, cp.etcd}
		cp.mu.Unlock()
		for _, p := range procs {
			if p != nil {
				p.Stop(30 * time.Second)
			}
		}
		if cp.spawner != nil {
			cp.spawner.close()
		}
		if cp.removeDir {
			_ = os.RemoveAll(cp.dir)
		}
		cp.log.Info("control plane stopped")
	})
}
