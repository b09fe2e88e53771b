package churn

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"portico.dev/portico/bench/loadbench"
)

// Target is one TLS server under churn.
type Target interface {
	Name() string
	// Addr is the loopback address handshakes go to.
	Addr() string
	// SetCertificate replaces host i's certificate.
	SetCertificate(ctx context.Context, i int, kp KeyPair) error
	// EditRoute changes host i's routing (version picks an extra path), the
	// other kind of change a cluster sees.
	EditRoute(ctx context.Context, i, version int) error
	Processes() []*loadbench.Process
	Stop()
}

const (
	namespace    = "churn"
	serviceName  = "churn-backend"
	ingressClass = "portico"
)

// Portico is Portico in Kubernetes mode, fed through the API server: a
// change is an Update call, seen by Portico's informers.
type Portico struct {
	client kubernetes.Interface
	proc   *loadbench.Process
	addr   string
}

// StartPortico creates one Secret and one Ingress per host, starts
// Portico against kubeconfig and waits until every host serves its own
// certificate.
func StartPortico(ctx context.Context, bin, kubeconfig, dir string, client kubernetes.Interface, pairs []KeyPair, roots *x509.CertPool, workers int) (*Portico, error) {
	if err := createObjects(ctx, client, pairs); err != nil {
		return nil, err
	}
	var addrs [3]string
	for i := range addrs {
		p, err := loadbench.FreeLoopbackPort()
		if err != nil {
			return nil, err
		}
		addrs[i] = net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	}
	argv := []string{bin,
		"--kubeconfig", kubeconfig,
		"--watch-namespaces", namespace,
		"--leader-election-namespace", namespace,
		"--https-addr", addrs[0], "--http-addr", addrs[1], "--admin-addr", addrs[2],
		"--log-level", "warn",
	}
	proc, err := loadbench.StartProcess("portico", argv, []string{"GOMAXPROCS=" + strconv.Itoa(workers)}, filepath.Join(dir, "portico.log"))
	if err != nil {
		return nil, err
	}
	p := &Portico{client: client, proc: proc, addr: addrs[0]}
	if err := waitReady(ctx, proc, "http://"+addrs[2]+"/readyz"); err != nil {
		p.Stop()
		return nil, err
	}
	if err := waitServing(ctx, proc, p.addr, pairs, roots); err != nil {
		p.Stop()
		return nil, fmt.Errorf("portico: %w: %s", err, proc.LogTail())
	}
	return p, nil
}

func (p *Portico) Name() string                    { return "portico" }
func (p *Portico) Addr() string                    { return p.addr }
func (p *Portico) Processes() []*loadbench.Process { return []*loadbench.Process{p.proc} }
func (p *Portico) Stop()                           { p.proc.Stop() }

func (p *Portico) SetCertificate(ctx context.Context, i int, kp KeyPair) error {
	_, err := p.client.CoreV1().Secrets(namespace).Update(ctx, tlsSecret(i, kp), metav1.UpdateOptions{})
	return err
}

func (p *Portico) EditRoute(ctx context.Context, i, version int) error {
	_, err := p.client.NetworkingV1().Ingresses(namespace).Update(ctx, ingress(i, version), metav1.UpdateOptions{})
	return err
}

func createObjects(ctx context.Context, client kubernetes.Interface, pairs []KeyPair) error {
	core := client.CoreV1()
	if _, err := core.Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	class := &networkingv1.IngressClass{
		ObjectMeta: metav1.ObjectMeta{Name: ingressClass},
		Spec:       networkingv1.IngressClassSpec{Controller: "portico.dev/controller"},
	}
	if _, err := client.NetworkingV1().IngressClasses().Create(ctx, class, metav1.CreateOptions{}); err != nil {
		return err
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: serviceName, Namespace: namespace},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
	}
	if _, err := core.Services(namespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		return err
	}
	// Created in parallel: thousands of objects one by one would take
	// minutes before the measurement even starts.
	errs := make(chan error, len(pairs))
	sem := make(chan struct{}, 16)
	for i, kp := range pairs {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			if _, err := core.Secrets(namespace).Create(ctx, tlsSecret(i, kp), metav1.CreateOptions{}); err != nil {
				errs <- err
				return
			}
			_, err := client.NetworkingV1().Ingresses(namespace).Create(ctx, ingress(i, 0), metav1.CreateOptions{})
			errs <- err
		}()
	}
	for range pairs {
		if err := <-errs; err != nil {
			return fmt.Errorf("create objects: %w", err)
		}
	}
	return nil
}

func tlsSecret(i int, kp KeyPair) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("brand-%d", i), Namespace: namespace},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: kp.CertPEM, corev1.TLSPrivateKeyKey: kp.KeyPEM},
	}
}

func ingress(i, version int) *networkingv1.Ingress {
	prefix := networkingv1.PathTypePrefix
	class := ingressClass
	backend := networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
		Name: serviceName, Port: networkingv1.ServiceBackendPort{Name: "http"},
	}}
	paths := []networkingv1.HTTPIngressPath{{Path: "/", PathType: &prefix, Backend: backend}}
	if version > 0 {
		paths = append(paths, networkingv1.HTTPIngressPath{Path: fmt.Sprintf("/v%d", version), PathType: &prefix, Backend: backend})
	}
	host := HostName(i)
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("brand-%d", i), Namespace: namespace},
		Spec: networkingv1.IngressSpec{
			IngressClassName: &class,
			TLS:              []networkingv1.IngressTLS{{Hosts: []string{host}, SecretName: fmt.Sprintf("brand-%d", i)}},
			Rules: []networkingv1.IngressRule{{
				Host:             host,
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: paths}},
			}},
		},
	}
}

// Nginx is nginx serving the same certificates from files: a change
// rewrites files and reloads it (SIGHUP), which is how a config-file proxy
// takes a new certificate.
type Nginx struct {
	dir      string
	addr     string
	hosts    int
	versions []int
	proc     *loadbench.Process
}

// StartNginx writes every host's certificate and a server block per host,
// starts nginx with workers worker processes, and waits until every host
// serves its certificate.
func StartNginx(ctx context.Context, dir string, pairs []KeyPair, fallback KeyPair, roots *x509.CertPool, workers int) (*Nginx, error) {
	if err := os.MkdirAll(filepath.Join(dir, "certs"), 0o700); err != nil {
		return nil, err
	}
	for i, kp := range pairs {
		if err := writePair(dir, strconv.Itoa(i), kp); err != nil {
			return nil, err
		}
	}
	if err := writePair(dir, "default", fallback); err != nil {
		return nil, err
	}
	port, err := loadbench.FreeLoopbackPort()
	if err != nil {
		return nil, err
	}
	n := &Nginx{dir: dir, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), hosts: len(pairs), versions: make([]int, len(pairs))}
	if err := n.writeConfig(workers); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "nginx.conf")
	n.proc, err = loadbench.StartProcess("nginx", []string{"nginx", "-p", dir + "/", "-c", conf, "-e", filepath.Join(dir, "error.log")}, nil, filepath.Join(dir, "output.log"))
	if err != nil {
		return nil, err
	}
	if err := waitServing(ctx, n.proc, n.addr, pairs, roots); err != nil {
		n.Stop()
		return nil, fmt.Errorf("nginx: %w: %s", err, n.proc.LogTail())
	}
	return n, nil
}

func (n *Nginx) Name() string                    { return "nginx" }
func (n *Nginx) Addr() string                    { return n.addr }
func (n *Nginx) Processes() []*loadbench.Process { return []*loadbench.Process{n.proc} }
func (n *Nginx) Stop()                           { n.proc.Stop() }

func (n *Nginx) SetCertificate(_ context.Context, i int, kp KeyPair) error {
	if err := writePair(n.dir, strconv.Itoa(i), kp); err != nil {
		return err
	}
	return n.reload()
}

func (n *Nginx) EditRoute(_ context.Context, i, version int) error {
	n.versions[i] = version
	if err := n.writeConfig(0); err != nil {
		return err
	}
	return n.reload()
}

func (n *Nginx) reload() error {
	return syscall.Kill(n.proc.PID(), syscall.SIGHUP)
}

// writeConfig renders nginx.conf; workers 0 keeps the count already written.
func (n *Nginx) writeConfig(workers int) error {
	conf := filepath.Join(n.dir, "nginx.conf")
	if workers == 0 {
		old, err := os.ReadFile(conf)
		if err != nil {
			return err
		}
		line, _, _ := strings.Cut(strings.SplitN(string(old), "worker_processes ", 2)[1], ";")
		workers, _ = strconv.Atoi(line)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `daemon off;
master_process on;
worker_processes %[1]d;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log error;
events { worker_connections 4096; }
http {
    access_log off;
    server_tokens off;
    ssl_protocols TLSv1.2 TLSv1.3;
    server_names_hash_max_size 65536;
    server_names_hash_bucket_size 128;
    client_body_temp_path %[2]s/client_body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    server {
        listen %[3]s ssl default_server;
        ssl_certificate %[2]s/certs/default.crt;
        ssl_certificate_key %[2]s/certs/default.key;
        return 404;
    }
`, workers, n.dir, n.addr)
	for i := range n.hosts {
		fmt.Fprintf(&b, "    server {\n        listen %s ssl;\n        server_name %s;\n        ssl_certificate %s/certs/%d.crt;\n        ssl_certificate_key %s/certs/%d.key;\n        location / { return 200; }\n",
			n.addr, HostName(i), n.dir, i, n.dir, i)
		if v := n.versions[i]; v > 0 {
			fmt.Fprintf(&b, "        location /v%d { return 200; }\n", v)
		}
		b.WriteString("    }\n")
	}
	b.WriteString("}\n")
	return writeAtomic(conf, []byte(b.String()))
}

func writePair(dir, name string, kp KeyPair) error {
	if err := writeAtomic(filepath.Join(dir, "certs", name+".key"), kp.KeyPEM); err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, "certs", name+".crt"), kp.CertPEM)
}

// writeAtomic replaces a file by rename, so a reload never reads half of it.
func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func waitReady(ctx context.Context, proc *loadbench.Process, url string) error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if exited, err := proc.Exited(); exited {
			return fmt.Errorf("%s exited (%v): %s", proc.Name, err, proc.LogTail())
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready after 2 minutes: %s", proc.Name, proc.LogTail())
}

// waitServing waits until every host is served its own certificate.
func waitServing(ctx context.Context, proc *loadbench.Process, addr string, pairs []KeyPair, roots *x509.CertPool) error {
	deadline := time.Now().Add(3 * time.Minute)
	for i := 0; i < len(pairs); {
		if exited, err := proc.Exited(); exited {
			return fmt.Errorf("%s exited (%v)", proc.Name, err)
		}
		serial, err := ServedSerial(ctx, addr, HostName(i), roots)
		if err == nil && serial == pairs[i].Serial {
			i++
			continue
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("host %s not served its certificate after 3 minutes (serial %q, %v)", HostName(i), serial, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}
