package loadbench

import (
	"crypto/tls"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// fakePorticoEnv makes the test binary act as a Portico stand-in that
// honours the command-line and manifest contract the harness relies on.
const fakePorticoEnv = "LOADBENCH_FAKE_PORTICO"

func TestMain(m *testing.M) {
	if os.Getenv(fakePorticoEnv) == "1" {
		if err := fakePortico(os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fakePortico serves the benchmark manifests with a reverse proxy: the TLS
// key pair from the Secret, the backend port from the Endpoints.
func fakePortico(args []string) error {
	fs := flag.NewFlagSet("portico", flag.ContinueOnError)
	manifests := fs.String("manifests", "", "")
	httpsAddr := fs.String("https-addr", "", "")
	_ = fs.String("http-addr", "", "")
	adminAddr := fs.String("admin-addr", "", "")
	_ = fs.String("log-level", "", "")
	if err := fs.Parse(args); err != nil {
		return err
	}
	raw, err := os.ReadFile(filepath.Join(*manifests, "bench.yaml"))
	if err != nil {
		return err
	}
	var (
		pair    tls.Certificate
		backend string
	)
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		var meta struct {
			Kind string `json:"kind"`
		}
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			return err
		}
		switch meta.Kind {
		case "Secret":
			var s corev1.Secret
			if err := yaml.Unmarshal([]byte(doc), &s); err != nil {
				return err
			}
			if pair, err = tls.X509KeyPair(s.Data["tls.crt"], s.Data["tls.key"]); err != nil {
				return err
			}
		case "Endpoints":
			var e corev1.Endpoints
			if err := yaml.Unmarshal([]byte(doc), &e); err != nil {
				return err
			}
			backend = fmt.Sprintf("%s:%d", e.Subsets[0].Addresses[0].IP, e.Subsets[0].Ports[0].Port)
		}
	}
	target, err := url.Parse("http://" + backend)
	if err != nil {
		return err
	}
	go func() {
		admin := http.NewServeMux()
		admin.HandleFunc("GET /readyz", func(http.ResponseWriter, *http.Request) {})
		slog.Warn("admin stopped", "err", http.ListenAndServe(*adminAddr, admin))
	}()
	srv := &http.Server{
		Addr:      *httpsAddr,
		Handler:   httputil.NewSingleHostReverseProxy(target),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{pair}},
	}
	return srv.ListenAndServeTLS("", "")
}
