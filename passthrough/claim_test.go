package passthrough

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"portico.dev/portico/routing"
	"portico.dev/portico/upstream"
)

// clientHello returns the bytes of a crypto/tls ClientHello for
// serverName, as a client sends them.
func clientHello(t *testing.T, serverName string) []byte {
	t.Helper()
	client, server := pipe(t)
	startHello(client, serverName)
	hello, _, err := readClientHello(server, DefaultMaxHelloBytes, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return hello
}

// claimTable passes app.test through to endpoint ("" for none).
func claimTable(endpoint string) *routing.Table {
	be := &upstream.Backend{Name: "ns/app:443"}
	if endpoint != "" {
		be.Endpoints = []string{endpoint}
	}
	route := &routing.Route{
		Source: routing.Source{Kind: "Ingress", Namespace: "ns", Name: "app", Rule: "0/0"},
		Host:   "app.test", PathKind: routing.PathPrefix, Path: "/",
		Backend: be, Backends: []routing.WeightedBackend{{Backend: be, Weight: 1}},
	}
	table, _ := routing.Compile([]*routing.Route{route}, nil)
	return table
}

// TestClaim drives Claim on loopback sockets: a ClientHello for a host
// not passed through leaves the socket as it was, its bytes unread; one
// for the passthrough host, even split across two writes, reaches the
// backend whole; a passthrough host whose backend has no endpoint gets its
// connection closed.
func TestClaim(t *testing.T) {
	backendLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer backendLn.Close()
	logger := slog.New(slog.DiscardHandler)

	t.Run("other host: untouched", func(t *testing.T) {
		s := NewClaimer(Config{Routes: func() *routing.Table { return claimTable(backendLn.Addr().String()) }, Logger: logger})
		client, server := pipe(t)
		hello := clientHello(t, "other.test")
		if _, err := client.Write(hello); err != nil {
			t.Fatal(err)
		}
		server.SetDeadline(time.Now().Add(10 * time.Second))
		rest, claimed := s.Claim(server)
		if claimed || rest != server {
			t.Fatalf("claimed %t, connection %T; want the socket itself back", claimed, rest)
		}
		got := make([]byte, len(hello))
		if _, err := io.ReadFull(server, got); err != nil || !bytes.Equal(got, hello) {
			t.Errorf("after Claim the socket reads %x, %v; want the ClientHello still there", got, err)
		}
	})

	t.Run("passthrough host, split ClientHello", func(t *testing.T) {
		s := NewClaimer(Config{Routes: func() *routing.Table { return claimTable(backendLn.Addr().String()) }, Logger: logger})
		client, server := pipe(t)
		hello := clientHello(t, "app.test")
		go func() {
			client.Write(hello[:7])
			time.Sleep(50 * time.Millisecond)
			client.Write(hello[7:])
		}()
		received := make(chan []byte, 1)
		go func() {
			c, err := backendLn.Accept()
			if err != nil {
				received <- nil
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			buf := make([]byte, len(hello))
			n, _ := io.ReadFull(c, buf)
			received <- buf[:n]
		}()
		server.SetDeadline(time.Now().Add(10 * time.Second))
		done := make(chan bool, 1)
		go func() {
			_, claimed := s.Claim(server)
			done <- claimed
		}()
		if got := <-received; !bytes.Equal(got, hello) {
			t.Errorf("the backend got %d bytes, want the %d of the ClientHello", len(got), len(hello))
		}
		client.Close()
		if !<-done {
			t.Error("the connection for the passthrough host was not claimed")
		}
	})

	t.Run("passthrough host without endpoints", func(t *testing.T) {
		s := NewClaimer(Config{Routes: func() *routing.Table { return claimTable("") }, Logger: logger})
		client, server := pipe(t)
		if _, err := client.Write(clientHello(t, "app.test")); err != nil {
			t.Fatal(err)
		}
		server.SetDeadline(time.Now().Add(10 * time.Second))
		if _, claimed := s.Claim(server); !claimed {
			t.Fatal("not claimed")
		}
		client.SetDeadline(time.Now().Add(10 * time.Second))
		if n, err := client.Read(make([]byte, 1)); err == nil {
			t.Errorf("read %d bytes; want the connection closed", n)
		}
	})

	t.Run("no passthrough table", func(t *testing.T) {
		s := NewClaimer(Config{Routes: func() *routing.Table { return nil }, Logger: logger})
		_, server := pipe(t)
		if rest, claimed := s.Claim(server); claimed || rest != server {
			t.Error("a connection was looked at without a passthrough table")
		}
	})
}

// TestClaimWrapped: a connection that is not a TCP socket (PROXY protocol)
// has its ClientHello read; when not claimed, what was read is replayed in
// front of the rest.
func TestClaimWrapped(t *testing.T) {
	s := NewClaimer(Config{Routes: func() *routing.Table { return claimTable("127.0.0.1:1") }, Logger: slog.New(slog.DiscardHandler)})
	client, server := pipe(t)
	hello := clientHello(t, "other.test")
	if _, err := client.Write(append(append([]byte{}, hello...), "after"...)); err != nil {
		t.Fatal(err)
	}
	server.SetDeadline(time.Now().Add(10 * time.Second))
	rest, claimed := s.Claim(struct{ net.Conn }{server})
	if claimed {
		t.Fatal("claimed a connection for another host")
	}
	want := append(append([]byte{}, hello...), "after"...)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(rest, got); err != nil || !bytes.Equal(got, want) {
		t.Errorf("read %q, %v; want the ClientHello then the rest", got, err)
	}
}
