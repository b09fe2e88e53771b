package http1

import (
	"net"
	"sync"
)

// ConnListener is a net.Listener that yields connections handed to it with
// Push: it lets an http.Server serve the already-handshaken "h2"
// connections that ServeTLS sorted out, exactly as it serves those it
// accepts itself.
type ConnListener struct {
	addr   net.Addr
	conns  chan net.Conn
	once   sync.Once
	closed chan struct{}
}

// NewConnListener returns a ConnListener reporting addr as its address.
func NewConnListener(addr net.Addr) *ConnListener {
	return &ConnListener{addr: addr, conns: make(chan net.Conn), closed: make(chan struct{})}
}

// Push hands c to the next Accept, or closes it if the listener is closed.
func (l *ConnListener) Push(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.closed:
		c.Close()
	}
}

// Accept waits for a pushed connection.
func (l *ConnListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// Close makes Accept fail and Push close what it is given.
func (l *ConnListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

// Addr is the address given to NewConnListener.
func (l *ConnListener) Addr() net.Addr { return l.addr }
