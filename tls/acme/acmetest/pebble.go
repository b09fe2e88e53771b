// Package acmetest runs Pebble, the ACME test server, for integration
// tests: on loopback, with a DNS server that resolves every name to
// 127.0.0.1, validating HTTP-01 challenges on a port the test chooses.
// Build Pebble first with hack/pebble/build.sh.
package acmetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// SkipEnv names the variable that, set to 1, skips tests needing Pebble
// when bin/pebble is missing instead of failing them.
const SkipEnv = "PORTICO_SKIP_PEBBLE"

// Pebble is a running Pebble ACME server.
type Pebble struct {
	// Directory is the ACME directory URL.
	Directory string
	// ListenerRoots verify Pebble's own HTTPS listener (give them to the
	// ACME client); ListenerRootsPEM are the same, PEM-encoded.
	ListenerRoots    *x509.CertPool
	ListenerRootsPEM []byte
	// IssuerRoots verify the certificates Pebble issues.
	IssuerRoots *x509.CertPool
}

// Binary returns the path of the Pebble binary: $PEBBLE_BIN, else bin/pebble
// at the repository root, found from the test's working directory.
func Binary(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("PEBBLE_BIN")
	if bin == "" {
		bin = filepath.Join(repoRoot(), "bin", "pebble")
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv(SkipEnv) == "1" {
			t.Skipf("%s=1: %v", SkipEnv, err)
		}
		t.Fatalf("%v: build it with hack/pebble/build.sh", err)
	}
	return bin
}

// Start starts Pebble for t and stops it when t ends. HTTP-01 validation
// connects to 127.0.0.1:httpPort, whatever the name.
func Start(t testing.TB, httpPort int) *Pebble {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	dnsAddr := startDNS(t)

	caPEM, certPEM, keyPEM := listenerCertificate(t)
	caPool := x509.NewCertPool()
	caPool.AppendCertsFromPEM(caPEM)
	for name, data := range map[string][]byte{"cert.pem": certPEM, "key.pem": keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ports := FreePorts(t, 3)
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	mgmt := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":                  listen,
		"managementListenAddress":        mgmt,
		"certificate":                    filepath.Join(dir, "cert.pem"),
		"privateKey":                     filepath.Join(dir, "key.pem"),
		"httpPort":                       httpPort,
		"tlsPort":                        ports[2],
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
		"profiles": map[string]any{
			"default": map[string]any{"description": "test", "validityPeriod": 7 * 24 * 3600},
		},
	}}
	cfgJSON, _ := json.Marshal(cfg)
	cfgPath := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(cfgPath, cfgJSON, 0o600); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(bin, "-config", cfgPath, "-dnsserver", dnsAddr)
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0")
	logFile, err := os.Create(filepath.Join(dir, "pebble.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logFile.Close()
		if t.Failed() {
			if out, err := os.ReadFile(logFile.Name()); err == nil {
				t.Logf("pebble log:\n%s", out)
			}
		}
	})

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: caPool}, Proxy: nil}, Timeout: 5 * time.Second}
	p := &Pebble{Directory: "https://" + listen + "/dir", ListenerRoots: caPool, ListenerRootsPEM: caPEM}
	// Bounded wait for Pebble to listen.
	var lastErr error
	for range 100 {
		resp, err := client.Get(p.Directory)
		if err == nil {
			resp.Body.Close()
			lastErr = nil
			break
		}
		lastErr = err
		time.Sleep(100 * time.Millisecond)
	}
	if lastErr != nil {
		t.Fatalf("pebble did not start: %v", lastErr)
	}
	resp, err := client.Get("https://" + mgmt + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	rootPEM, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	p.IssuerRoots = x509.NewCertPool()
	if !p.IssuerRoots.AppendCertsFromPEM(rootPEM) {
		t.Fatalf("pebble root is not PEM: %q", rootPEM)
	}
	return p
}

// startDNS answers A 127.0.0.1 for every name, and nothing for other types,
// so Pebble validates every test host against the loopback listener. It
// serves UDP and TCP on one port: Go's resolver may use either.
func startDNS(t testing.TB) string {
	t.Helper()
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		m.Authoritative = true
		for _, q := range req.Question {
			if q.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 0},
					A:   net.IPv4(127, 0, 0, 1),
				})
			}
		}
		_ = w.WriteMsg(m)
	})
	var tcp net.Listener
	var udp net.PacketConn
	for attempt := 0; udp == nil; attempt++ {
		var err error
		if tcp, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		udp, err = net.ListenPacket("udp", tcp.Addr().String())
		if err != nil {
			tcp.Close()
			if attempt == 10 {
				t.Fatalf("no port free for both TCP and UDP: %v", err)
			}
		}
	}
	for _, srv := range []*dns.Server{{Listener: tcp, Handler: handler}, {PacketConn: udp, Handler: handler}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() { _ = srv.ActivateAndServe() }()
		<-started
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return tcp.Addr().String()
}

// listenerCertificate makes a CA and a certificate for 127.0.0.1 that it
// signed, for Pebble's own HTTPS listeners.
func listenerCertificate(t testing.TB) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pebble listener test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

// FreePorts returns n TCP ports free on 127.0.0.1 right now.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// repoRoot walks up from the working directory to the directory holding
// the root go.mod (module portico.dev/portico).
func repoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return "."
	}
	for range 20 {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(data), "module portico.dev/portico\n") {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "."
}
