package churn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"syscall"
	"time"
)

// LoadConfig is one handshake load run.
type LoadConfig struct {
	// Addr is the loopback address every handshake dials.
	Addr string
	// Hosts is the number of branded hosts; each handshake names a random
	// one (HostName) in its SNI.
	Hosts int
	// Roots trusts the benchmark authority only.
	Roots *x509.CertPool
	// Workers is the number of connections in flight at once.
	Workers int
	// Duration bounds the run; MaxHandshakes bounds it by count as well.
	Duration      time.Duration
	MaxHandshakes int
}

// LoadResult counts what the clients saw.
type LoadResult struct {
	Handshakes int `json:"handshakes"`
	// Failed handshakes: refused or reset connections, timeouts, TLS
	// alerts.
	Failed int `json:"failed"`
	// Wrong certificates: the handshake completed but the certificate did
	// not verify for the requested host against the benchmark authority.
	Wrong int `json:"wrong"`
	// FirstErrors keeps a few error texts for the report; ErrorKinds counts
	// every error by kind (timeout, reset, eof, refused, certificate, other).
	FirstErrors []string       `json:"first_errors,omitempty"`
	ErrorKinds  map[string]int `json:"error_kinds,omitempty"`
	Elapsed     time.Duration  `json:"elapsed"`
	P50         time.Duration  `json:"p50"`
	P99         time.Duration  `json:"p99"`
	Max         time.Duration  `json:"max"`
	// PerSecond counts successful handshakes in each second of the run,
	// which shows the dips a reload causes.
	PerSecond []int `json:"per_second"`
	// FailedMedian is the median time a failed handshake took to fail.
	FailedMedian time.Duration `json:"failed_median,omitempty"`
}

// Rate is successful handshakes per second.
func (r LoadResult) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Handshakes-r.Failed-r.Wrong) / r.Elapsed.Seconds()
}

// MinSecond is the worst full second of the run.
func (r LoadResult) MinSecond() int {
	if len(r.PerSecond) < 3 {
		return 0
	}
	// The first and last seconds are partial.
	return slices.Min(r.PerSecond[1 : len(r.PerSecond)-1])
}

// RunLoad opens new TLS connections (full handshakes: no session
// resumption) to random hosts until the duration or the count is reached.
func RunLoad(ctx context.Context, cfg LoadConfig) (LoadResult, error) {
	if cfg.Hosts <= 0 || cfg.Workers <= 0 || cfg.Duration <= 0 || cfg.MaxHandshakes <= 0 {
		return LoadResult{}, errors.New("load needs hosts, workers, a duration and a handshake limit")
	}
	if ip := net.ParseIP(hostOf(cfg.Addr)); ip == nil || !ip.IsLoopback() {
		return LoadResult{}, fmt.Errorf("load address %s is not a loopback address", cfg.Addr)
	}
	start := time.Now()
	end := start.Add(cfg.Duration)
	// The same instant for the context and the loop, so no dial starts
	// with a deadline already past.
	ctx, cancel := context.WithDeadline(ctx, end)
	defer cancel()
	seconds := int(cfg.Duration/time.Second) + 2

	var (
		mu        sync.Mutex
		res       LoadResult
		latencies = make([]time.Duration, 0, 1<<16)
		failures  []time.Duration
		perSecond = make([]int, seconds)
		budget    = cfg.MaxHandshakes
	)
	take := func() bool {
		mu.Lock()
		defer mu.Unlock()
		if budget == 0 {
			return false
		}
		budget--
		return true
	}
	var wg sync.WaitGroup
	for range cfg.Workers {
		wg.Go(func() {
			dialer := &net.Dialer{Timeout: 5 * time.Second}
			for time.Now().Before(end) && take() {
				host := HostName(rand.IntN(cfg.Hosts))
				t0 := time.Now()
				err := handshake(ctx, dialer, cfg, host)
				d := time.Since(t0)
				if err != nil && (ctx.Err() != nil || !time.Now().Before(end)) {
					// Cut by the end of the run, not by the server. The
					// clock, not ctx.Err, decides: on a busy CPU the
					// context's timer fires late, and dials made after the
					// deadline fail at once with "i/o timeout".
					return
				}
				mu.Lock()
				res.Handshakes++
				switch {
				case err == nil:
					latencies = append(latencies, d)
					if s := int(time.Since(start) / time.Second); s < len(perSecond) {
						perSecond[s]++
					}
				case isCertificateError(err):
					res.Wrong++
				default:
					res.Failed++
					failures = append(failures, d)
				}
				if err != nil {
					if res.ErrorKinds == nil {
						res.ErrorKinds = map[string]int{}
					}
					kind := errorKind(err)
					if res.ErrorKinds[kind] == 0 && len(res.FirstErrors) < 6 {
						res.FirstErrors = append(res.FirstErrors, fmt.Sprintf("%s: %v", host, err))
					}
					res.ErrorKinds[kind]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	slices.Sort(latencies)
	if n := len(latencies); n > 0 {
		res.P50 = latencies[n/2]
		res.P99 = latencies[min(n-1, n*99/100)]
		res.Max = latencies[n-1]
	}
	if len(failures) > 0 {
		slices.Sort(failures)
		res.FailedMedian = failures[len(failures)/2]
	}
	used := min(len(perSecond), int(res.Elapsed/time.Second)+1)
	res.PerSecond = perSecond[:used]
	return res, nil
}

func handshake(ctx context.Context, dialer *net.Dialer, cfg LoadConfig, host string) error {
	raw, err := dialer.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return err
	}
	defer raw.Close()
	conn := tls.Client(raw, &tls.Config{
		ServerName: host,
		RootCAs:    cfg.Roots,
		NextProtos: []string{"http/1.1"},
		// No ClientSessionCache: every connection is a full handshake.
	})
	hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return conn.HandshakeContext(hctx)
}

// errorKind sorts a handshake error for the report.
func errorKind(err error) string {
	var ne net.Error
	switch {
	case isCertificateError(err):
		return "certificate"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "other"
}

func isCertificateError(err error) bool {
	var (
		verify   *tls.CertificateVerificationError
		hostname x509.HostnameError
		unknown  x509.UnknownAuthorityError
	)
	return errors.As(err, &verify) || errors.As(err, &hostname) || errors.As(err, &unknown)
}

// ServedSerial completes one handshake for host and returns the serial of
// the certificate served, in hex.
func ServedSerial(ctx context.Context, addr, host string, roots *x509.CertPool) (string, error) {
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	raw, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer raw.Close()
	conn := tls.Client(raw, &tls.Config{ServerName: host, RootCAs: roots})
	if err := conn.HandshakeContext(ctx); err != nil {
		return "", err
	}
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Text(16), nil
}

func hostOf(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return h
}
