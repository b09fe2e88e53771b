package podrunner

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// logWriter stores a container's output the way a container runtime does
// (one "<RFC3339Nano time> <stream> F <line>" record per line), so the log
// endpoint can answer sinceTime queries; the suite's mirror tests read the
// echo server's log through the API server from a point in time.
type logWriter struct {
	mu     *sync.Mutex // shared by a container's stdout and stderr
	f      *os.File
	stream string
	buf    []byte
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		if _, err := fmt.Fprintf(w.f, "%s %s F %s\n", time.Now().UTC().Format(time.RFC3339Nano), w.stream, w.buf[:i]); err != nil {
			return 0, err
		}
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

// logQuery is the subset of the kubelet's containerLogs parameters the
// runner honours.
type logQuery struct {
	since      time.Time
	timestamps bool
	tailLines  int // negative: all
	limitBytes int // zero: no limit
}

func parseLogQuery(r *http.Request) (logQuery, error) {
	q := logQuery{tailLines: -1}
	v := r.URL.Query()
	if s := v.Get("sinceTime"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return q, fmt.Errorf("sinceTime: %w", err)
		}
		q.since = t
	}
	if s := v.Get("sinceSeconds"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return q, fmt.Errorf("sinceSeconds: %w", err)
		}
		q.since = time.Now().Add(-time.Duration(n) * time.Second)
	}
	q.timestamps = v.Get("timestamps") == "true" || v.Get("timestamps") == "1"
	if s := v.Get("tailLines"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return q, fmt.Errorf("tailLines: %w", err)
		}
		q.tailLines = n
	}
	if s := v.Get("limitBytes"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return q, fmt.Errorf("limitBytes: %w", err)
		}
		q.limitBytes = n
	}
	return q, nil
}

// filterLog turns stored records into the lines a kubelet would return.
// Lines that are not records (there are none unless the file was edited)
// are kept as they are.
func filterLog(r io.Reader, q logQuery) []byte {
	var lines []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.SplitN(line, " ", 4)
		if len(fields) != 4 {
			lines = append(lines, line)
			continue
		}
		ts, err := time.Parse(time.RFC3339Nano, fields[0])
		if err != nil {
			lines = append(lines, line)
			continue
		}
		if !q.since.IsZero() && ts.Before(q.since) {
			continue
		}
		if q.timestamps {
			lines = append(lines, fields[0]+" "+fields[3])
		} else {
			lines = append(lines, fields[3])
		}
	}
	if q.tailLines >= 0 && len(lines) > q.tailLines {
		lines = lines[len(lines)-q.tailLines:]
	}
	var out []byte
	for _, l := range lines {
		out = append(out, l...)
		out = append(out, '\n')
	}
	if q.limitBytes > 0 && len(out) > q.limitBytes {
		out = out[:q.limitBytes]
	}
	return out
}

// serveKubelet answers the one kubelet API call the suite makes through the
// API server, GET /containerLogs/{namespace}/{pod}/{container}, on addr
// with a self-signed certificate (the API server is not configured with a
// kubelet CA, so it does not verify it).
func (r *Runner) serveKubelet(addr netip.AddrPort) (*http.Server, error) {
	cert, err := selfSignedCert(addr.Addr())
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /containerLogs/{namespace}/{pod}/{container}", r.containerLogs)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	srv := &http.Server{
		Handler:           mux,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
	}
	l, err := net.Listen("tcp", addr.String())
	if err != nil {
		return nil, err
	}
	go func() { _ = srv.ServeTLS(l, "", "") }()
	return srv, nil
}

func (r *Runner) containerLogs(w http.ResponseWriter, req *http.Request) {
	key := req.PathValue("namespace") + "/" + req.PathValue("pod")
	name := req.PathValue("container")
	r.mu.Lock()
	p := r.running[key]
	r.mu.Unlock()
	var path string
	if p != nil {
		for _, c := range p.containers {
			if c.name == name {
				path = c.logPath
			}
		}
	}
	if path == "" {
		http.Error(w, fmt.Sprintf("container %q of pod %s is not running on this node", name, key), http.StatusNotFound)
		return
	}
	q, err := parseLogQuery(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f, err := os.Open(path)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write(filterLog(f, q))
}

func selfSignedCert(ip netip.Addr) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "loopback pod runner"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{ip.AsSlice()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
