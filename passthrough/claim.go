package passthrough

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"portico.dev/portico/metrics"
)

// This file serves ingress-nginx's ssl-passthrough on the shared HTTPS
// socket: a connection whose ClientHello names a passthrough host is
// spliced to that host's backend as a TLS listener in Passthrough mode
// splices it; every other connection goes on to the socket's TLS
// handshake as if nothing had looked at it.

// NewClaimer returns a server without a listener of its own, whose Claim
// the HTTPS socket calls on each connection before the TLS handshake
// (http1.Server.Claim). cfg.Routes is the passthrough table of the serving
// snapshot (nil when no host asks for passthrough); cfg.HelloTimeout is
// not used: the ClientHello is read within the socket's handshake
// deadline, which the caller sets. Shutdown ends its spliced connections.
func NewClaimer(cfg Config) *Server {
	return NewServer(nil, cfg)
}

// helloBuffers holds the buffers ClientHellos are peeked into; only
// connections of a snapshot with passthrough hosts take one.
var helloBuffers sync.Pool

// Claim takes nc, a connection of the shared HTTPS socket, when its SNI is
// a passthrough host of the serving table, and then serves it to its end
// and reports true. Otherwise it reports false with the connection to
// handshake: nc itself, its bytes untouched, when nc is a TCP socket (the
// ClientHello is peeked, so the event loops can still adopt the socket);
// a connection replaying what was read when nc is a wrapper (PROXY
// protocol), which the loops do not adopt anyway.
//
// Per connection it costs one atomic load while no Ingress asks for
// passthrough; with one, a peek (one recvfrom, more only for a
// ClientHello split across segments) and crypto/tls's parse of the
// ClientHello, before the handshake parses it again: a cost per
// connection, never per request, and only where passthrough is in use.
func (s *Server) Claim(nc net.Conn) (net.Conn, bool) {
	t := s.cfg.Routes()
	if t == nil {
		return nc, false
	}
	var (
		sni  string
		err  error
		rest = nc
		read []byte
	)
	if tc, ok := nc.(*net.TCPConn); ok {
		bp, _ := helloBuffers.Get().(*[]byte)
		if bp == nil || len(*bp) != s.cfg.MaxHelloBytes {
			b := make([]byte, s.cfg.MaxHelloBytes)
			bp = &b
		}
		sni, err = peekClientHello(tc, *bp)
		helloBuffers.Put(bp)
		if errors.Is(err, errNoPeek) {
			read, sni, err = parseClientHello(nc, s.cfg.MaxHelloBytes)
			rest = replay(nc, read)
		}
	} else {
		read, sni, err = parseClientHello(nc, s.cfg.MaxHelloBytes)
		rest = replay(nc, read)
	}
	if err != nil {
		// Not a ClientHello within the bounds: the handshake reports it
		// as it would have.
		return rest, false
	}
	route := t.Match(sni, "/")
	if route == nil {
		return rest, false
	}
	if !s.track(nc, true) {
		nc.Close()
		return nil, true
	}
	defer s.track(nc, false)
	defer nc.Close()
	// The remote address after the ClientHello: a PROXY header, read
	// with it, names the client.
	rec := record{start: time.Now(), remote: nc.RemoteAddr().String(), mode: metrics.ModePassthrough, sni: sni}
	defer s.observe(&rec)
	// The socket's handshake deadline ends here: a spliced connection is
	// bounded by IdleTimeout.
	if err := nc.SetDeadline(time.Time{}); err != nil {
		rec.result = metrics.PassthroughBadHello
		return nil, true
	}
	// Peeked bytes are still in the socket and go through the splice;
	// bytes read from a wrapper are replayed first.
	s.forward(nc, &rec, route, read)
	return nil, true
}

// errNoPeek: the platform cannot peek at a socket; the ClientHello is
// read instead.
var errNoPeek = errors.New("passthrough: cannot peek")

// errHelloIncomplete: the peeked bytes end before the ClientHello does.
var errHelloIncomplete = errors.New("passthrough: ClientHello incomplete")

// parsePeeked parses the ClientHello at the start of b, the bytes peeked so
// far; errHelloIncomplete when they end before it does.
func parsePeeked(b []byte) (string, error) {
	bc := &bytesConn{r: bytes.NewReader(b)}
	_, sni, err := parseClientHello(bc, len(b)+1)
	if err != nil && bc.drained {
		return "", errHelloIncomplete
	}
	return sni, err
}

// bytesConn is a connection whose bytes are b's, then EOF; it never
// writes. parsePeeked runs the ClientHello reader on it.
type bytesConn struct {
	net.Conn
	r       *bytes.Reader
	drained bool
}

func (c *bytesConn) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err == io.EOF {
		c.drained = true
	}
	return n, err
}

func (c *bytesConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *bytesConn) SetReadDeadline(time.Time) error  { return nil }
func (c *bytesConn) SetDeadline(time.Time) error      { return nil }
func (c *bytesConn) SetWriteDeadline(time.Time) error { return nil }
func (c *bytesConn) Close() error                     { return nil }
func (c *bytesConn) LocalAddr() net.Addr              { return nil }
func (c *bytesConn) RemoteAddr() net.Addr             { return nil }

// replay returns c with read put back in front of its next bytes, or c
// itself when nothing was read.
func replay(c net.Conn, read []byte) net.Conn {
	if len(read) == 0 {
		return c
	}
	return &replayConn{Conn: c, pending: read}
}

// replayConn reads pending, then its connection. Writes, deadlines and
// addresses are the connection's.
type replayConn struct {
	net.Conn
	pending []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// Raw is the connection under the replay, for half-closing and for
// the PROXY protocol's own Raw.
func (c *replayConn) Raw() net.Conn {
	if r, ok := c.Conn.(interface{ Raw() net.Conn }); ok {
		return r.Raw()
	}
	return c.Conn
}
