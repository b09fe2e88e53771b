package loadbench

import (
	"bytes"
	"context"
	"crypto/tls"
	"flag"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// ServeFastHTTPProxyCommand is the hidden loadbench subcommand that runs the
// go-fasthttp target.
const ServeFastHTTPProxyCommand = "serve-fasthttp-proxy"

// ServeFastHTTPProxy runs the smallest useful Go proxy: a fasthttp Server on
// crypto/tls, a host and path-prefix check, two forwarding headers and a
// keep-alive fasthttp.HostClient to the backend. It routes nothing else,
// enforces none of Portico's limits and has no HTTP/2: it is the floor a
// Go proxy on the standard netpoller reaches, one goroutine per connection
// and nothing per request beyond the exchange, against which Portico's own
// engine is measured.
func ServeFastHTTPProxy(args []string) error {
	f, cert, err := parseReferenceProxyFlags(ServeFastHTTPProxyCommand, args)
	if err != nil {
		return err
	}
	client := newReferenceHostClient(f.backend)
	srv := &fasthttp.Server{
		ReadTimeout:                   60 * time.Second,
		IdleTimeout:                   60 * time.Second,
		DisableHeaderNamesNormalizing: true,
		NoDefaultServerHeader:         true,
		NoDefaultContentType:          true,
		Handler: func(ctx *fasthttp.RequestCtx) {
			h := ctx.Host()
			if i := bytes.LastIndexByte(h, ':'); i >= 0 {
				h = h[:i]
			}
			if string(h) != f.host || len(ctx.Path()) == 0 || ctx.Path()[0] != '/' {
				ctx.SetStatusCode(fasthttp.StatusNotFound)
				return
			}
			req := &ctx.Request
			req.Header.Set("X-Forwarded-For", ctx.RemoteIP().String())
			req.Header.Set("X-Forwarded-Proto", "https")
			req.URI().SetScheme("http") // the backend leg is plain HTTP
			if err := client.Do(req, &ctx.Response); err != nil {
				ctx.Response.Reset()
				ctx.SetStatusCode(fasthttp.StatusBadGateway)
				ctx.SetBodyString(err.Error())
			}
		},
	}
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return err
	}
	return srv.Serve(tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}}))
}

// referenceProxyFlags are what every reference proxy is started with.
type referenceProxyFlags struct {
	addr    string // loopback listen address
	backend string // backend address
	host    string // virtual host routed to the backend
}

// parseReferenceProxyFlags parses a reference proxy's command line and
// loads its certificate; more defines the proxy's own flags, if any.
func parseReferenceProxyFlags(command string, args []string, more ...func(*flag.FlagSet)) (referenceProxyFlags, tls.Certificate, error) {
	var f referenceProxyFlags
	fs := flag.NewFlagSet(command, flag.ContinueOnError)
	for _, define := range more {
		define(fs)
	}
	fs.StringVar(&f.addr, "addr", "", "loopback listen address")
	certFile := fs.String("cert", "", "certificate PEM file")
	keyFile := fs.String("key", "", "key PEM file")
	fs.StringVar(&f.backend, "backend", "", "backend address")
	fs.StringVar(&f.host, "host", "", "virtual host routed to the backend")
	if err := fs.Parse(args); err != nil {
		return f, tls.Certificate{}, err
	}
	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	return f, cert, err
}

// startReferenceProxy re-executes the loadbench binary as a reference
// proxy (command), with the flags parseReferenceProxyFlags reads.
func startReferenceProxy(ctx context.Context, env *Env, dir, name, command string, extra ...string) (*Instance, error) {
	args := append([]string{"-cert", env.CertFile, "-key", env.KeyFile, "-backend", env.BackendAddr, "-host", env.Host}, extra...)
	return startSelf(ctx, env, dir, name, command, args...)
}

// newReferenceHostClient is the reference proxies' keep-alive client to
// the backend.
func newReferenceHostClient(backend string) *fasthttp.HostClient {
	return &fasthttp.HostClient{
		Addr:                          backend,
		MaxConns:                      1024,
		MaxIdleConnDuration:           15 * time.Second,
		ReadTimeout:                   60 * time.Second,
		WriteTimeout:                  60 * time.Second,
		DisableHeaderNamesNormalizing: true,
		DisablePathNormalizing:        true,
	}
}

// startGoFastHTTP starts the go-fasthttp target: the loadbench binary
// re-executed as ServeFastHTTPProxy.
func startGoFastHTTP(ctx context.Context, env *Env, dir string) (*Instance, error) {
	return startReferenceProxy(ctx, env, dir, "go-fasthttp", ServeFastHTTPProxyCommand)
}

// ServeNetHTTPProxyCommand is the hidden loadbench subcommand that runs the
// go-nethttp target.
const ServeNetHTTPProxyCommand = "serve-nethttp-proxy"

// ServeNetHTTPProxy runs the smallest proxy on net/http's server, HTTP/2
// included: a host check, two forwarding headers and go-fasthttp's
// keep-alive fasthttp.HostClient to the backend, which costs less than any
// net/http client. On the h2 workload it is the floor for a proxy whose
// HTTP/2 is net/http's (a serving goroutine per connection, a handler
// goroutine per stream, frame writes on further goroutines), which is
// Portico's.
func ServeNetHTTPProxy(args []string) error {
	f, cert, err := parseReferenceProxyFlags(ServeNetHTTPProxyCommand, args)
	if err != nil {
		return err
	}
	client := newReferenceHostClient(f.backend)
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       60 * time.Second,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := r.Host
			if i := strings.LastIndexByte(h, ':'); i >= 0 {
				h = h[:i]
			}
			if h != f.host || !strings.HasPrefix(r.URL.Path, "/") {
				w.WriteHeader(http.StatusNotFound)
				return
			}
			req := fasthttp.AcquireRequest()
			resp := fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.Header.SetMethod(r.Method)
			req.SetRequestURI("http://" + f.backend + r.URL.RequestURI())
			req.Header.SetHost(r.Host)
			for name, values := range r.Header {
				for _, v := range values {
					req.Header.Add(name, v)
				}
			}
			req.Header.Set("X-Forwarded-For", r.RemoteAddr[:strings.LastIndexByte(r.RemoteAddr, ':')])
			req.Header.Set("X-Forwarded-Proto", "https")
			if err := client.Do(req, resp); err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			for name, value := range resp.Header.All() {
				w.Header().Add(string(name), string(value))
			}
			w.WriteHeader(resp.StatusCode())
			_, _ = w.Write(resp.Body())
		}),
	}
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return err
	}
	return srv.ServeTLS(ln, "", "")
}

// startGoNetHTTP starts the go-nethttp target: the loadbench binary
// re-executed as ServeNetHTTPProxy.
func startGoNetHTTP(ctx context.Context, env *Env, dir string) (*Instance, error) {
	return startReferenceProxy(ctx, env, dir, "go-nethttp", ServeNetHTTPProxyCommand)
}
