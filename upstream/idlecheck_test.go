package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"runtime"
	"testing"
	"time"
)

// The idle check tells a quiet connection from one the backend closed or
// sent stray bytes on, and over TLS from one that merely received TLS 1.3
// post-handshake messages.
func TestIdleConnectionCheck(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the idle check peeks with a Linux recvfrom")
	}
	ca := newTestCA(t, "backend CA")
	cert := ca.issue(t, []string{"backend.test"})
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)

	cases := []struct {
		name   string
		useTLS bool
		// auth set to RequestClientCert makes a TLS 1.3 server send its
		// session tickets after the client's Finished, so they wait on
		// the socket of the idle connection rather than in crypto/tls's
		// buffers.
		auth tls.ClientAuthType
	}{
		{"plain", false, tls.NoClientCert},
		{"TLS 1.3", true, tls.NoClientCert},
		{"TLS 1.3 tickets on the socket", true, tls.RequestClientCert},
	}
	for _, tc := range cases {
		useTLS := tc.useTLS
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			accepted := make(chan net.Conn, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				if useTLS {
					tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13, ClientAuth: tc.auth})
					if tc.Handshake() != nil {
						return
					}
					c = tc
				}
				accepted <- c
			}()

			tr := newTestTransport(t, Config{})
			p := &endpointPool{addr: ln.Addr().String()}
			if useTLS {
				p.tls = &tls.Config{ServerName: "backend.test", RootCAs: roots, ClientSessionCache: tls.NewLRUClientSessionCache(1)}
			}
			c, err := tr.dial(context.Background(), p, "ns/b:80")
			if err != nil {
				t.Fatal(err)
			}
			defer c.close()
			var srv net.Conn
			select {
			case srv = <-accepted:
			case <-time.After(safety):
				t.Fatal("no connection accepted")
			}
			defer srv.Close()

			// Over TLS 1.3, the server's session tickets are on their way
			// or already read by crypto/tls along with the handshake: the
			// check must read them through and keep the connection.
			if tc.auth == tls.RequestClientCert {
				waitPending(t, c)
			}
			if !c.usable() {
				t.Fatal("a quiet connection is not usable")
			}
			if !c.usable() {
				t.Fatal("a quiet connection is not usable the second time")
			}

			if _, err := io.WriteString(srv, "H"); err != nil {
				t.Fatal(err)
			}
			waitPending(t, c)
			if c.usable() {
				t.Error("a connection with stray bytes is usable")
			}
		})
	}

	t.Run("closed by the backend", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			if c, err := ln.Accept(); err == nil {
				_ = c.Close()
			}
		}()
		tr := newTestTransport(t, Config{})
		c, err := tr.dial(context.Background(), &endpointPool{addr: ln.Addr().String()}, "ns/b:80")
		if err != nil {
			t.Fatal(err)
		}
		defer c.close()
		waitPending(t, c)
		if c.usable() {
			t.Error("a connection the backend closed is usable")
		}
	})
}

// waitPending waits, bounded, until the peek sees something on c.
func waitPending(t *testing.T, c *conn) {
	t.Helper()
	for range 1000 {
		if err := c.raw.Read(c.peek); err != nil || c.peeked != idleQuiet {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("nothing arrived on the connection")
}

// The check runs on every reuse of a pooled connection: it must not
// allocate.
func TestIdleConnectionCheckAllocations(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the idle check peeks with a Linux recvfrom")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			defer c.Close()
			_, _ = io.Copy(io.Discard, c)
		}
	}()
	tr := newTestTransport(t, Config{})
	c, err := tr.dial(context.Background(), &endpointPool{addr: ln.Addr().String()}, "ns/b:80")
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	if n := testing.AllocsPerRun(100, func() {
		if !c.usable() {
			t.Fatal("a quiet connection is not usable")
		}
	}); n != 0 {
		t.Errorf("the idle check allocates %v times", n)
	}
}

// The reaper closes idle connections the backend closed, without waiting
// for them to be taken or to expire, and keeps the quiet ones in order.
func TestReaperSweepsClosedConnections(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the idle check peeks with a Linux recvfrom")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 3)
	go func() {
		for range 3 {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	tr := newTestTransport(t, Config{})
	p := &endpointPool{addr: ln.Addr().String(), lastUsed: time.Now()}
	var conns []*conn
	for range 3 {
		c, err := tr.dial(context.Background(), p, "ns/b:80")
		if err != nil {
			t.Fatal(err)
		}
		defer c.close()
		srv := <-accepted
		defer srv.Close()
		conns = append(conns, c)
		if len(conns) == 2 {
			_ = srv.Close() // the backend closes the middle one
			waitPending(t, c)
		}
	}
	now := time.Now()
	for _, c := range conns {
		c.idleSince = now
	}
	p.idle = append([]*conn(nil), conns...)
	if unused := p.closeExpired(now, time.Minute); unused {
		t.Error("a pool with quiet connections was reported unused")
	}
	if len(p.idle) != 2 || p.idle[0] != conns[0] || p.idle[1] != conns[2] {
		t.Fatalf("%d idle connections left, want the first and the last in order", len(p.idle))
	}
}
