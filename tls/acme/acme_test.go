package acme_test

import (
	"context"
	stdtls "crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"portico.dev/portico/hack/controlplane"
	porticotls "portico.dev/portico/tls"
	"portico.dev/portico/tls/acme"
	"portico.dev/portico/tls/acme/acmetest"
	"portico.dev/portico/tls/acme/secretstorage"
)

const storageNamespace = "portico-system"

// TestACMEWithPebble runs replicas of the ACME manager against a real ACME
// server (Pebble) and a real API server holding their shared storage.
//
// Pebble validates every HTTP-01 challenge on replica "a"'s plain-HTTP
// listener, as a load balancer would send it to any one replica; the
// others' challenges are answered there too, from the shared state.
func TestACMEWithPebble(t *testing.T) {
	cp := controlplane.StartForTest(t, controlplane.Options{})
	client := cp.Client()
	if _, err := client.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: storageNamespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	httpA, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpPort := httpA.Addr().(*net.TCPAddr).Port
	pb := acmetest.Start(t, httpPort)
	hosts := &hostList{}
	env := &acmeEnv{t: t, client: client, pebble: pb, hosts: hosts, httpPort: httpPort}

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	a := env.replica("a", httpA, acme.Config{})

	t.Run("new Ingress host is issued", func(t *testing.T) {
		a.m.Sync(ctx, hosts.get())
		hosts.add("new.example.test")
		a.m.Sync(ctx, hosts.get())
		a.waitFor(ctx, t, "cert_obtained", "new.example.test")
		a.waitFor(ctx, t, "cached_managed_cert", "new.example.test")
		leaf := a.serves(ctx, t, "new.example.test", pb.IssuerRoots)
		if !hasName(leaf, "new.example.test") {
			t.Errorf("served certificate names %v", leaf.DNSNames)
		}
		if keys := storedKeys(ctx, t, client, "new.example.test"); len(keys) == 0 {
			t.Error("no Secret holds the certificate of new.example.test")
		}
	})

	b := env.replica("b", env.listenHTTP("127.0.0.2"), acme.Config{})
	t.Run("two replicas order once", func(t *testing.T) {
		hosts.add("shared.example.test")
		var wg sync.WaitGroup
		for _, r := range []*replica{a, b} {
			wg.Go(func() { r.m.Sync(ctx, hosts.get()) })
		}
		wg.Wait()
		a.waitFor(ctx, t, "cached_managed_cert", "shared.example.test")
		b.waitFor(ctx, t, "cached_managed_cert", "shared.example.test")
		if n := a.count("cert_obtaining", "shared.example.test") + b.count("cert_obtaining", "shared.example.test"); n != 1 {
			t.Errorf("%d orders for shared.example.test by two replicas, want 1", n)
		}
		leafA := a.serves(ctx, t, "shared.example.test", pb.IssuerRoots)
		leafB := b.serves(ctx, t, "shared.example.test", pb.IssuerRoots)
		if leafA.SerialNumber.Cmp(leafB.SerialNumber) != 0 {
			t.Errorf("replicas serve different certificates: serial %x and %x", leafA.SerialNumber, leafB.SerialNumber)
		}
	})

	t.Run("restart serves stored certificates without ordering", func(t *testing.T) {
		c := env.replica("c", env.listenHTTP("127.0.0.3"), acme.Config{})
		c.m.Sync(ctx, hosts.get())
		for _, h := range hosts.get() {
			c.waitFor(ctx, t, "cached_managed_cert", h)
			c.serves(ctx, t, h, pb.IssuerRoots)
		}
		if n := c.count("cert_obtaining", ""); n != 0 {
			t.Errorf("restarted replica ordered %d certificates, want 0", n)
		}
	})

	t.Run("on-demand orders only routed names, rate-limited", func(t *testing.T) {
		d := env.replica("d", env.listenHTTP("127.0.0.4"), acme.Config{OnDemand: true, OnDemandRate: 0.001, OnDemandBurst: 1})
		leaf := d.serves(ctx, t, "stranger.example.test", nil)
		if leaf.Subject.CommonName != "portico-default" {
			t.Errorf("an SNI no Ingress routes got %q, want the default certificate", leaf.Subject.CommonName)
		}
		hosts.add("ondemand.example.test")
		leaf = d.serves(ctx, t, "ondemand.example.test", pb.IssuerRoots)
		if !hasName(leaf, "ondemand.example.test") {
			t.Errorf("on-demand certificate names %v", leaf.DNSNames)
		}
		// The burst of one is spent: the next new name waits for the rate.
		hosts.add("limited.example.test")
		if leaf := d.serves(ctx, t, "limited.example.test", nil); leaf.Subject.CommonName != "portico-default" {
			t.Errorf("a rate-limited on-demand name got %v, want the default certificate", leaf.DNSNames)
		}
		if n := d.count("cert_obtaining", "ondemand.example.test"); n != 1 {
			t.Errorf("%d orders for ondemand.example.test, want 1", n)
		}
		if n := d.count("cert_obtaining", "stranger.example.test"); n != 0 {
			t.Errorf("%d orders for a name no Ingress routes", n)
		}
		for _, name := range []string{"stranger.example.test", "limited.example.test"} {
			if keys := storedKeys(ctx, t, client, name); len(keys) != 0 {
				t.Errorf("storage holds %v for %s, which was never to be ordered", keys, name)
			}
		}
	})

	t.Run("renewal replaces the served certificate", func(t *testing.T) {
		// A renewal window of the whole lifetime makes every check renew.
		e := env.replica("e", env.listenHTTP("127.0.0.5"), acme.Config{RenewalWindowRatio: 1, RenewCheckInterval: time.Second})
		hosts.add("renew.example.test")
		e.m.Sync(ctx, []string{"renew.example.test"})
		first := e.waitFor(ctx, t, "cert_obtained", "renew.example.test")
		firstLeaf := storedLeaf(ctx, t, e.storage, first["certificate_path"].(string))
		renewed := e.waitRenewal(ctx, t, "renew.example.test")
		renewedLeaf := storedLeaf(ctx, t, e.storage, renewed["certificate_path"].(string))
		if renewedLeaf.SerialNumber.Cmp(firstLeaf.SerialNumber) == 0 {
			t.Fatal("renewal stored the same certificate")
		}
		// The renewed certificate replaces the first in memory right after
		// it is stored; wait for that, bounded by ctx.
		for {
			leaf := e.serves(ctx, t, "renew.example.test", pb.IssuerRoots)
			if leaf.SerialNumber.Cmp(firstLeaf.SerialNumber) != 0 {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("still serving the first certificate (serial %x) after renewal", firstLeaf.SerialNumber)
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
}

type hostList struct {
	mu    sync.Mutex
	hosts atomic.Pointer[[]string]
}

func (h *hostList) get() []string {
	if p := h.hosts.Load(); p != nil {
		return *p
	}
	return nil
}

func (h *hostList) add(host string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	next := append(slices.Clone(h.get()), host)
	slices.Sort(next)
	h.hosts.Store(&next)
}

type acmeEnv struct {
	t        *testing.T
	client   kubernetes.Interface
	pebble   *acmetest.Pebble
	hosts    *hostList
	httpPort int
}

// listenHTTP binds a replica's plain-HTTP listener on ip, at the port
// Pebble validates on.
func (e *acmeEnv) listenHTTP(ip string) net.Listener {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(e.httpPort)))
	if err != nil {
		e.t.Fatal(err)
	}
	return l
}

// replica is one Portico's ACME side: a manager, its plain-HTTP listener
// answering challenges, and an HTTPS listener using the certificate chain.
type replica struct {
	name    string
	m       *acme.Manager
	storage *secretstorage.Storage
	https   string

	mu     sync.Mutex
	events []event
	notify chan struct{}
}

type event struct {
	name string
	data map[string]any
}

func (e *acmeEnv) replica(name string, httpLn net.Listener, cfg acme.Config) *replica {
	t := e.t
	storage, err := secretstorage.New(e.client, secretstorage.Options{
		Namespace: storageNamespace, Identity: "replica-" + name,
		LockTTL: 10 * time.Second, LockPollInterval: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	r := &replica{name: name, storage: storage, notify: make(chan struct{}, 1)}
	cfg.DirectoryURL = e.pebble.Directory
	cfg.Storage = storage
	cfg.HTTPAddr = httpLn.Addr().String()
	cfg.Hosts = e.hosts.get
	cfg.TrustedRoots = e.pebble.ListenerRoots
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo})).With("replica", name)
	cfg.OnEvent = r.record
	r.m, err = acme.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.m.Stop)

	httpSrv := &http.Server{Handler: r.m.HTTPHandler(http.NotFoundHandler()), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = httpSrv.Serve(httpLn) }()
	t.Cleanup(func() { _ = httpSrv.Close() })

	def, err := porticotls.SelfSigned("portico-default", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	fallback := func(*stdtls.ClientHelloInfo) (*stdtls.Certificate, error) { return def.Certificate, nil }
	noSecrets := func(string) bool { return false }
	tlsLn, err := stdtls.Listen("tcp", "127.0.0.1:0", &stdtls.Config{GetCertificate: r.m.Chain(noSecrets, fallback)})
	if err != nil {
		t.Fatal(err)
	}
	r.https = tlsLn.Addr().String()
	go func() {
		for {
			c, err := tlsLn.Accept()
			if err != nil {
				return
			}
			go func() {
				_ = c.(*stdtls.Conn).Handshake()
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() { tlsLn.Close() })
	return r
}

func (r *replica) record(name string, data map[string]any) {
	r.mu.Lock()
	r.events = append(r.events, event{name: name, data: data})
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

func eventHost(e event) []string {
	if id, ok := e.data["identifier"].(string); ok {
		return []string{id}
	}
	if sans, ok := e.data["sans"].([]string); ok {
		return sans
	}
	return nil
}

// count returns how many events named name concern host ("" for any).
func (r *replica) count(name, host string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e.name == name && (host == "" || slices.Contains(eventHost(e), host)) {
			n++
		}
	}
	return n
}

// wait blocks until an event matches, or fails the test when ctx ends.
func (r *replica) wait(ctx context.Context, t *testing.T, what string, match func(event) bool) map[string]any {
	t.Helper()
	for {
		r.mu.Lock()
		for _, e := range r.events {
			if match(e) {
				r.mu.Unlock()
				return e.data
			}
		}
		r.mu.Unlock()
		select {
		case <-r.notify:
		case <-ctx.Done():
			t.Fatalf("replica %s: no %s: %v", r.name, what, ctx.Err())
		}
	}
}

func (r *replica) waitFor(ctx context.Context, t *testing.T, name, host string) map[string]any {
	t.Helper()
	return r.wait(ctx, t, name+" for "+host, func(e event) bool {
		return e.name == name && slices.Contains(eventHost(e), host)
	})
}

func (r *replica) waitRenewal(ctx context.Context, t *testing.T, host string) map[string]any {
	t.Helper()
	return r.wait(ctx, t, "renewal of "+host, func(e event) bool {
		renewal, _ := e.data["renewal"].(bool)
		return e.name == "cert_obtained" && renewal && slices.Contains(eventHost(e), host)
	})
}

// serves returns the certificate the replica's HTTPS listener presents for
// serverName, verified against roots unless roots is nil.
func (r *replica) serves(ctx context.Context, t *testing.T, serverName string, roots *x509.CertPool) *x509.Certificate {
	t.Helper()
	leaf, err := handshake(ctx, r.https, serverName, roots)
	if err != nil {
		t.Fatalf("replica %s, handshake for %s: %v", r.name, serverName, err)
	}
	return leaf
}

// storedKeys lists the storage keys mentioning name.
func storedKeys(ctx context.Context, t *testing.T, client kubernetes.Interface, name string) []string {
	t.Helper()
	list, err := client.CoreV1().Secrets(storageNamespace).List(ctx, metav1.ListOptions{LabelSelector: secretstorage.LabelStorage})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, s := range list.Items {
		if k := s.Annotations[secretstorage.AnnotationKey]; strings.Contains(k, name) {
			keys = append(keys, k)
		}
	}
	return keys
}

func storedLeaf(ctx context.Context, t *testing.T, s *secretstorage.Storage, key string) *x509.Certificate {
	t.Helper()
	data, err := s.Load(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s is not PEM", key)
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}
