package loadbench

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// ServeGoTLSCommand is the hidden loadbench subcommand that runs the
// direct-go-tls target: the loadbench binary re-executes itself with it.
const ServeGoTLSCommand = "serve-go-tls"

// ServeGoTLS runs a bare Go TLS server that answers every request itself,
// as direct-tls does with nginx: net/http and crypto/tls with nothing
// behind them. It shows how much of the gap between Portico and nginx is
// the Go TLS and HTTP stack itself rather than Portico's proxying.
func ServeGoTLS(args []string) error {
	fs := flag.NewFlagSet(ServeGoTLSCommand, flag.ContinueOnError)
	addr := fs.String("addr", "", "loopback listen address")
	certFile := fs.String("cert", "", "certificate PEM file")
	keyFile := fs.String("key", "", "key PEM file")
	body := fs.String("body", "", "response body")
	largeFile := fs.String("large-body-file", "", "body served at "+LargeBodyPath)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		return err
	}
	var large []byte
	if *largeFile != "" {
		if large, err = os.ReadFile(*largeFile); err != nil {
			return err
		}
	}
	small := []byte(*body)
	srv := &http.Server{
		Addr:              *addr,
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b := small
			if r.URL.Path == LargeBodyPath && large != nil {
				b = large
			}
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Length", strconv.Itoa(len(b)))
			_, _ = w.Write(b)
		}),
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	err = srv.ServeTLS(ln, "", "")
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func startDirectGoTLS(ctx context.Context, env *Env, dir string) (*Instance, error) {
	args := []string{"-cert", env.CertFile, "-key", env.KeyFile, "-body", env.Body}
	if env.LargeBodyFile != "" {
		args = append(args, "-large-body-file", env.LargeBodyFile)
	}
	return startSelf(ctx, env, dir, "direct-go-tls", ServeGoTLSCommand, args...)
}

// startSelf runs the loadbench binary again as the server of a Go
// reference target (command, with args and an -addr it picks), with the
// proxies' worker budget, and waits until it answers over HTTPS.
func startSelf(ctx context.Context, env *Env, dir, name, command string, args ...string) (*Instance, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	port, err := FreeLoopbackPort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	argv := append([]string{self, command, "-addr", addr}, args...)
	p, err := StartProcess(name, argv, []string{"GOMAXPROCS=" + strconv.Itoa(env.Workers)}, filepath.Join(dir, "output.log"))
	if err != nil {
		return nil, err
	}
	if err := waitFor(ctx, []*Process{p}, func(ctx context.Context) error { return probeTarget(ctx, env, "https", addr) }); err != nil {
		p.Stop()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &Instance{Addr: addr, Procs: []*Process{p}}, nil
}
