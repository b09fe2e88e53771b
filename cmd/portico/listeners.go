package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"portico.dev/portico/frontdoor"
	"portico.dev/portico/passthrough"
	"portico.dev/portico/routing"
	"portico.dev/portico/snapshot"
	porticotls "portico.dev/portico/tls"
)

// listenerKey identifies one Gateway socket. A socket whose key stays in
// the next snapshot is kept as it is: its connections never notice a
// configuration change.
type listenerKey struct {
	addr     netip.Addr
	port     int32
	protocol gatewayv1.ProtocolType
	// terminate is a TLS socket with a listener in mode Terminate (its
	// Passthrough listeners, if any, are told apart per connection): a
	// socket switching to or from terminating is bound anew.
	terminate bool
}

func (k listenerKey) String() string {
	p := string(k.protocol)
	if k.terminate {
		p += " Terminate"
	}
	return p + " " + net.JoinHostPort(k.addr.String(), strconv.Itoa(int(k.port)))
}

func (k listenerKey) compare(o listenerKey) int {
	return cmp.Or(k.addr.Compare(o.addr), cmp.Compare(k.port, o.port), cmp.Compare(k.protocol, o.protocol),
		compareBool(k.terminate, o.terminate))
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// gatewayListeners binds the sockets Gateways ask for (Snapshot.Listeners)
// next to the flag-configured ones, which keep serving Ingresses. After
// every publish, reconcile binds new sockets, drains removed ones, and
// points the sockets that stay at the new snapshot's routes and
// certificates.
type gatewayListeners struct {
	// shared is what every socket shares with the flag sockets.
	shared frontdoor.Shared
	// httpsPort is what the routing handler puts in redirects to HTTPS.
	httpsPort int
	// drainTimeout bounds how long a removed socket's requests may finish.
	drainTimeout time.Duration
	// passthrough is the configuration of TLS passthrough sockets, but
	// their routes.
	passthrough passthrough.Config
	log         *slog.Logger

	mu      sync.Mutex
	bound   map[listenerKey]*boundListener
	closed  bool
	failing map[listenerKey]bindFailure // sockets that could not be bound
	// draining counts removed sockets still finishing their requests.
	draining sync.WaitGroup
}

// socketServer serves one bound socket: HTTP or HTTPS (porticotls.Server)
// or TLS, Passthrough or Terminate (passthrough.Server).
type socketServer interface {
	Serve() error
	Shutdown(ctx context.Context) error
}

// boundListener is one socket and the server on it.
type boundListener struct {
	key    listenerKey
	server socketServer
	// listener closes when Shutdown has closed the socket.
	listener *closeNotifyListener
	// current is this socket's Listener in the serving snapshot, read
	// once per handshake and per request.
	current atomic.Pointer[snapshot.Listener]
	// served is closed when Serve returns.
	served chan struct{}
}

func newGatewayListeners(shared frontdoor.Shared, httpsPort int, drainTimeout time.Duration, pt passthrough.Config, log *slog.Logger) *gatewayListeners {
	return &gatewayListeners{
		shared: shared, httpsPort: httpsPort, drainTimeout: drainTimeout, passthrough: pt,
		log: log, bound: map[listenerKey]*boundListener{}, failing: map[listenerKey]bindFailure{},
	}
}

// reconcile makes the bound sockets those snap asks for. It returns once
// the sockets of removed listeners are closed (their requests drain in the
// background), so that a socket moving from HTTP to HTTPS on the same port
// can be bound at once.
func (g *gatewayListeners) reconcile(snap *snapshot.Snapshot) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return
	}
	want := make(map[listenerKey]*snapshot.Listener, len(snap.Listeners))
	for _, l := range snap.Listeners {
		k := listenerKey{addr: l.Address.Unmap(), port: l.Port, protocol: l.Protocol, terminate: l.Terminate}
		if _, dup := want[k]; dup {
			g.log.Error("two Gateway listeners for one socket; serving the first", "socket", k.String(),
				"gateway", l.Gateway.String())
			continue
		}
		want[k] = l
	}

	var closing []*boundListener
	for k, b := range g.bound {
		if _, keep := want[k]; !keep {
			delete(g.bound, k)
			closing = append(closing, b)
		}
	}
	for _, b := range closing {
		g.log.Info("Gateway listener removed; draining its connections", "socket", b.key.String(), "gateway", b.gatewayName())
		g.drain(b)
	}
	for _, b := range closing {
		// Shutdown closes the socket before it waits for requests.
		select {
		case <-b.listener.closed:
		case <-b.served:
		}
	}
	for k := range g.failing {
		if _, still := want[k]; !still {
			delete(g.failing, k)
		}
	}

	keys := make([]listenerKey, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, listenerKey.compare)
	for _, k := range keys {
		l := want[k]
		if b, ok := g.bound[k]; ok {
			b.current.Store(l)
			continue
		}
		b, err := g.bind(k, l)
		if err != nil {
			failure := bindFailure{key: k, gateway: l.Gateway, err: err.Error()}
			if g.failing[k] != failure {
				g.log.Error("cannot bind Gateway listener; the Gateway's other listeners and every other socket keep serving",
					"gateway", l.Gateway.String(), "socket", k.String(), "error", err)
			}
			g.failing[k] = failure
			continue
		}
		delete(g.failing, k)
		g.bound[k] = b
		g.log.Info("Gateway listener bound", "socket", k.String(), "gateway", l.Gateway.String())
	}
}

// bind opens one socket and starts serving it.
func (g *gatewayListeners) bind(k listenerKey, l *snapshot.Listener) (*boundListener, error) {
	secure := false
	switch k.protocol {
	case gatewayv1.HTTPProtocolType, gatewayv1.TLSProtocolType:
	case gatewayv1.HTTPSProtocolType:
		secure = true
	default:
		return nil, fmt.Errorf("protocol %s is not served", k.protocol)
	}
	if !k.addr.IsValid() || k.port <= 0 || k.port > 65535 {
		return nil, fmt.Errorf("invalid socket address %s", k)
	}
	ln, err := porticotls.ListenTCP(net.JoinHostPort(k.addr.String(), strconv.Itoa(int(k.port))), g.shared.Limits)
	if err != nil {
		return nil, err
	}
	b := &boundListener{key: k, listener: newCloseNotifyListener(ln), served: make(chan struct{})}
	b.current.Store(l)
	routes := func() *routing.Table {
		if cur := b.current.Load(); cur != nil {
			return cur.Routes
		}
		return nil
	}
	certificates := func() *porticotls.Certificates {
		if cur := b.current.Load(); cur != nil {
			return cur.Certificates
		}
		return nil
	}
	if k.protocol == gatewayv1.TLSProtocolType {
		cfg := g.passthrough
		cfg.Routes = routes
		if k.terminate {
			// The certificate is chosen by SNI among the listeners'
			// certificateRefs as on HTTPS sockets, and stapled alike.
			cfg.GetCertificate = g.shared.OCSP.Wrap(porticotls.CertificateGetter(func(serverName string) *porticotls.KeyPair {
				return certificates().Lookup(serverName)
			}))
		}
		cfg.Metrics = g.shared.Metrics
		cfg.AccessLog = g.shared.AccessLog
		cfg.Logger = g.log.With("gateway", l.Gateway.String())
		b.server = passthrough.NewServer(porticotls.WithProxyProtocol(b.listener, g.shared.ProxyProtocolFrom, cfg.HelloTimeout), cfg)
		g.serve(k, b)
		return b, nil
	}

	content := frontdoor.Content{
		Routes:       routes,
		Certificates: certificates,
		HTTPSPort:    g.httpsPort,
		Logger:       g.log.With("gateway", l.Gateway.String()),
	}
	if secure {
		// The listener's client certificate validation (spec.tls.frontend)
		// is read from the serving Listener on every handshake, like its
		// certificates, so a change of CAs or mode needs no new socket.
		content.ClientValidation = func() *porticotls.ClientValidation {
			if cur := b.current.Load(); cur != nil {
				return cur.ClientValidation
			}
			return nil
		}
	}
	b.server, err = frontdoor.Serve(b.listener, secure, g.shared, content)
	if err != nil {
		ln.Close()
		return nil, err
	}
	g.serve(k, b)
	return b, nil
}

// serve runs b's server until it is shut down; a server that fails is
// forgotten, so that the next reconcile binds the socket again.
func (g *gatewayListeners) serve(k listenerKey, b *boundListener) {
	go func() {
		err := b.server.Serve()
		// Before taking g.mu: reconcile may hold it waiting for this.
		close(b.served)
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			g.log.Error("Gateway listener failed; binding it again", "socket", k.String(),
				"gateway", b.gatewayName(), "error", err)
			g.mu.Lock()
			if g.bound[k] == b {
				delete(g.bound, k)
				if cur := b.current.Load(); cur != nil {
					g.failing[k] = bindFailure{key: k, gateway: cur.Gateway, err: err.Error()}
				}
			}
			g.mu.Unlock()
		}
	}()
}

// drain shuts b down in the background, letting requests in flight finish
// within the drain timeout.
func (g *gatewayListeners) drain(b *boundListener) {
	g.draining.Add(1)
	go func() {
		defer g.draining.Done()
		ctx, cancel := context.WithTimeout(context.Background(), g.drainTimeout)
		defer cancel()
		if err := b.server.Shutdown(ctx); err != nil {
			g.log.Warn("requests on a removed Gateway listener did not finish in time", "socket", b.key.String(),
				"gateway", b.gatewayName(), "timeout", g.drainTimeout, "error", err)
		}
	}()
}

// shutdown stops binding, drains every socket within ctx, and waits for
// them, the earlier removed ones included.
func (g *gatewayListeners) shutdown(ctx context.Context) {
	g.mu.Lock()
	g.closed = true
	all := make([]*boundListener, 0, len(g.bound))
	for _, b := range g.bound {
		all = append(all, b)
	}
	g.bound = map[listenerKey]*boundListener{}
	g.mu.Unlock()

	var wg sync.WaitGroup
	for _, b := range all {
		wg.Go(func() {
			if err := b.server.Shutdown(ctx); err != nil {
				g.log.Warn("in-flight requests on a Gateway listener did not finish within the shutdown timeout",
					"socket", b.key.String(), "gateway", b.gatewayName(), "error", err)
			}
		})
	}
	wg.Wait()
	g.draining.Wait()
}

// bindFailures lists the sockets the last reconcile could not bind.
func (g *gatewayListeners) bindFailures() []bindFailure {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]bindFailure, 0, len(g.failing))
	for _, f := range g.failing {
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b bindFailure) int { return a.key.compare(b.key) })
	return out
}

// sockets lists the bound sockets' addresses, sorted, for logs and tests.
func (g *gatewayListeners) sockets() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	keys := make([]listenerKey, 0, len(g.bound))
	for k := range g.bound {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, listenerKey.compare)
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.String()
	}
	return out
}

// gatewayName names, for logs, the Gateway the socket serves now.
func (b *boundListener) gatewayName() string {
	if cur := b.current.Load(); cur != nil {
		return cur.Gateway.String()
	}
	return ""
}

// closeNotifyListener tells when it has been closed, which is when the port
// can be bound again.
type closeNotifyListener struct {
	net.Listener
	once   sync.Once
	closed chan struct{}
}

func newCloseNotifyListener(ln net.Listener) *closeNotifyListener {
	return &closeNotifyListener{Listener: ln, closed: make(chan struct{})}
}

func (l *closeNotifyListener) Close() error {
	err := l.Listener.Close()
	l.once.Do(func() { close(l.closed) })
	return err
}
