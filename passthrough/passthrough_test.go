package passthrough

import (
	"context"
	stdtls "crypto/tls"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"portico.dev/portico/routing"
	"portico.dev/portico/upstream"
)

// pipe returns the two ends of a loopback TCP connection.
func pipe(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// readClientHello is the server's first step on its own: parseClientHello
// within timeout.
func readClientHello(c net.Conn, maxBytes int, timeout time.Duration) ([]byte, string, error) {
	if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, "", err
	}
	hello, sni, err := parseClientHello(c, maxBytes)
	if err != nil {
		return nil, "", err
	}
	return hello, sni, nil
}

// startHello sends a crypto/tls ClientHello for serverName on client; the
// handshake is left to fail when the test closes the connection.
func startHello(client net.Conn, serverName string) {
	go func() {
		c := stdtls.Client(client, &stdtls.Config{ServerName: serverName, InsecureSkipVerify: true})
		c.SetDeadline(time.Now().Add(10 * time.Second))
		_ = c.Handshake()
	}()
}

// TestReadClientHello reads a real ClientHello: the SNI is found and the
// bytes returned are the whole TLS record(s), to be replayed as they are.
func TestReadClientHello(t *testing.T) {
	client, server := pipe(t)
	startHello(client, "App.Example.test")
	hello, sni, err := readClientHello(server, DefaultMaxHelloBytes, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if sni != "App.Example.test" {
		t.Errorf("SNI %q, want App.Example.test", sni)
	}
	if len(hello) < 5 || hello[0] != 0x16 {
		t.Fatalf("read %d bytes starting %x, want a handshake record", len(hello), hello[:min(len(hello), 5)])
	}
	if n := 5 + int(hello[3])<<8 | int(hello[4]); n > len(hello) {
		t.Errorf("record of %d bytes, only %d read", n, len(hello))
	}
}

// TestReadClientHelloRejects: what is not a ClientHello within the bounds
// gives no SNI (the connection is then closed): a larger ClientHello than
// the limit, plain HTTP, and a client that sends nothing.
func TestReadClientHelloRejects(t *testing.T) {
	t.Run("too large", func(t *testing.T) {
		client, server := pipe(t)
		startHello(client, "app.example.test")
		if _, _, err := readClientHello(server, 64, 10*time.Second); err == nil {
			t.Error("a ClientHello larger than 64 bytes was accepted")
		}
	})
	t.Run("plain HTTP", func(t *testing.T) {
		client, server := pipe(t)
		go client.Write([]byte("GET / HTTP/1.1\r\nHost: app.example.test\r\n\r\n"))
		if _, _, err := readClientHello(server, DefaultMaxHelloBytes, 10*time.Second); err == nil {
			t.Error("an HTTP request was taken for a ClientHello")
		}
	})
	t.Run("silent client", func(t *testing.T) {
		_, server := pipe(t)
		_, _, err := readClientHello(server, DefaultMaxHelloBytes, 50*time.Millisecond)
		if err == nil || !strings.Contains(err.Error(), "timeout") {
			t.Errorf("error %v, want a timeout", err)
		}
	})
}

// TestSpliceIdle: a spliced connection on which nothing moves either way
// is closed on both sides once the idle timeout passes, and one busy
// direction keeps the other's quiet reader waiting.
func TestSpliceIdle(t *testing.T) {
	client, gwClient := pipe(t)
	gwBackend, backend := pipe(t)
	done := make(chan int64, 1)
	go func() {
		in, _ := splice(gwClient, gwBackend, []byte("hello"), time.Second)
		done <- in
	}()
	buf := make([]byte, 5)
	backend.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := backend.Read(buf); err != nil || string(buf) != "hello" {
		t.Fatalf("backend read %q, %v; want the replayed hello", buf, err)
	}
	// The backend streams for a while the client stays quiet: the
	// connection must survive past the idle timeout.
	client.SetDeadline(time.Now().Add(10 * time.Second))
	for range 5 {
		if _, err := backend.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := client.Read(buf[:1]); err != nil {
			t.Fatalf("a streaming connection was closed: %v", err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	select {
	case in := <-done:
		if in != 5 {
			t.Errorf("bytes in %d, want 5", in)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("an idle spliced connection was not closed")
	}
	if _, err := client.Read(buf); err == nil {
		t.Error("the client's connection is still open after the idle timeout")
	}
}

// lockedBuffer collects log output written from the server's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestServerAccessLog serves a socket with one TLSRoute for app.test: a
// ClientHello for it reaches the backend as it was sent, one for another
// name is closed, and each connection ends with an access log record of
// its SNI, result, route and bytes.
func TestServerAccessLog(t *testing.T) {
	backendLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer backendLn.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := backendLn.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 5)
		if _, err := io.ReadFull(c, buf); err != nil {
			got <- nil
			return
		}
		got <- buf
	}()
	route := &routing.Route{
		Source:   routing.Source{Kind: "TLSRoute", Namespace: "ns", Name: "app", Rule: "0/0"},
		Host:     "app.test",
		PathKind: routing.PathPrefix,
		Path:     "/",
		Backends: []routing.WeightedBackend{{Backend: &upstream.Backend{Name: "ns/app:443", Endpoints: []string{backendLn.Addr().String()}}, Weight: 1}},
	}
	table, _ := routing.CompileListeners([]routing.ListenerRoutes{{Routes: []*routing.Route{route}}}, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	srv := NewServer(ln, Config{
		Routes:    func() *routing.Table { return table },
		AccessLog: slog.New(slog.NewTextHandler(&logs, nil)),
		Logger:    slog.New(slog.DiscardHandler),
	})
	go srv.Serve()
	defer srv.Shutdown(context.Background())

	for _, name := range []string{"app.test", "other.test"} {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		tc := stdtls.Client(c, &stdtls.Config{ServerName: name, InsecureSkipVerify: true})
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err == nil {
			t.Errorf("%s: a handshake completed, but nothing on the path holds a certificate", name)
		}
		c.Close()
	}
	if b := <-got; len(b) != 5 || b[0] != 0x16 {
		t.Errorf("the backend got %x, want the ClientHello record", b)
	}
	want := []string{
		`msg=passthrough`, `sni=app.test mode=passthrough result=spliced route="TLSRoute ns/app rule 0/0" backend=ns/app:443`,
		`sni=other.test mode=passthrough result=no_route route=""`,
	}
	var out string
	for range 200 {
		out = logs.String()
		if strings.Count(out, "msg=passthrough") == 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("access log lacks %q:\n%s", w, out)
		}
	}
}
