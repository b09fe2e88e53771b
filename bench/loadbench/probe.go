package loadbench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
)

// loopbackHTTPClient is used for admin endpoints; it keeps no idle
// connections so nothing lingers into a measured run.
var loopbackHTTPClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}

// dialCheck succeeds once something accepts TCP connections on addr.
func dialCheck(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// probeTarget sends the benchmark request once, the way wrk will (SNI and
// Host set to the virtual host, TCP to loopback), and checks that the answer
// is the backend's body. This keeps a misrouted target (a 404 page, a default
// certificate) from being measured as if it were proxying.
func probeTarget(ctx context.Context, env *Env, scheme, addr string) error {
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(env.Cert.CertPEM) {
		return errors.New("benchmark certificate does not parse")
	}
	tr := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
		// Verifying against the benchmark certificate proves the target
		// picked it by SNI rather than serving some other default.
		TLSClientConfig:   &tls.Config{RootCAs: roots, ServerName: env.Host},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s://%s%s", scheme, env.Host, probePath(env)), nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read probe response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("probe answered %s: %.200q", resp.Status, body)
	}
	want := env.Body
	if env.ExpectBody != "" {
		want = env.ExpectBody
	}
	if string(body) != want {
		return fmt.Errorf("probe answered a body that is not the backend's: %.200q", body)
	}
	return nil
}

func probePath(env *Env) string {
	if env.Path == "" {
		return "/"
	}
	return env.Path
}
