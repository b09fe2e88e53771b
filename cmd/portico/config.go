package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"portico.dev/portico/passthrough"
	"portico.dev/portico/routing"
	"portico.dev/portico/status"
	porticotls "portico.dev/portico/tls"
	"portico.dev/portico/upstream"
)

// envPrefix turns a flag name into its environment variable:
// --fallback-service is PORTICO_FALLBACK_SERVICE.
const envPrefix = "PORTICO_"

// config is everything the command line says.
type config struct {
	// Source is "manifests" or "kubernetes".
	Source          string
	ManifestsDir    string
	Kubeconfig      string
	InCluster       bool
	WatchNamespaces []string
	// Publish is the address written to owned Ingresses' status.
	Publish                 status.Addresses
	LeaderElectionNamespace string
	LeaderElectionID        string
	// Identity names this replica in the Lease: the Pod name.
	Identity        string
	HTTPSAddr       string
	HTTPAddr        string
	AdminAddr       string
	IngressClass    string
	ControllerName  string
	Fallback        types.NamespacedName
	DefaultCertFile string
	DefaultKeyFile  string

	// AdoptIngressClasses are class names served whatever controller
	// their IngressClass names (ingress-nginx's "nginx" during a move).
	AdoptIngressClasses []string
	// NginxConfigMap names ingress-nginx's controller ConfigMap, whose
	// global keys become the defaults of the Ingresses written for
	// ingress-nginx; empty: not read.
	NginxConfigMap types.NamespacedName
	// UpdateStatus writes the addresses of served Ingresses to their
	// status; false leaves Ingress status to another controller.
	UpdateStatus bool
	// RateLimitMaxClients bounds the client addresses each rate-limited
	// Ingress counts at once.
	RateLimitMaxClients int
	// ExternalAuthTimeout bounds each subrequest to an authentication
	// service (ingress-nginx's auth-url).
	ExternalAuthTimeout time.Duration
	// SessionCookieKeyFile holds the key of persistent-mode session
	// cookies (ingress-nginx's affinity-mode persistent); empty: a random
	// key per process.
	SessionCookieKeyFile string
	// BasicAuthCacheSize bounds the bcrypt and MD5-crypt acceptances
	// remembered for ingress-nginx's basic authentication.
	BasicAuthCacheSize int

	// GatewayControllerName selects our GatewayClasses; empty turns the
	// Gateway API off.
	GatewayControllerName string
	// GatewayAddressPool hands addresses to Gateways that ask for none.
	GatewayAddressPool []netip.Prefix

	// RedirectHTTPSPort is the port in redirects to HTTPS; 0 means the port
	// of HTTPSAddr.
	RedirectHTTPSPort int
	TrustedProxies    []netip.Prefix
	// ProxyProtocolFrom are the L4 load balancers whose connections may
	// start with a PROXY protocol header.
	ProxyProtocolFrom []netip.Prefix
	LogLevel          slog.Level
	LogFormat         string
	// AccessLog is where a record per request goes: "off", "stdout" or
	// "stderr".
	AccessLog       string
	DrainDelay      time.Duration
	ShutdownTimeout time.Duration
	Limits          porticotls.Limits
	Upstream        upstream.Config
	// Bodies bounds the request bodies buffered for mirrors and retries.
	Bodies routing.BodyLimits
	ACME   acmeConfig
	// OCSPStapling staples OCSP responses to certificates from Secrets.
	OCSPStapling bool
	// TLSLegacyCiphers offers CBC suites on TLS 1.2 as well as AEAD ones.
	TLSLegacyCiphers bool
	// Passthrough bounds the connections of TLS listeners in Passthrough
	// mode (TLSRoutes); its Routes are per socket.
	Passthrough passthrough.Config
}

// parseConfig reads flags, with environment variables as defaults. It
// returns flag.ErrHelp after printing usage for -h.
func parseConfig(args []string, getenv func(string) string, usageOut io.Writer) (*config, error) {
	cfg := &config{}
	fs := flag.NewFlagSet("portico", flag.ContinueOnError)
	fs.SetOutput(usageOut)

	var text flagText
	registerSourceFlags(fs, cfg, &text)
	registerListenerFlags(fs, cfg, &text)
	registerRoutingFlags(fs, cfg, &text)
	registerLogFlags(fs, cfg, &text)
	registerFrontDoorLimitFlags(fs, cfg, &text)
	registerUpstreamFlags(fs, cfg, &text)
	registerACMEFlags(fs, &cfg.ACME)

	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: portico [flags]\n\n"+
			"Portico terminates TLS, routes by host and path (Kubernetes Ingress), and sends\n"+
			"every request no route matches to a legacy fallback Service, in one process.\n\n"+
			"Every flag can also be set by an environment variable: --fallback-service is\n"+
			"PORTICO_FALLBACK_SERVICE. A flag on the command line wins.\n\nFlags:\n")
		fs.PrintDefaults()
	}

	fromEnv, err := applyEnv(fs, getenv)
	if err != nil {
		return nil, err
	}
	showVersion := registerVersionFlag(fs)
	// A bad flag is reported in one line by the caller; the full usage is
	// printed only when asked for with -h.
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(usageOut)
			fs.Usage()
		}
		return nil, err
	}
	if *showVersion {
		printVersion(versionOut)
		// Done, like -h: main exits 0 on ErrHelp.
		return nil, flag.ErrHelp
	}
	given := fromEnv
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (all options are flags; see --help)", fs.Arg(0))
	}

	for _, resolve := range []func() error{
		func() error { return cfg.resolveSource(&text, given, getenv) },
		func() error { return cfg.resolveRouting(&text) },
		func() error { return cfg.resolveListeners(&text) },
		func() error { return cfg.resolveLogs(&text) },
		func() error { return cfg.resolveFrontDoorLimits(&text) },
		func() error { return cfg.resolveUpstream(&text) },
		func() error { return cfg.ACME.validate(cfg) },
	} {
		if err := resolve(); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

// flagText holds the flags that are parsed into config only once the
// command line is read: lists, names and numbers with a syntax or range of
// their own.
type flagText struct {
	watchNamespaces, publishAddress, publishService *string
	gatewayPool, fallback                           *string
	adopt, nginxConfigMap                           *string
	proxyProtocol, trusted                          *string
	level                                           *string
	maxStreams, maxFrame                            *uint
	allowedUpgrades                                 *string
}

// registerSourceFlags adds the flags of where objects come from and of the
// status writer.
func registerSourceFlags(fs *flag.FlagSet, cfg *config, text *flagText) {
	fs.StringVar(&cfg.ManifestsDir, "manifests", "examples/quickstart",
		"serve the Kubernetes manifests (YAML or JSON) in this folder, watching it for changes; the embedded default mode, no cluster needed")
	fs.StringVar(&cfg.Kubeconfig, "kubeconfig", "",
		"read objects from the Kubernetes API server this kubeconfig names, instead of a manifest folder; inside a Pod, without --manifests, the in-cluster configuration is used")
	text.watchNamespaces = fs.String("watch-namespaces", "",
		"comma-separated namespaces whose Ingresses, Services, endpoints and TLS Secrets are watched (Kubernetes mode); empty watches all")
	text.publishAddress = fs.String("publish-address", "",
		"comma-separated IP addresses or host names written to the status of every Ingress Portico serves (Kubernetes mode)")
	text.publishService = fs.String("publish-service", "",
		"NAMESPACE/NAME of the Service (typically type LoadBalancer) whose load-balancer addresses are written to the status of every Ingress Portico serves")
	fs.StringVar(&cfg.LeaderElectionNamespace, "leader-election-namespace", "",
		"namespace of the Lease replicas elect the status writer with; default: the Pod's namespace (POD_NAMESPACE), else \"default\"")
	fs.StringVar(&cfg.LeaderElectionID, "leader-election-id", "portico-status",
		"name of that Lease; replicas of one deployment share it")
}

// registerListenerFlags adds the flags of the flag-configured listeners:
// addresses, the default certificate, the proxies in front, shutdown and
// TLS options.
func registerListenerFlags(fs *flag.FlagSet, cfg *config, text *flagText) {
	fs.StringVar(&cfg.HTTPSAddr, "https-addr", ":8443", "address of the HTTPS listener (TLS 1.2 and 1.3, HTTP/2 and HTTP/1.1); empty disables it")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", ":8080", "address of the plain-HTTP listener; empty disables it")
	fs.StringVar(&cfg.AdminAddr, "admin-addr", "127.0.0.1:9090", "address of the admin listener: /metrics, /healthz, /readyz; empty disables it")
	fs.StringVar(&cfg.DefaultCertFile, "default-cert-file", "",
		"PEM certificate chain served to clients whose SNI matches no certificate; a self-signed one is generated when empty")
	fs.StringVar(&cfg.DefaultKeyFile, "default-key-file", "", "PEM private key of --default-cert-file")
	fs.IntVar(&cfg.RedirectHTTPSPort, "redirect-https-port", 0,
		"port put in redirects to HTTPS (routes with portico.dev/ssl-redirect); 0 uses the port of --https-addr")
	fs.DurationVar(&cfg.Passthrough.HelloTimeout, "passthrough-hello-timeout", passthrough.DefaultHelloTimeout,
		"on TLS passthrough listeners (TLSRoutes), time a client has to send its whole ClientHello (and PROXY header) before the connection is closed; on TLS listeners in mode Terminate, time for the whole handshake")
	fs.IntVar(&cfg.Passthrough.MaxHelloBytes, "passthrough-max-hello-bytes", passthrough.DefaultMaxHelloBytes,
		"on TLS passthrough listeners, the most bytes read to find the ClientHello's SNI; a larger ClientHello closes the connection (on the HTTPS socket, with ingress-nginx ssl-passthrough Ingresses, the most bytes peeked: a larger ClientHello is terminated as usual)")
	fs.DurationVar(&cfg.Passthrough.IdleTimeout, "passthrough-idle-timeout", passthrough.DefaultIdleTimeout,
		"a connection of a TLS listener (Passthrough or Terminate), or of an ingress-nginx ssl-passthrough host, through which no byte went in either direction for this long is closed on both sides")
	text.proxyProtocol = fs.String("proxy-protocol-from", "",
		"comma-separated CIDRs of L4 load balancers whose connections may start with a PROXY protocol header (v1 or v2) naming the client; headers from other peers are never read")
	text.trusted = fs.String("trusted-proxies", "",
		"comma-separated CIDRs of proxies in front of Portico whose X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host, Forwarded and X-Real-IP headers are kept, and whose True-Client-IP, X-Forwarded-Port and X-Forwarded-Prefix are passed on; from any other peer the first are replaced and the others dropped")
	fs.DurationVar(&cfg.DrainDelay, "drain-delay", 0,
		"on SIGTERM, report not ready and keep serving this long before closing listeners, so load balancers stop sending traffic first")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "on SIGTERM, how long in-flight requests may take to finish")
	fs.BoolVar(&cfg.TLSLegacyCiphers, "tls-legacy-ciphers", false,
		"also offer ECDHE with AES-CBC (SHA-1 MAC) suites on TLS 1.2, for clients too old for AES-GCM or ChaCha20-Poly1305; TLS 1.3 is unaffected")
	fs.BoolVar(&cfg.OCSPStapling, "ocsp-stapling", true,
		"fetch OCSP responses for certificates from Secrets (and --default-cert-file) whose leaf names a responder and whose chain holds the issuer, and staple them to handshakes; ACME certificates are stapled regardless")
}

// registerRoutingFlags adds the flags of what is served and how: the
// Ingress and Gateway API controller names, the fallback, and the bodies
// buffered for retries and mirrors.
func registerRoutingFlags(fs *flag.FlagSet, cfg *config, text *flagText) {
	fs.StringVar(&cfg.IngressClass, "ingress-class", "portico",
		"class name answered to in the legacy kubernetes.io/ingress.class annotation")
	text.adopt = fs.String("adopt-ingress-classes", "",
		"comma-separated Ingress class names (spec.ingressClassName or the legacy annotation) served whatever controller their IngressClass names, e.g. nginx to serve ingress-nginx's Ingresses side by side with it during a move; empty: none")
	text.nginxConfigMap = fs.String("nginx-configmap", "",
		"NAMESPACE/NAME of ingress-nginx's controller ConfigMap, whose global keys (proxy-body-size, ssl-redirect, hsts, timeouts, source ranges...) become the defaults of every Ingress written for ingress-nginx, an annotation on the Ingress overriding them; each key is reported on the ConfigMap with Portico's verdict (docs/ingress-nginx.md); with a manifest folder, the ConfigMap of that name in the folder; empty: not read")
	fs.DurationVar(&cfg.ExternalAuthTimeout, "external-auth-timeout", routing.DefaultExternalAuthTimeout,
		"bound on each subrequest to an authentication service an Ingress names (ingress-nginx auth-url); when it passes, the request is answered 500")
	fs.StringVar(&cfg.SessionCookieKeyFile, "session-cookie-key-file", "",
		"file whose contents (at least 16 bytes, e.g. a mounted Secret) key the session cookies of ingress-nginx affinity-mode persistent, which name their endpoint by a keyed hash; give every replica the same file. Empty: a random key per process, so such a cookie is honoured only by the replica that issued it, until it restarts")
	fs.IntVar(&cfg.BasicAuthCacheSize, "basic-auth-cache-size", routing.DefaultBasicAuthCacheSize,
		"accepted credentials of basic authentication (ingress-nginx auth-type: basic) with bcrypt or MD5-crypt hashes remembered, about 100 bytes each, so a client sending the same user and password pays for the hash (about 50 ms of CPU for bcrypt) once; keyed by a digest, never the password; past it an arbitrary entry makes room")
	fs.IntVar(&cfg.RateLimitMaxClients, "rate-limit-max-clients", routing.DefaultMaxRateLimitClients,
		"client addresses each rate-limited Ingress (ingress-nginx limit-rps, limit-rpm, limit-connections) counts at once, up to about 300 bytes each; past it a new client takes the place of one whose budget is full again")
	fs.BoolVar(&cfg.UpdateStatus, "update-status", true,
		"write the addresses of served Ingresses to their status.loadBalancer; false leaves Ingress status to the other controller while both serve the same Ingresses")
	fs.StringVar(&cfg.ControllerName, "controller-name", "portico.dev/controller",
		"controller name: Ingresses whose IngressClass has this spec.controller are served")
	fs.StringVar(&cfg.GatewayControllerName, "gateway-controller-name", "portico.dev/gateway-controller",
		"Gateway API controller name: Gateways whose GatewayClass has this spec.controllerName are served, each listener on its own socket; empty turns Gateway API support off")
	text.gatewayPool = fs.String("gateway-address-pool", "",
		"comma-separated CIDRs the addresses of Gateways that ask for none in spec.addresses are taken from (e.g. 127.0.1.0/24 for local runs); empty: such Gateways get no address")
	text.fallback = fs.String("fallback-service", "default/legacy-fallback",
		"NAMESPACE/NAME of the Service that receives every request no route matches; empty answers them with 404")
	fs.Int64Var(&cfg.Bodies.RetryBodyLimit, "retry-body-limit", routing.DefaultRetryBodyLimit,
		"largest request body buffered so that an HTTPRoute retry can send it again; a larger body is sent once, without retries")
	fs.Int64Var(&cfg.Bodies.MirrorBodyLimit, "mirror-body-limit", routing.DefaultMirrorBodyLimit,
		"largest request body copied to HTTPRoute RequestMirror backends; a request with a larger body is not mirrored")
	fs.IntVar(&cfg.Bodies.MaxMirrorsInFlight, "max-mirrors-in-flight", routing.DefaultMaxMirrorsInFlight,
		"mirror requests in progress at once; mirrors beyond it are dropped so a slow mirror backend holds nothing up")
}

// registerLogFlags adds the flags of the process log and the access log.
func registerLogFlags(fs *flag.FlagSet, cfg *config, text *flagText) {
	text.level = fs.String("log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&cfg.LogFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&cfg.AccessLog, "access-log", "off",
		"one record per request (client, method, host, request target, status, bytes, duration, route, user agent) in --log-format: off, stdout or stderr")
}

// registerFrontDoorLimitFlags adds the limits on client connections:
// header size and time, idle keep-alive, the HTTP/1.x engine and HTTP/2.
func registerFrontDoorLimitFlags(fs *flag.FlagSet, cfg *config, text *flagText) {
	fs.DurationVar(&cfg.Limits.ReadHeaderTimeout, "read-header-timeout", 10*time.Second,
		"time a client has to complete the TLS handshake and send its request headers (bounds slow clients)")
	fs.DurationVar(&cfg.Limits.IdleTimeout, "idle-timeout", 120*time.Second, "idle keep-alive connections (HTTP/1.1 and HTTP/2) are closed after this")
	fs.DurationVar(&cfg.Limits.ClientTCPKeepAlive, "client-tcp-keepalive", 0,
		"idle time before TCP keep-alive probes on client connections; 0 sends none (every connection has an idle timeout, and setting probes up costs four system calls per connection)")
	fs.IntVar(&cfg.Limits.MaxHeaderBytes, "max-header-bytes", 64<<10,
		"largest request line plus headers accepted; larger requests get 431")
	fs.StringVar(&cfg.Limits.HTTP1Engine, "http1-engine", porticotls.HTTP1EnginePortico,
		"what serves HTTP/1.x on the front door: portico (one goroutine per connection, the backend exchange inline) or net/http's server; HTTP/2 is net/http's either way unless the event loops serve it (--http2-event-loops)")
	fs.BoolVar(&cfg.Limits.EventLoops, "http1-event-loops", true,
		"serve the common HTTPS/1.1 request (no body, a route that only forwards, a plain HTTP/1.1 backend answering within a second) on event loops, one per CPU, without a goroutine; everything else is served by the portico engine as before (Linux only)")
	fs.BoolVar(&cfg.Limits.HTTP2EventLoops, "http2-event-loops", true,
		"serve HTTPS connections that negotiate h2 on the event loops too: frames read and answered by the loops, a bodiless request on a route that only forwards sent to its backend without a goroutine, every other stream run on a goroutine; the http2-* limits apply as they do to net/http's HTTP/2 server, which serves h2 when this is false (Linux only)")
	text.maxStreams = fs.Uint("http2-max-concurrent-streams", 250, "concurrent HTTP/2 streams allowed per client connection")
	text.maxFrame = fs.Uint("http2-max-frame-size", 1<<20, "largest HTTP/2 frame accepted from a client, 16384 to 16777216 bytes")
	fs.IntVar(&cfg.Limits.HTTP2MaxReceiveBufferPerStream, "http2-stream-window", 1<<20,
		"HTTP/2 flow-control window per stream: the most of one request body a client can make Portico buffer (below 4 MiB)")
	fs.IntVar(&cfg.Limits.HTTP2MaxReceiveBufferPerConnection, "http2-connection-window", 4<<20-1,
		"HTTP/2 flow-control window shared by the streams of a connection (64 KiB to just under 4 MiB)")
	fs.DurationVar(&cfg.Limits.HTTP2PingTimeout, "http2-ping-timeout", 30*time.Second,
		"after this long without a frame from an HTTP/2 client, a PING is sent; the connection is closed if it goes unanswered as long")
	fs.DurationVar(&cfg.Limits.WriteByteTimeout, "http2-write-timeout", 60*time.Second,
		"an HTTP/2 connection on which no byte could be written for this long (a client that stopped reading) is closed")
}

// registerUpstreamFlags adds the flags of forwarding to backends: dial and
// idle timeouts, response limits, each client connection's dial budget,
// the idle timeouts of both legs, upgrades and header names.
func registerUpstreamFlags(fs *flag.FlagSet, cfg *config, text *flagText) {
	fs.DurationVar(&cfg.Upstream.DialTimeout, "upstream-dial-timeout", 5*time.Second, "time to connect to a backend endpoint before trying another (502 when all fail)")
	fs.DurationVar(&cfg.Upstream.ResponseHeaderTimeout, "upstream-response-header-timeout", 60*time.Second,
		"time a backend has to start its response after receiving the request (504 after)")
	fs.DurationVar(&cfg.Upstream.IdleConnTimeout, "upstream-idle-timeout", upstream.DefaultIdleConnTimeout,
		"idle keep-alive connections to backends are closed after this; keep it below the backends' own keep-alive timeout")
	fs.IntVar(&cfg.Upstream.MaxResponseHeaderBytes, "upstream-max-response-header-bytes", upstream.DefaultMaxResponseHeaderBytes,
		"largest backend response head (status line, headers and any 1xx responses before them); larger ones get 502 and the connection is closed")
	fs.IntVar(&cfg.Upstream.MaxInformationalResponses, "upstream-max-informational-responses", upstream.DefaultMaxInformationalResponses,
		"1xx responses (such as 103 Early Hints) a backend may send before its final response; more get 502")
	fs.IntVar(&cfg.Upstream.ClientDialBurst, "upstream-client-dial-burst", upstream.DefaultClientDialBurst,
		"backend connections one client connection may have dialled at once beyond those its finished requests give back (bounds HTTP/2 rapid reset)")
	fs.IntVar(&cfg.Upstream.ClientDialRate, "upstream-client-dial-rate", upstream.DefaultClientDialRate,
		"backend connections per second a client connection may waste by cancelling requests mid-exchange, once its burst is spent; its further requests wait for a connection")
	fs.IntVar(&cfg.Upstream.HTTP2ResetLimit, "http2-reset-limit", upstream.DefaultHTTP2ResetLimit,
		"proxied requests one HTTP/2 client connection may cancel (RST_STREAM) in 10s; past it the connection is closed (rapid reset)")
	fs.DurationVar(&cfg.Upstream.ClientBodyTimeout, "client-body-timeout", upstream.DefaultClientBodyTimeout,
		"longest wait for the next bytes of a request body from a client (idle, not total); then 408, or the connection is cut if the response has started")
	fs.DurationVar(&cfg.Upstream.SendTimeout, "send-timeout", upstream.DefaultSendTimeout,
		"longest wait for a client to accept more of a response (idle, not total); then the client's connection or HTTP/2 stream is cut")
	fs.DurationVar(&cfg.Upstream.UpstreamReadTimeout, "upstream-read-timeout", upstream.DefaultUpstreamReadTimeout,
		"longest wait for the next bytes of a response body from a backend (idle, not total); then the response to the client is cut")
	fs.DurationVar(&cfg.Upstream.UpstreamSendTimeout, "upstream-send-timeout", upstream.DefaultUpstreamSendTimeout,
		"longest wait for a backend to accept more of a request (idle, not total); then 504, or the response is cut")
	fs.DurationVar(&cfg.Upstream.TunnelIdleTimeout, "tunnel-idle-timeout", upstream.DefaultTunnelIdleTimeout,
		"an upgraded connection (WebSocket) through which no byte went either way for this long is closed on both sides")
	fs.IntVar(&cfg.Upstream.MaxIdleConnsPerEndpoint, "upstream-max-idle-per-endpoint", 64, "idle keep-alive connections kept per backend endpoint")
	text.allowedUpgrades = fs.String("allowed-upgrades", "websocket",
		"comma-separated protocols a client may switch to with Upgrade (tunnelled to the backend once it answers 101); websocket is always allowed, h2c never is; other Upgrade requests are proxied as ordinary requests without it")
	fs.BoolVar(&cfg.Upstream.AllowUnderscoresInHeaders, "allow-underscores-in-headers", false,
		"forward request headers whose names contain '_'; by default they are dropped, as nginx does, since some backends read X_Forwarded_For as X-Forwarded-For")
}

// resolveSource picks the source and reads the status writer's flags.
func (cfg *config) resolveSource(text *flagText, given map[string]bool, getenv func(string) string) error {
	// The embedded default (a manifest folder) unless a cluster is named,
	// or Portico runs in a Pod and no folder is asked for.
	cfg.Source = "manifests"
	switch {
	case cfg.Kubeconfig != "" && given["manifests"]:
		return errors.New("--manifests and --kubeconfig both given: choose one source")
	case cfg.Kubeconfig != "":
		cfg.Source = "kubernetes"
	case getenv("KUBERNETES_SERVICE_HOST") != "" && !given["manifests"]:
		cfg.Source, cfg.InCluster = "kubernetes", true
	}
	for _, ns := range strings.Split(*text.watchNamespaces, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			cfg.WatchNamespaces = append(cfg.WatchNamespaces, ns)
		}
	}
	for _, a := range strings.Split(*text.publishAddress, ",") {
		if a = strings.TrimSpace(a); a != "" {
			cfg.Publish.Fixed = append(cfg.Publish.Fixed, a)
		}
	}
	var err error
	if cfg.Publish.Service, err = parseNamespacedName(*text.publishService); err != nil {
		return fmt.Errorf("--publish-service: %w", err)
	}
	if cfg.LeaderElectionNamespace == "" {
		cfg.LeaderElectionNamespace = getenv("POD_NAMESPACE")
	}
	if cfg.LeaderElectionNamespace == "" {
		cfg.LeaderElectionNamespace = "default"
	}
	if cfg.Identity = getenv("POD_NAME"); cfg.Identity == "" {
		host, _ := os.Hostname()
		cfg.Identity = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	return nil
}

// resolveRouting reads the fallback, the Gateway address pool and the body
// limits.
func (cfg *config) resolveRouting(text *flagText) error {
	var err error
	if cfg.Fallback, err = parseNamespacedName(*text.fallback); err != nil {
		return fmt.Errorf("--fallback-service: %w", err)
	}
	if cfg.NginxConfigMap, err = parseNamespacedName(*text.nginxConfigMap); err != nil {
		return fmt.Errorf("--nginx-configmap: %w", err)
	}
	for _, c := range strings.Split(*text.adopt, ",") {
		if c = strings.TrimSpace(c); c != "" {
			cfg.AdoptIngressClasses = append(cfg.AdoptIngressClasses, c)
		}
	}
	if cfg.GatewayAddressPool, err = parsePrefixes(*text.gatewayPool); err != nil {
		return fmt.Errorf("--gateway-address-pool: %w", err)
	}
	if cfg.Bodies.RetryBodyLimit < 1 || cfg.Bodies.MirrorBodyLimit < 1 || cfg.Bodies.MaxMirrorsInFlight < 1 {
		return errors.New("--retry-body-limit, --mirror-body-limit and --max-mirrors-in-flight: must be at least 1")
	}
	return nil
}

// resolveListeners checks the listeners' addresses and certificate files
// and reads the proxies in front.
func (cfg *config) resolveListeners(text *flagText) error {
	var err error
	if cfg.ProxyProtocolFrom, err = parsePrefixes(*text.proxyProtocol); err != nil {
		return fmt.Errorf("--proxy-protocol-from: %w", err)
	}
	if cfg.TrustedProxies, err = parsePrefixes(*text.trusted); err != nil {
		return fmt.Errorf("--trusted-proxies: %w", err)
	}
	if (cfg.DefaultCertFile == "") != (cfg.DefaultKeyFile == "") {
		return errors.New("--default-cert-file and --default-key-file must be given together")
	}
	if cfg.HTTPSAddr == "" && cfg.HTTPAddr == "" {
		return errors.New("--https-addr and --http-addr are both empty: nothing to serve")
	}
	for name, addr := range map[string]string{"--https-addr": cfg.HTTPSAddr, "--http-addr": cfg.HTTPAddr, "--admin-addr": cfg.AdminAddr} {
		if addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("%s: %q is not HOST:PORT", name, addr)
		}
	}
	if cfg.RedirectHTTPSPort < 0 || cfg.RedirectHTTPSPort > 65535 {
		return fmt.Errorf("--redirect-https-port: %d is not a port", cfg.RedirectHTTPSPort)
	}
	return nil
}

// resolveLogs checks the log flags.
func (cfg *config) resolveLogs(text *flagText) error {
	if err := cfg.LogLevel.UnmarshalText([]byte(*text.level)); err != nil {
		return fmt.Errorf("--log-level: %q is not one of debug, info, warn, error", *text.level)
	}
	if cfg.LogFormat != "text" && cfg.LogFormat != "json" {
		return fmt.Errorf("--log-format: %q is not text or json", cfg.LogFormat)
	}
	switch cfg.AccessLog {
	case "off", "stdout", "stderr":
	default:
		return fmt.Errorf("--access-log: %q is not off, stdout or stderr", cfg.AccessLog)
	}
	return nil
}

// resolveFrontDoorLimits checks the limits on client connections.
func (cfg *config) resolveFrontDoorLimits(text *flagText) error {
	if *text.maxStreams == 0 || *text.maxStreams > 1<<31-1 {
		return fmt.Errorf("--http2-max-concurrent-streams: must be between 1 and 2147483647")
	}
	cfg.Limits.HTTP2MaxConcurrentStreams = uint32(*text.maxStreams)
	if *text.maxFrame < 16<<10 || *text.maxFrame > 16<<20 {
		return fmt.Errorf("--http2-max-frame-size: must be between 16384 and 16777216")
	}
	cfg.Limits.HTTP2MaxReadFrameSize = uint32(*text.maxFrame)
	if err := positive(map[string]time.Duration{
		"--read-header-timeout": cfg.Limits.ReadHeaderTimeout, "--idle-timeout": cfg.Limits.IdleTimeout,
	}); err != nil {
		return err
	}
	if cfg.Limits.MaxHeaderBytes < 4096 {
		return errors.New("--max-header-bytes: must be at least 4096")
	}
	if err := positive(map[string]time.Duration{
		"--passthrough-hello-timeout": cfg.Passthrough.HelloTimeout, "--passthrough-idle-timeout": cfg.Passthrough.IdleTimeout,
	}); err != nil {
		return err
	}
	// A ClientHello with post-quantum key shares takes about 2 KiB; one
	// TLS record holds 16 KiB.
	if cfg.Passthrough.MaxHelloBytes < 1024 || cfg.Passthrough.MaxHelloBytes > 1<<20 {
		return errors.New("--passthrough-max-hello-bytes: must be between 1024 and 1048576")
	}
	return nil
}

// resolveUpstream checks the upstream flags and hands the upstream its
// share of the rest (the trusted proxies).
func (cfg *config) resolveUpstream(text *flagText) error {
	if err := positive(map[string]time.Duration{
		"--upstream-dial-timeout": cfg.Upstream.DialTimeout, "--upstream-response-header-timeout": cfg.Upstream.ResponseHeaderTimeout,
		"--upstream-idle-timeout": cfg.Upstream.IdleConnTimeout,
		"--client-body-timeout":   cfg.Upstream.ClientBodyTimeout, "--send-timeout": cfg.Upstream.SendTimeout,
		"--upstream-read-timeout": cfg.Upstream.UpstreamReadTimeout, "--upstream-send-timeout": cfg.Upstream.UpstreamSendTimeout,
		"--external-auth-timeout": cfg.ExternalAuthTimeout,
		"--tunnel-idle-timeout":   cfg.Upstream.TunnelIdleTimeout,
	}); err != nil {
		return err
	}
	if cfg.RateLimitMaxClients < 1 {
		return fmt.Errorf("--rate-limit-max-clients: must be at least 1")
	}
	if cfg.BasicAuthCacheSize < 1 {
		return errors.New("--basic-auth-cache-size: must be at least 1")
	}
	if cfg.Upstream.MaxResponseHeaderBytes < 4096 {
		return errors.New("--upstream-max-response-header-bytes: must be at least 4096")
	}
	if cfg.Upstream.MaxInformationalResponses < 1 {
		return errors.New("--upstream-max-informational-responses: must be at least 1")
	}
	if cfg.Upstream.ClientDialBurst < 1 || cfg.Upstream.ClientDialRate < 1 {
		return errors.New("--upstream-client-dial-burst and --upstream-client-dial-rate: must be at least 1")
	}
	if cfg.Upstream.MaxIdleConnsPerEndpoint < 0 {
		return errors.New("--upstream-max-idle-per-endpoint: must not be negative")
	}
	cfg.Upstream.TrustedProxies = cfg.TrustedProxies
	var err error
	if cfg.Upstream.AllowedUpgrades, err = parseUpgrades(*text.allowedUpgrades); err != nil {
		return fmt.Errorf("--allowed-upgrades: %w", err)
	}
	return nil
}

// positive checks that each duration flag, by name, is above zero.
func positive(durations map[string]time.Duration) error {
	for name, d := range durations {
		if d <= 0 {
			return fmt.Errorf("%s: must be positive", name)
		}
	}
	return nil
}

// applyEnv sets each flag from its environment variable, before the command
// line is parsed so that flags win. It returns the names of the flags set.
func applyEnv(fs *flag.FlagSet, getenv func(string) string) (map[string]bool, error) {
	var err error
	set := make(map[string]bool)
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		v := getenv(name)
		if v == "" || err != nil {
			return
		}
		if e := f.Value.Set(v); e != nil {
			err = fmt.Errorf("%s=%q: %v", name, v, e)
		}
		set[f.Name] = true
		f.Usage += fmt.Sprintf(" (set by %s)", name)
	})
	return set, err
}

func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func parseNamespacedName(s string) (types.NamespacedName, error) {
	if s == "" {
		return types.NamespacedName{}, nil
	}
	ns, name, ok := strings.Cut(s, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return types.NamespacedName{}, fmt.Errorf("%q is not NAMESPACE/NAME", s)
	}
	return types.NamespacedName{Namespace: ns, Name: name}, nil
}

// parseUpgrades returns the Upgrade protocols allowed, websocket always
// among them. h2c is refused: a backend that accepts it hands the client a
// raw HTTP/2 connection on which no later request is routed or has its
// forwarding headers rewritten.
func parseUpgrades(s string) ([]string, error) {
	out := []string{"websocket"}
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		switch {
		case p == "" || strings.EqualFold(p, "websocket"):
			continue
		case strings.EqualFold(p, "h2c"):
			return nil, errors.New("h2c cannot be allowed: an upgraded connection would bypass routing for every later request on it")
		case strings.ContainsFunc(p, func(r rune) bool { return r <= ' ' || r >= 0x7f || r == ',' }):
			return nil, fmt.Errorf("%q is not a protocol name", p)
		}
		out = append(out, p)
	}
	return out, nil
}

func parsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			addr, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("%q is not a CIDR or IP address", f)
			}
			out = append(out, netip.PrefixFrom(addr, addr.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR or IP address", f)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func newLogger(cfg *config, w io.Writer) *slog.Logger {
	return newLoggerAt(cfg.LogFormat, cfg.LogLevel, w)
}

func newLoggerAt(format string, level slog.Level, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// newAccessLogger returns the access log's logger, nil when it is off. It
// logs every record whatever --log-level says.
func newAccessLogger(cfg *config) *slog.Logger {
	switch cfg.AccessLog {
	case "stdout":
		return newLoggerAt(cfg.LogFormat, slog.LevelInfo, os.Stdout)
	case "stderr":
		return newLoggerAt(cfg.LogFormat, slog.LevelInfo, os.Stderr)
	default:
		return nil
	}
}

// passthroughConfig is the configuration of TLS passthrough sockets: the
// passthrough flags, and the upstream dial timeout for their backends.
func (cfg *config) passthroughConfig() passthrough.Config {
	pt := cfg.Passthrough
	pt.DialTimeout = cfg.Upstream.DialTimeout
	return pt
}
