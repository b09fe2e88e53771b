// Command demo-backends runs the two backends of the quickstart on loopback:
// the "new component" that Portico routes matched paths to, and the "legacy"
// site that receives everything else through the fallback. Each answers with
// a line that says who answered and what Portico forwarded, so the routing is
// visible with nothing but curl.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/websocket"
)

func main() {
	appAddr := flag.String("app-addr", "127.0.0.1:18081", "listen address of the new component")
	legacyAddr := flag.String("legacy-addr", "127.0.0.1:18082", "listen address of the legacy site")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	backends := []backend{
		{name: "app", description: "the new component", addr: *appAddr},
		{name: "legacy", description: "the legacy site", addr: *legacyAddr},
	}
	// Listening before serving makes a busy port fail fast and plainly.
	listeners, err := listen(backends)
	if err == nil {
		err = serve(ctx, log, backends, listeners)
	}
	if err != nil {
		log.Error("demo backends stopped", slog.Any("err", err))
		os.Exit(1)
	}
}

// backend is one demo site.
type backend struct {
	name        string // short name prefixed to every answer
	description string // what the answer says answered
	addr        string
}

// shutdownTimeout bounds how long in-flight requests get after a signal.
const shutdownTimeout = 5 * time.Second

// listen opens every backend's address, or none of them.
func listen(backends []backend) ([]net.Listener, error) {
	listeners := make([]net.Listener, 0, len(backends))
	for _, b := range backends {
		ln, err := net.Listen("tcp", b.addr)
		if err != nil {
			for _, l := range listeners {
				l.Close()
			}
			return nil, fmt.Errorf("%s backend: %w", b.name, err)
		}
		listeners = append(listeners, ln)
	}
	return listeners, nil
}

// serve runs every backend on its listener until ctx ends, then shuts them
// down gracefully.
func serve(ctx context.Context, log *slog.Logger, backends []backend, listeners []net.Listener) error {
	servers := make([]*http.Server, 0, len(backends))
	for _, b := range backends {
		servers = append(servers, &http.Server{
			Handler:           newHandler(b.name, b.description, log.With(slog.String("backend", b.name))),
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		})
	}

	errs := make(chan error, len(servers))
	var wg sync.WaitGroup
	for i, srv := range servers {
		log.Info("demo backend listening", slog.String("backend", backends[i].name), slog.String("addr", listeners[i].Addr().String()))
		wg.Go(func() {
			if err := srv.Serve(listeners[i]); !errors.Is(err, http.ErrServerClosed) {
				errs <- fmt.Errorf("%s backend: %w", backends[i].name, err)
			}
		})
	}

	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down demo backends")
	case serveErr = <-errs:
	}

	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	for _, srv := range servers {
		if err := srv.Shutdown(shutdownCtx); err != nil {
			// WebSocket connections are hijacked and not waited for;
			// this is about plain requests outliving the timeout.
			log.Warn("demo backend did not shut down cleanly", slog.Any("err", err))
			srv.Close()
		}
	}
	wg.Wait()
	return serveErr
}

// newHandler answers every request of one demo site: /healthz for probes,
// /ws for a WebSocket echo, and a one-line description of anything else.
func newHandler(name, description string, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	mux.Handle("/ws", websocket.Server{
		// The echo is for exercising Upgrade through the gateway, often
		// from curl or a test client that sends no Origin, which the
		// package's default handshake rejects.
		Handshake: func(*websocket.Config, *http.Request) error { return nil },
		Handler: func(ws *websocket.Conn) {
			defer ws.Close()
			log.Debug("websocket connected", slog.String("remote", ws.Request().RemoteAddr))
			if _, err := io.Copy(ws, ws); err != nil {
				log.Debug("websocket closed", slog.Any("err", err))
			}
		},
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Demo-Backend", name)
		io.WriteString(w, describe(name, description, r))
	})
	return mux
}

// describe is the answer body: who answered what, and what the proxy in
// front said about the client (X-Forwarded-For and -Proto).
func describe(name, description string, r *http.Request) string {
	via := r.Header.Get("X-Forwarded-For")
	if via == "" {
		via = "direct from " + remoteIP(r.RemoteAddr)
	}
	proto := r.Header.Get("X-Forwarded-Proto")
	if proto == "" {
		proto = "http"
		if r.TLS != nil {
			proto = "https"
		}
	}
	return fmt.Sprintf("%s: %s answered %s %s (host %s, via %s, proto %s)\n",
		name, description, r.Method, r.URL.RequestURI(), r.Host, strings.TrimSpace(via), proto)
}

func remoteIP(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}
