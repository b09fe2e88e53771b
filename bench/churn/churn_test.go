package churn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"strings"
	"testing"
	"time"
)

// TestRunLoadCountsWrongCertificates serves the right certificate to every
// host but one, which gets another authority's certificate, and checks
// that the load generator tells the two apart.
func TestRunLoadCountsWrongCertificates(t *testing.T) {
	now := time.Now()
	ca, err := NewAuthority(now)
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewAuthority(now)
	if err != nil {
		t.Fatal(err)
	}
	const hosts = 4
	certs := map[string]*tls.Certificate{}
	for i := range hosts {
		issuer := ca
		if i == 3 {
			issuer = other
		}
		kp, err := issuer.Issue(HostName(i), now)
		if err != nil {
			t.Fatal(err)
		}
		c, err := tls.X509KeyPair(kp.CertPEM, kp.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		certs[HostName(i)] = &c
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) { return certs[h.ServerName], nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_ = c.(*tls.Conn).Handshake()
				c.Close()
			}()
		}
	}()
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.CertPEM)
	res, err := RunLoad(context.Background(), LoadConfig{
		Addr: ln.Addr().String(), Hosts: hosts, Roots: roots, Workers: 4,
		Duration: 10 * time.Second, MaxHandshakes: 400,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Handshakes != 400 {
		t.Fatalf("handshakes = %d, want 400 (the count bound)", res.Handshakes)
	}
	if res.Failed != 0 {
		t.Errorf("failed = %d, want 0: %v", res.Failed, res.FirstErrors)
	}
	// One host in four gets the wrong certificate; 400 random picks make
	// zero wrong ones practically impossible.
	if res.Wrong == 0 || res.Wrong == res.Handshakes {
		t.Errorf("wrong = %d of %d, want some but not all", res.Wrong, res.Handshakes)
	}
	if res.P99 < res.P50 {
		t.Errorf("p99 %v below p50 %v", res.P99, res.P50)
	}
}

func TestRunLoadRefusesNonLoopback(t *testing.T) {
	_, err := RunLoad(context.Background(), LoadConfig{Addr: "192.0.2.1:443", Hosts: 1, Workers: 1, Duration: time.Second, MaxHandshakes: 1})
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("err = %v, want a refusal of a non-loopback address", err)
	}
}

func TestRunLoadCountsRefusedConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there any more
	res, err := RunLoad(context.Background(), LoadConfig{Addr: addr, Hosts: 1, Roots: x509.NewCertPool(), Workers: 1, Duration: 5 * time.Second, MaxHandshakes: 3})
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed != 3 || res.Wrong != 0 {
		t.Fatalf("failed %d, wrong %d; want 3 failed", res.Failed, res.Wrong)
	}
}

func TestWriteMarkdown(t *testing.T) {
	r := &Result{
		Config:  Config{Hosts: 1000, ChangesPerSecond: 10, Duration: time.Minute, Workers: 2, LoadWorkers: 16, LoadCPU: "1"},
		Started: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC),
		Targets: []TargetResult{
			{Name: "portico", Load: LoadResult{Handshakes: 1000, Elapsed: time.Second, P50: time.Millisecond, P99: 2 * time.Millisecond, PerSecond: []int{1, 2, 3}}, Changes: 600, ChangeRate: 10, Checked: 300},
			{Name: "nginx", Load: LoadResult{Handshakes: 500, Elapsed: time.Second, P50: time.Millisecond, P99: 4 * time.Millisecond, PerSecond: []int{1, 1, 1}}, Changes: 600, ChangeRate: 10, Checked: 300},
		},
		Memory: []MemoryResult{{Name: "portico", Hosts: 10000, RSS: 300 << 20, Load: time.Minute}},
	}
	var b strings.Builder
	if err := WriteMarkdown(&b, r, "make bench-churn"); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"| portico | 1000 | 2 |", "handshakes/s 2.00×, p99 0.50×", "| portico | 10000 | 300 MiB |"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}
