package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/caddyserver/certmagic"
	"k8s.io/client-go/kubernetes"

	"portico.dev/portico/snapshot"
	"portico.dev/portico/tls/acme"
	"portico.dev/portico/tls/acme/secretstorage"
)

// acmeConfig is the ACME part of the command line.
type acmeConfig struct {
	// Directory is the ACME directory URL; empty disables ACME.
	Directory    string
	Email        string
	Namespace    string
	StorageDir   string
	AllIngresses bool
	OnDemand     bool
	OnDemandRate float64
	// CARootsFile, when set, verifies the ACME server instead of the
	// system roots.
	CARootsFile string
}

// registerACMEFlags adds the --acme-* flags to fs.
func registerACMEFlags(fs *flag.FlagSet, c *acmeConfig) {
	fs.StringVar(&c.Directory, "acme-directory", "",
		"ACME directory URL (such as https://acme-v02.api.letsencrypt.org/directory); when set, hosts of Ingresses annotated portico.dev/acme: \"true\" that no TLS Secret serves, and hostnames of Gateway HTTPS listeners with tls.options portico.dev/acme: \"true\", get certificates from this CA; empty disables ACME")
	fs.StringVar(&c.Email, "acme-email", "", "contact address given to the ACME CA for expiry and policy notices")
	fs.StringVar(&c.Namespace, "acme-namespace", "",
		"namespace of the Secrets and Leases replicas share ACME accounts, certificates and locks through (Kubernetes mode); default: the leader-election namespace")
	fs.StringVar(&c.StorageDir, "acme-storage-dir", "",
		"keep ACME state in this folder instead of Secrets: the only choice in manifest mode, for a single replica")
	fs.BoolVar(&c.AllIngresses, "acme-all-ingresses", false,
		"obtain ACME certificates for every served Ingress's hosts that no TLS Secret serves, not only annotated ones (portico.dev/acme: \"false\" opts an Ingress out)")
	fs.BoolVar(&c.OnDemand, "acme-on-demand", false,
		"order a host's certificate at its first TLS handshake instead of as soon as the host appears; still only for hosts an Ingress Portico serves asks ACME for")
	fs.StringVar(&c.CARootsFile, "acme-ca-roots", "",
		"PEM file of the CA certificates that verify the ACME server's HTTPS, for a private ACME CA; default: the system roots")
	fs.Float64Var(&c.OnDemandRate, "acme-on-demand-rate", 10,
		"with --acme-on-demand, at most this many new orders per minute (bursts of 5); handshakes beyond it get the default certificate")
}

// validate checks the ACME flags once the rest of cfg is parsed.
func (c *acmeConfig) validate(cfg *config) error {
	if c.Directory == "" {
		return nil
	}
	if cfg.HTTPAddr == "" {
		return errors.New("--acme-directory needs --http-addr: HTTP-01 challenges are answered on the plain-HTTP listener")
	}
	if c.OnDemandRate <= 0 {
		return errors.New("--acme-on-demand-rate: must be positive")
	}
	if cfg.Source != "kubernetes" && c.StorageDir == "" {
		return errors.New("--acme-directory in manifest mode needs --acme-storage-dir (in Kubernetes mode state is kept in Secrets)")
	}
	if c.Namespace == "" {
		c.Namespace = cfg.LeaderElectionNamespace
	}
	return nil
}

// acmeRuntime is the running ACME manager; the sockets put it between
// their certificates and their default (package frontdoor).
type acmeRuntime struct {
	manager *acme.Manager
}

// startACME creates the ACME manager once the plain-HTTP listener is bound
// (challenges are answered there). It is a no-op without --acme-directory.
func (g *process) startACME(clients *kubeClients) error {
	c := g.cfg.ACME
	if c.Directory == "" {
		return nil
	}
	var client kubernetes.Interface
	if clients != nil {
		client = clients.kube
	}
	var storage certmagic.Storage
	switch {
	case c.StorageDir != "":
		storage = &certmagic.FileStorage{Path: c.StorageDir}
	case client != nil:
		s, err := secretstorage.New(client, secretstorage.Options{Namespace: c.Namespace, Identity: g.cfg.Identity})
		if err != nil {
			return fmt.Errorf("ACME storage: %w", err)
		}
		storage = s
	default:
		return errors.New("--acme-directory needs --acme-storage-dir or Kubernetes mode")
	}
	var roots *x509.CertPool
	if c.CARootsFile != "" {
		pemBytes, err := os.ReadFile(c.CARootsFile)
		if err != nil {
			return fmt.Errorf("--acme-ca-roots: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pemBytes) {
			return fmt.Errorf("--acme-ca-roots: %s holds no PEM certificate", c.CARootsFile)
		}
	}
	hosts := func() []string {
		if s := g.store.Load(); s != nil {
			return s.ACMEHosts
		}
		return nil
	}
	m, err := acme.New(acme.Config{
		DirectoryURL: c.Directory,
		Email:        c.Email,
		Storage:      storage,
		HTTPAddr:     httpListenerAddr(g.server.HTTPAddr()),
		Hosts:        hosts,
		OnDemand:     c.OnDemand,
		OnDemandRate: c.OnDemandRate,
		TrustedRoots: roots,
		// An ACME certificate close to expiry becomes a warning (and an
		// Event) on the Ingress or Gateway that asked for its host.
		OnExpiringChange: g.publisher.rebuild,
		Logger:           g.log,
	})
	if err != nil {
		return fmt.Errorf("--acme-directory: %w", err)
	}
	if err := g.metrics.Registry.Register(m.Collector()); err != nil {
		return fmt.Errorf("ACME metrics: %w", err)
	}
	g.acme = &acmeRuntime{manager: m}
	g.publisher.acmeExpiring = func() map[string]time.Time { return m.Expiring(time.Now()) }
	g.log.Info("ACME enabled", "directory", c.Directory, "storage", fmt.Sprint(storage), "on_demand", c.OnDemand)
	return nil
}

// httpListenerAddr is the address certmagic is told challenges are served
// on; an unspecified IP is left empty so that it matches any address.
func httpListenerAddr(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return ""
	}
	host := ""
	if !tcp.IP.IsUnspecified() {
		host = tcp.IP.String()
	}
	return net.JoinHostPort(host, fmt.Sprint(tcp.Port))
}

// syncACME hands the serving snapshot's ACME hosts to the manager after a
// publish: new hosts are loaded or ordered, removed ones stop renewing.
func (g *process) syncACME(ctx context.Context) {
	if g.acme == nil {
		return
	}
	if s := g.store.Load(); s != nil {
		g.acme.manager.Sync(ctx, s.ACMEHosts)
	}
}

// stopACME ends renewals at shutdown.
func (g *process) stopACME() {
	if g.acme != nil {
		g.acme.manager.Stop()
	}
}

// snapshotACMEConfig is what the builder needs to know of the ACME flags.
func snapshotACMEConfig(cfg *config) snapshot.ACMEConfig {
	return snapshot.ACMEConfig{Enabled: cfg.ACME.Directory != "", AllIngresses: cfg.ACME.AllIngresses}
}
