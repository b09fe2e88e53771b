package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"portico.dev/portico/frontdoor"
	"portico.dev/portico/http1"
	"portico.dev/portico/metrics"
	"portico.dev/portico/passthrough"
	"portico.dev/portico/routing"
	"portico.dev/portico/snapshot"
	"portico.dev/portico/source/kube"
	"portico.dev/portico/source/manifests"
	porticotls "portico.dev/portico/tls"
	"portico.dev/portico/tls/acme"
	"portico.dev/portico/upstream"
)

// process is one running Portico: its listeners, the snapshot store they
// read, and the source that feeds it.
type process struct {
	cfg     *config
	log     *slog.Logger
	metrics *metrics.Metrics

	source objectSource
	// status writes Ingress status and Events while this replica leads;
	// nil in manifest mode.
	status    *statusLoop
	store     snapshot.Store
	publisher *publisher
	transport *upstream.Transport
	server    *porticotls.Server
	// sslPassthrough splices the HTTPS socket's connections to the hosts
	// of ingress-nginx ssl-passthrough Ingresses.
	sslPassthrough *passthrough.Server
	// listeners are the Gateways' sockets, reconciled on every publish.
	listeners *gatewayListeners
	admin     *http.Server
	adminLn   net.Listener

	// ready is true once the first snapshot serves and until shutdown starts.
	ready atomic.Bool
	// firstPublished is closed when the first snapshot serves.
	firstPublished chan struct{}
	firstOnce      sync.Once

	// acme obtains certificates for hosts no Secret serves; nil without
	// --acme-directory.
	acme *acmeRuntime
	// ocsp staples OCSP responses to the certificates from Secrets; nil
	// with --ocsp-stapling=false.
	ocsp *porticotls.OCSPStapler
}

// newProcess checks the configuration and binds every listener, so that a
// bad flag, an unreadable manifest folder or a port in use is reported at
// start-up with one clear line.
func newProcess(cfg *config, logger *slog.Logger) (*process, error) {
	src, clients, err := newSource(cfg, logger)
	if err != nil {
		return nil, err
	}
	defaultPair, err := loadDefaultCertificate(cfg, logger)
	if err != nil {
		return nil, err
	}

	cookieKey, err := loadSessionCookieKey(cfg)
	if err != nil {
		return nil, err
	}

	g := &process{cfg: cfg, log: logger, source: src, metrics: metrics.New(), firstPublished: make(chan struct{})}
	g.metrics.CountEventLoops(func() (uint64, uint64, uint64) {
		n := http1.EventLoopCounts()
		return n.Served, n.HandedOff, n.Continued
	})
	upCfg := cfg.Upstream
	upCfg.Logger = logger
	upCfg.OnConnectError = g.metrics.ConnectError
	g.transport = upstream.NewTransport(upCfg)
	if clients != nil {
		g.status = newStatusLoop(cfg, clients, logger)
	}
	g.publisher = &publisher{
		status:  g.status,
		store:   &g.store,
		metrics: g.metrics,
		log:     logger,
		cfg: snapshot.Config{
			ControllerName:      cfg.ControllerName,
			IngressClass:        cfg.IngressClass,
			AdoptClasses:        cfg.AdoptIngressClasses,
			RateLimitMaxClients: cfg.RateLimitMaxClients,
			Fallback:            cfg.Fallback,
			DefaultCertificate:  defaultPair,
			SessionCookieKey:    cookieKey,
			ACME:                snapshotACMEConfig(cfg),
			NginxConfigMap:      cfg.NginxConfigMap,
			// The process flags ConfigMap keys map onto, for their verdicts.
			TrustsProxies:             len(cfg.TrustedProxies) > 0,
			AllowUnderscoresInHeaders: cfg.Upstream.AllowUnderscoresInHeaders,
			Gateway: snapshot.GatewayConfig{
				ControllerName: gatewayv1.GatewayController(cfg.GatewayControllerName),
				AddressPool:    cfg.GatewayAddressPool,
			},
		},
	}

	if cfg.OCSPStapling {
		g.ocsp = porticotls.NewOCSPStapler(porticotls.OCSPConfig{Logger: logger})
	}
	shared := frontdoor.Shared{
		Limits: cfg.Limits,
		// Gateway sockets read the header from the same peers.
		ProxyProtocolFrom: cfg.ProxyProtocolFrom,
		LegacyCiphers:     cfg.TLSLegacyCiphers,
		// Each client connection gets its own backend dial budget.
		ConnContext: g.transport.ClientConnContext,
		Forwarder:   g.transport,
		Metrics:     g.metrics,
		AccessLog:   newAccessLogger(cfg),
		BodyLimits:  cfg.Bodies,
		// The peers whose forwarding headers the backends trust name the
		// client that routes' address ranges are checked against.
		TrustedProxies:      cfg.TrustedProxies,
		ExternalAuthTimeout: cfg.ExternalAuthTimeout,
		BasicAuthCacheSize:  cfg.BasicAuthCacheSize,
		OCSP:                g.ocsp,
		ACME: func() *acme.Manager {
			if g.acme == nil {
				return nil
			}
			return g.acme.manager
		},
		Logger: logger,
	}
	certificates := func() *porticotls.Certificates {
		if s := g.store.Load(); s != nil {
			return s.Certificates
		}
		return nil
	}
	g.server, err = frontdoor.Listen(cfg.HTTPSAddr, cfg.HTTPAddr, shared, func(httpsBound net.Addr) frontdoor.Content {
		return frontdoor.Content{
			Routes: func() *routing.Table {
				if s := g.store.Load(); s != nil {
					return s.Routes
				}
				return nil
			},
			Certificates: certificates,
			// Ingress hosts with auth-tls-* annotations ask for the
			// client's certificate; the route checks it.
			HostClientValidation: func(serverName string) *porticotls.ClientValidation {
				return certificates().ClientValidation(serverName)
			},
			Default:   defaultPair,
			HTTPSPort: redirectPort(cfg, httpsBound),
		}
	})
	if err != nil {
		g.transport.Close()
		return nil, err
	}
	if err := g.startACME(clients); err != nil {
		g.transport.Close()
		_ = g.server.Shutdown(context.Background())
		return nil, err
	}
	g.startSSLPassthrough(cfg, shared, logger)
	g.listeners = newGatewayListeners(shared, redirectPort(cfg, g.server.HTTPSAddr()), cfg.ShutdownTimeout, cfg.passthroughConfig(), logger)
	g.publisher.listeners = g.listeners
	if cfg.AdminAddr != "" {
		g.adminLn, err = net.Listen("tcp", cfg.AdminAddr)
		if err != nil {
			g.transport.Close()
			_ = g.server.Shutdown(context.Background())
			return nil, fmt.Errorf("--admin-addr: %w", err)
		}
		g.admin = &http.Server{Handler: g.adminHandler(), ReadHeaderTimeout: 10 * time.Second}
	}
	return g, nil
}

// redirectPort is the port redirects to HTTPS name: the flag, or else the
// port the HTTPS listener is bound to.
func redirectPort(cfg *config, httpsAddr net.Addr) int {
	if cfg.RedirectHTTPSPort != 0 {
		return cfg.RedirectHTTPSPort
	}
	if tcp, ok := httpsAddr.(*net.TCPAddr); ok {
		return tcp.Port
	}
	return 443
}

// objectSource is where Kubernetes objects come from: a manifest folder or
// the API server. Run delivers every new set of objects until ctx ends.
type objectSource interface {
	Run(ctx context.Context, onChange func(snapshot.Objects)) error
}

// newSource returns the configured source, and in Kubernetes mode the
// clients that status is written with.
func newSource(cfg *config, logger *slog.Logger) (objectSource, *kubeClients, error) {
	if cfg.Source == "manifests" {
		if _, _, err := manifests.Load(cfg.ManifestsDir); err != nil {
			return nil, nil, fmt.Errorf("--manifests: %w", err)
		}
		return &manifests.Source{Dir: cfg.ManifestsDir, Logger: logger}, nil, nil
	}
	// An empty kubeconfig path means the in-cluster configuration.
	restCfg, err := clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	if err != nil {
		if cfg.InCluster {
			return nil, nil, fmt.Errorf("in-cluster Kubernetes configuration: %w", err)
		}
		return nil, nil, fmt.Errorf("--kubeconfig: %w", err)
	}
	restCfg.UserAgent = "portico"
	// The API server warns on every Endpoints request that the API is
	// deprecated; once is enough.
	restCfg.WarningHandler = rest.NewWarningWriter(os.Stderr, rest.WarningWriterOptions{Deduplicate: true})

	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return nil, nil, fmt.Errorf("creating the Kubernetes client: %w", err)
	}
	clients := &kubeClients{kube: client}
	if cfg.GatewayControllerName != "" {
		if clients.gateway, err = gatewayclient.NewForConfig(restCfg); err != nil {
			return nil, nil, fmt.Errorf("creating the Gateway API client: %w", err)
		}
	}
	src := &kube.Source{Client: client, Namespaces: cfg.WatchNamespaces, NginxConfigMap: cfg.NginxConfigMap, Logger: logger}
	if clients.gateway != nil {
		src.Gateway = clients.gateway
	}
	return src, clients, nil
}

// loadSessionCookieKey reads --session-cookie-key-file, or makes a random
// key when it is not given.
func loadSessionCookieKey(cfg *config) ([]byte, error) {
	if cfg.SessionCookieKeyFile == "" {
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		return key, nil
	}
	key, err := os.ReadFile(cfg.SessionCookieKeyFile)
	if err != nil {
		return nil, fmt.Errorf("--session-cookie-key-file: %w", err)
	}
	key = bytes.TrimRight(key, "\r\n")
	if len(key) < 16 {
		return nil, fmt.Errorf("--session-cookie-key-file: %s holds %d bytes; a key needs at least 16", cfg.SessionCookieKeyFile, len(key))
	}
	return key, nil
}

func loadDefaultCertificate(cfg *config, logger *slog.Logger) (*porticotls.KeyPair, error) {
	if cfg.DefaultCertFile == "" {
		pair, err := porticotls.SelfSigned("portico-default-certificate", 365*24*time.Hour)
		if err != nil {
			return nil, fmt.Errorf("generating the default certificate: %w", err)
		}
		logger.Info("no --default-cert-file given: clients whose SNI matches no certificate get a generated self-signed certificate",
			"serial", pair.Serial)
		return pair, nil
	}
	certPEM, err := os.ReadFile(cfg.DefaultCertFile)
	if err != nil {
		return nil, fmt.Errorf("--default-cert-file: %w", err)
	}
	keyPEM, err := os.ReadFile(cfg.DefaultKeyFile)
	if err != nil {
		return nil, fmt.Errorf("--default-key-file: %w", err)
	}
	pair, err := porticotls.ParseKeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("--default-cert-file: %w", err)
	}
	return pair, nil
}

func (g *process) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", g.metrics.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !g.ready.Load() {
			http.Error(w, "not ready: no configuration is serving yet, or shutting down", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	// Profiles are served only here, on the admin listener (loopback by
	// default), never on the traffic listeners.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	return mux
}

// run serves until ctx ends, then drains: not ready, the drain delay,
// listeners closed, in-flight requests finished (up to the shutdown
// timeout), tunnels and backend connections closed.
func (g *process) run(ctx context.Context) error {
	serveErr := make(chan error, 2)
	go func() { serveErr <- g.server.Serve() }()
	if g.admin != nil {
		go func() {
			if err := g.admin.Serve(g.adminLn); !errors.Is(err, http.ErrServerClosed) {
				serveErr <- fmt.Errorf("admin listener: %w", err)
			}
		}()
	}
	g.log.Info("portico started", "https", addrString(g.server.HTTPSAddr()), "http", addrString(g.server.HTTPAddr()),
		"admin", addrString(g.adminAddr()), "source", g.cfg.Source)

	srcCtx, stopSource := context.WithCancel(ctx)
	defer stopSource()
	if g.status != nil {
		go g.status.run(srcCtx)
	}
	go g.publisher.retryBinds(srcCtx, bindRetryInterval)
	ocspDone := make(chan struct{})
	if g.ocsp != nil {
		go func() {
			defer close(ocspDone)
			g.ocsp.Run(srcCtx)
		}()
	} else {
		close(ocspDone)
	}
	// The stapler stops with the source; its fetches end with srcCtx.
	defer func() { stopSource(); <-ocspDone }()
	go func() {
		err := g.source.Run(srcCtx, func(objs snapshot.Objects) {
			g.publisher.apply(objs)
			if g.ocsp != nil {
				g.ocsp.Update(ocspSubjects(g.store.Load()))
			}
			g.syncACME(srcCtx)
			g.ready.Store(true)
			g.firstOnce.Do(func() { close(g.firstPublished) })
		})
		if err != nil && srcCtx.Err() == nil {
			serveErr <- fmt.Errorf("%s source: %w", g.cfg.Source, err)
		}
	}()

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-serveErr:
	}
	g.shutdown()
	return runErr
}

func (g *process) shutdown() {
	g.ready.Store(false)
	if g.cfg.DrainDelay > 0 {
		g.log.Info("shutting down: not ready, still serving during the drain delay", "delay", g.cfg.DrainDelay)
		time.Sleep(g.cfg.DrainDelay)
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.ShutdownTimeout)
	defer cancel()
	gatewaysDone := make(chan struct{})
	go func() {
		defer close(gatewaysDone)
		g.listeners.shutdown(ctx)
	}()
	passthroughDone := make(chan struct{})
	go func() {
		defer close(passthroughDone)
		_ = g.sslPassthrough.Shutdown(ctx)
	}()
	if err := g.server.Shutdown(ctx); err != nil {
		g.log.Warn("in-flight requests did not finish within the shutdown timeout", "timeout", g.cfg.ShutdownTimeout, "error", err)
	}
	<-gatewaysDone
	<-passthroughDone
	// After the listeners: this also ends WebSocket tunnels, which
	// http.Server.Shutdown does not track.
	_ = g.transport.Close()
	g.stopACME()
	if g.admin != nil {
		_ = g.admin.Shutdown(ctx)
	}
	g.log.Info("portico stopped")
}

func (g *process) adminAddr() net.Addr {
	if g.adminLn == nil {
		return nil
	}
	return g.adminLn.Addr()
}

func addrString(a net.Addr) string {
	if a == nil {
		return "off"
	}
	return a.String()
}

// startSSLPassthrough lets the HTTPS socket hand the connections of
// ssl-passthrough hosts to a passthrough server before their handshake.
// It needs no flag, unlike ingress-nginx's --enable-ssl-passthrough: while
// no Ingress asks for passthrough the snapshot has no table and the
// socket's only cost is one atomic load per connection. The ClientHello
// is read within the socket's handshake deadline (--read-header-timeout);
// the passthrough flags bound its size and the spliced connection.
func (g *process) startSSLPassthrough(cfg *config, shared frontdoor.Shared, logger *slog.Logger) {
	pt := cfg.passthroughConfig()
	pt.Routes = func() *routing.Table {
		if s := g.store.Load(); s != nil {
			return s.SSLPassthrough
		}
		return nil
	}
	pt.Metrics = shared.Metrics
	pt.AccessLog = shared.AccessLog
	pt.Logger = logger.With("listener", "https")
	g.sslPassthrough = passthrough.NewClaimer(pt)
	if !g.server.SetClaim(g.sslPassthrough.Claim) {
		logger.Info("the net/http engine (--http1-engine) cannot pass TLS through on the HTTPS socket: TLS to ingress-nginx ssl-passthrough hosts is terminated")
	}
}
