// Package acme owns certificates Portico obtains itself from an ACME CA
// (Let's Encrypt, or any RFC 8555 server) for hosts no TLS Secret serves:
// issuing, renewing, OCSP stapling and answering HTTP-01 challenges, through
// certmagic, and the policy that keeps it from ordering for names Portico
// does not route.
//
// Which names may get a certificate is decided by the snapshot builder
// (snapshot.Snapshot.ACMEHosts) and read here through Config.Hosts on every
// decision, so a host removed from an Ingress stops being served, renewed or
// ordered with the next snapshot. Replicas share their ACME state (account,
// certificates, challenge tokens, locks) through Config.Storage, normally
// Kubernetes Secrets and Leases (package secretstorage), so N replicas order
// a certificate once and any replica can answer a challenge another started.
package acme

import (
	"context"
	stdtls "crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"golang.org/x/time/rate"

	"portico.dev/portico/hostname"
)

// Config configures a Manager. Zero optional fields take the documented
// default.
type Config struct {
	// DirectoryURL is the ACME directory, such as
	// https://acme-v02.api.letsencrypt.org/directory. Required.
	DirectoryURL string
	// Email is given to the CA for expiry notices; optional.
	Email string
	// Storage holds ACME state and locks, shared by every replica. Required.
	Storage certmagic.Storage
	// HTTPAddr is the address of Portico's plain-HTTP listener, where
	// HTTPHandler answers HTTP-01 challenges. certmagic would otherwise try
	// to bind port 80 itself. Required.
	HTTPAddr string
	// Hosts returns the names ACME may serve now, sorted (the serving
	// snapshot's ACMEHosts). It is called on every decision, so it must be
	// cheap: one atomic load. Required.
	Hosts func() []string
	// OnDemand defers every order to the first TLS handshake for a host,
	// instead of ordering as soon as the host appears. Either way only
	// names Hosts lists are ever ordered.
	OnDemand bool
	// OnDemandRate bounds new on-demand orders per minute across all hosts;
	// handshakes beyond it get the default certificate. Default 10.
	OnDemandRate float64
	// OnDemandBurst is how many on-demand orders may start at once.
	// Default 5.
	OnDemandBurst int
	// TrustedRoots verify the CA's TLS certificate; nil means the system
	// roots. Tests set it to trust a local CA.
	TrustedRoots *x509.CertPool
	// RenewalWindowRatio is the share of a certificate's lifetime, at its
	// end, in which it is renewed. Default certmagic's (one third).
	RenewalWindowRatio float64
	// RenewCheckInterval is how often certificates are checked for renewal.
	// Default certmagic's (10 minutes).
	RenewCheckInterval time.Duration
	// OnEvent, when set, is told every certmagic event (cert_obtaining,
	// cert_obtained, cert_failed, ...) after the manager has handled it.
	OnEvent func(event string, data map[string]any)
	// OnExpiringChange, when set, is called (from the expiry check, hourly)
	// when the set Expiring returns has changed, so the caller can report
	// it again.
	OnExpiringChange func()
	// Logger receives what an operator needs; nil means slog.Default().
	Logger *slog.Logger
}

// Manager obtains, renews and serves ACME certificates.
type Manager struct {
	cfg     Config
	log     *slog.Logger
	cache   *certmagic.Cache
	magic   *certmagic.Config
	issuer  *certmagic.ACMEIssuer
	limiter *rate.Limiter
	metrics *collector

	mu      sync.Mutex
	managed map[string]bool // hosts handed to certmagic (not in on-demand mode)

	// pending is the latest host list given to Sync and not applied yet;
	// one goroutine at a time applies it, so Sync never blocks a publish.
	pendingMu  sync.Mutex
	pending    *pendingSync
	syncActive bool

	stop     chan struct{}
	stopOnce sync.Once
	warned   map[string]time.Time // the last Expiring set, already warned about
}

type pendingSync struct {
	ctx   context.Context
	hosts []string
}

// ErrNotAllowed is returned for a name no Ingress Portico serves asks ACME
// for: such names are never ordered.
var ErrNotAllowed = errors.New("no Ingress Portico serves asks for an ACME certificate for this name")

// errRateLimited is returned when an on-demand order is refused by the rate
// limit; the handshake then gets the default certificate.
var errRateLimited = errors.New("on-demand certificate order refused by --acme-on-demand-rate")

// New checks cfg and returns a Manager. Nothing is ordered until Sync (or,
// in on-demand mode, a handshake); Stop ends renewals.
func New(cfg Config) (*Manager, error) {
	switch {
	case cfg.DirectoryURL == "":
		return nil, errors.New("ACME needs a directory URL")
	case cfg.Storage == nil:
		return nil, errors.New("ACME needs a storage")
	case cfg.Hosts == nil:
		return nil, errors.New("ACME needs the list of hosts it may serve")
	}
	host, port, err := net.SplitHostPort(cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("ACME HTTP-01 challenges need the plain-HTTP listener's address: %w", err)
	}
	portNum, err := strconv.Atoi(port)
	if err != nil || portNum <= 0 {
		return nil, fmt.Errorf("ACME HTTP-01 challenges need the plain-HTTP listener's port, got %q", cfg.HTTPAddr)
	}
	if cfg.OnDemandRate <= 0 {
		cfg.OnDemandRate = 10
	}
	if cfg.OnDemandBurst <= 0 {
		cfg.OnDemandBurst = 5
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("component", "acme")
	zl := newZapLogger(logger)

	m := &Manager{
		cfg:     cfg,
		log:     logger,
		limiter: rate.NewLimiter(rate.Limit(cfg.OnDemandRate/60), cfg.OnDemandBurst),
		managed: make(map[string]bool),
	}
	m.metrics = newCollector(m)
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return m.magic, nil },
		RenewCheckInterval: cfg.RenewCheckInterval,
		Logger:             zl,
	})
	magic := certmagic.Config{
		RenewalWindowRatio: cfg.RenewalWindowRatio,
		Storage:            cfg.Storage,
		Logger:             zl,
		OnEvent:            m.onEvent,
	}
	if cfg.OnDemand {
		magic.OnDemand = &certmagic.OnDemandConfig{DecisionFunc: m.decide}
	}
	m.magic = certmagic.New(m.cache, magic)
	m.issuer = certmagic.NewACMEIssuer(m.magic, certmagic.ACMEIssuer{
		CA:     cfg.DirectoryURL,
		Email:  cfg.Email,
		Agreed: true,
		// The HTTPS listener does not offer the acme-tls/1 protocol, so
		// TLS-ALPN-01 cannot be answered; HTTP-01 is answered by
		// HTTPHandler on the plain-HTTP listener. Pointing certmagic at
		// that listener's address makes its own challenge server find the
		// port taken and leave the answering to us.
		DisableTLSALPNChallenge: true,
		ListenHost:              host,
		AltHTTPPort:             portNum,
		TrustedRoots:            cfg.TrustedRoots,
		Logger:                  zl,
	})
	m.magic.Issuers = []certmagic.Issuer{m.issuer}
	m.stop = make(chan struct{})
	m.warned = make(map[string]time.Time)
	go m.watchExpiry()
	return m, nil
}

// ExpiryWarning is how long before NotAfter an ACME certificate that is
// still not renewed gets a warning: renewal starts far earlier (a third of
// the lifetime), so reaching it means renewals keep failing.
const ExpiryWarning = 14 * 24 * time.Hour

// watchExpiry logs a warning, once per certificate, for every ACME
// certificate served within ExpiryWarning of its expiry, until Stop.
func (m *Manager) watchExpiry() {
	ticker := time.NewTicker(time.Hour)
	defer ticker.Stop()
	for {
		m.warnExpiring(time.Now())
		select {
		case <-m.stop:
			return
		case <-ticker.C:
		}
	}
}

func (m *Manager) warnExpiring(now time.Time) {
	expiring := m.Expiring(now)
	changed := len(expiring) != len(m.warned)
	for host, notAfter := range expiring {
		if m.warned[host].Equal(notAfter) {
			continue
		}
		changed = true
		m.log.Warn("ACME certificate expires in less than 14 days and has not been renewed; check the renewal errors logged for this host",
			"host", host, "not_after", notAfter.UTC().Format(time.RFC3339))
	}
	m.warned = expiring
	if changed && m.cfg.OnExpiringChange != nil {
		m.cfg.OnExpiringChange()
	}
}

// Expiring returns the hosts whose ACME certificate expires within
// ExpiryWarning of now, with its NotAfter.
func (m *Manager) Expiring(now time.Time) map[string]time.Time {
	out := make(map[string]time.Time)
	for host, notAfter := range m.Expiry() {
		if !now.Add(ExpiryWarning).Before(notAfter) {
			out[host] = notAfter
		}
	}
	return out
}

// Allowed reports whether name, as a client sent it in SNI or in the Host
// header, may be served (and ordered) by ACME now: whether the sorted
// Config.Hosts list holds it, ignoring case and a trailing dot.
func (m *Manager) Allowed(name string) bool {
	_, found := slices.BinarySearch(m.cfg.Hosts(), hostname.Normalize(name))
	return found
}

// decide is certmagic's on-demand gate, asked before a handshake loads or
// orders a certificate for a name not yet in memory.
func (m *Manager) decide(_ context.Context, name string) error {
	if !m.Allowed(name) {
		m.metrics.refused.WithLabelValues("not_allowed").Inc()
		return ErrNotAllowed
	}
	return nil
}

func (m *Manager) onEvent(_ context.Context, event string, data map[string]any) error {
	// Refusals are ErrNoRetry: certmagic would otherwise retry the order
	// with backoff, holding an on-demand handshake for minutes.
	var err error
	switch event {
	case "cert_obtaining":
		name, _ := data["identifier"].(string)
		renewal, _ := data["renewal"].(bool)
		switch {
		case !m.Allowed(name):
			// A host removed from every Ingress while its order waited for
			// the lock, or a renewal of one no longer routed.
			m.metrics.refused.WithLabelValues("not_allowed").Inc()
			err = certmagic.ErrNoRetry{Err: fmt.Errorf("%s: %w", name, ErrNotAllowed)}
		case m.cfg.OnDemand && !renewal && !m.limiter.Allow():
			m.metrics.refused.WithLabelValues("rate_limited").Inc()
			m.log.Warn("on-demand certificate order refused by the rate limit; the handshake gets the default certificate", "host", name)
			err = certmagic.ErrNoRetry{Err: errRateLimited}
		default:
			m.log.Info("ordering certificate", "host", name, "renewal", renewal)
		}
	case "cert_obtained":
		name, _ := data["identifier"].(string)
		renewal, _ := data["renewal"].(bool)
		m.metrics.orders.WithLabelValues(resultLabel("obtained", renewal)).Inc()
		m.log.Info("certificate obtained", "host", name, "renewal", renewal)
	case "cert_failed":
		name, _ := data["identifier"].(string)
		renewal, _ := data["renewal"].(bool)
		m.metrics.orders.WithLabelValues(resultLabel("failed", renewal)).Inc()
		m.log.Error("certificate order failed; the host keeps its current certificate, or the default one", "host", name, "renewal", renewal, "error", data["error"])
	}
	if m.cfg.OnEvent != nil {
		m.cfg.OnEvent(event, data)
	}
	return err
}

func resultLabel(result string, renewal bool) string {
	if renewal {
		return "renewal_" + result
	}
	return result
}

// Sync makes the managed set match hosts (the serving snapshot's
// ACMEHosts), in the background: new hosts are loaded from storage or
// ordered, removed hosts stop being renewed. Only the latest list given
// matters; one still waiting is replaced. In on-demand mode nothing is
// ordered here; handshakes do it.
func (m *Manager) Sync(ctx context.Context, hosts []string) {
	if m.cfg.OnDemand {
		return
	}
	m.pendingMu.Lock()
	defer m.pendingMu.Unlock()
	m.pending = &pendingSync{ctx: ctx, hosts: hosts}
	if m.syncActive {
		return
	}
	m.syncActive = true
	go func() {
		for {
			m.pendingMu.Lock()
			next := m.pending
			m.pending = nil
			if next == nil {
				m.syncActive = false
				m.pendingMu.Unlock()
				return
			}
			m.pendingMu.Unlock()
			m.apply(next.ctx, next.hosts)
		}
	}()
}

// apply loads the storage of new hosts (a few API reads each) and hands
// orders to certmagic's background jobs.
func (m *Manager) apply(ctx context.Context, hosts []string) {
	if ctx.Err() != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var added []string
	for _, h := range hosts {
		if !m.managed[h] {
			m.managed[h] = true
			added = append(added, h)
		}
	}
	var removed []certmagic.SubjectIssuer
	for h := range m.managed {
		if _, ok := slices.BinarySearch(hosts, h); !ok {
			delete(m.managed, h)
			removed = append(removed, certmagic.SubjectIssuer{Subject: h})
		}
	}
	if len(removed) > 0 {
		m.cache.RemoveManaged(removed)
		m.log.Info("hosts no longer served by ACME; their certificates stay in storage until they expire", "hosts", len(removed))
	}
	if len(added) == 0 {
		return
	}
	// ManageAsync loads what storage holds (another replica's order, or
	// ours before a restart) and orders only what is missing.
	if err := m.magic.ManageAsync(ctx, added); err != nil {
		m.log.Error("could not manage ACME certificates", "hosts", added, "error", err)
	}
}

// GetCertificate returns the ACME certificate for the handshake's server
// name, obtaining it first in on-demand mode. It refuses names not allowed
// now; the caller then serves its default certificate.
func (m *Manager) GetCertificate(hello *stdtls.ClientHelloInfo) (*stdtls.Certificate, error) {
	if !m.Allowed(hello.ServerName) {
		return nil, ErrNotAllowed
	}
	return m.magic.GetCertificate(hello)
}

// HTTPHandler answers ACME HTTP-01 challenges, including those another
// replica started (their tokens are in the shared storage), and passes
// every other request to next. Challenges for names not allowed are passed
// on too, so the path stays an ordinary route for everyone else.
func (m *Manager) HTTPHandler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if certmagic.LooksLikeHTTPChallenge(r) && m.Allowed(hostOnly(r.Host)) && m.issuer.HandleHTTPChallenge(w, r) {
			return
		}
		next.ServeHTTP(w, r)
	})
}

func hostOnly(hostport string) string {
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		return host
	}
	return hostport
}

// Stop ends renewal, OCSP and expiry maintenance.
func (m *Manager) Stop() {
	m.stopOnce.Do(func() {
		close(m.stop)
		m.cache.Stop()
	})
}

// Expiry returns, for each host ACME serves now and holds a certificate
// for in memory, the NotAfter of the newest such certificate.
func (m *Manager) Expiry() map[string]time.Time {
	out := make(map[string]time.Time)
	for _, host := range m.cfg.Hosts() {
		for _, c := range m.cache.AllMatchingCertificates(host) {
			if c.Leaf != nil && c.Leaf.NotAfter.After(out[host]) {
				out[host] = c.Leaf.NotAfter
			}
		}
	}
	return out
}

// Chain returns the HTTPS listener's certificate callback: a TLS Secret
// bound to the server name wins (hasSecret), then the ACME certificate for
// a name ACME may serve, then fallback, which serves the Secret or default
// certificate. An ACME failure (not yet issued, order refused or failed)
// falls back too, so a client always gets some certificate.
func (m *Manager) Chain(hasSecret func(serverName string) bool, fallback func(*stdtls.ClientHelloInfo) (*stdtls.Certificate, error)) func(*stdtls.ClientHelloInfo) (*stdtls.Certificate, error) {
	return func(hello *stdtls.ClientHelloInfo) (*stdtls.Certificate, error) {
		if hello.ServerName == "" || hasSecret(hello.ServerName) || !m.Allowed(hello.ServerName) {
			return fallback(hello)
		}
		cert, err := m.GetCertificate(hello)
		if err != nil || cert == nil {
			m.log.Debug("no ACME certificate for this handshake; serving the default", "host", hello.ServerName, "error", err)
			return fallback(hello)
		}
		return cert, nil
	}
}
