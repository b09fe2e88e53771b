package http1

import (
	"crypto/tls"
	"net"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// loopConn is the transport under an event loop connection's *tls.Conn.
// It has three lives: during the handshake it is the accepted net.Conn
// (blocking reads on the Go netpoller, deadlines); on a loop it is a raw
// non-blocking socket, its reads returning only the bytes the loop read and
// then errWouldBlock, its writes never blocking (what the socket does not
// take waits in pending for the loop to send); handed back to a goroutine
// it is a net.Conn again, made from the same socket.
type loopConn struct {
	net.Conn
	local, remote net.Addr

	// onLoop is set while the loop owns the connection; only the loop's
	// thread then reads, writes or closes it.
	onLoop atomic.Bool
	fd     int
	closed bool
	// in is what the loop read and crypto/tls has not taken yet.
	in []byte
	// rest holds in's unread bytes past a loop iteration (in points into
	// the loop's shared read buffer meanwhile).
	rest []byte
	// pending is output the socket did not take yet.
	pending []byte
	// cork holds writes in pending until the loop flushes them.
	cork bool
	// werr is a write error, sticky.
	werr error
}

// wouldBlock is the error of a read on the loop when the loop has no more
// bytes. crypto/tls does not record a temporary error as the connection's
// error: the next Read resumes the record it was reading.
type wouldBlock struct{}

func (wouldBlock) Error() string   { return "http1: would block" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }

var errWouldBlock net.Error = wouldBlock{}

func (lc *loopConn) Read(p []byte) (int, error) {
	if len(lc.in) > 0 {
		n := copy(p, lc.in)
		lc.in = lc.in[n:]
		return n, nil
	}
	if len(lc.rest) > 0 {
		n := copy(p, lc.rest)
		lc.rest = lc.rest[n:]
		return n, nil
	}
	if lc.onLoop.Load() {
		return 0, errWouldBlock
	}
	return lc.Conn.Read(p)
}

func (lc *loopConn) Write(p []byte) (int, error) {
	if !lc.onLoop.Load() {
		return lc.Conn.Write(p)
	}
	if lc.werr != nil {
		return 0, lc.werr
	}
	if lc.cork || len(lc.pending) > 0 {
		lc.pending = append(lc.pending, p...)
		return len(p), nil
	}
	written := 0
	for written < len(p) {
		n, err := rawWrite(lc.fd, p[written:])
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			lc.pending = append(lc.pending, p[written:]...)
			return len(p), nil
		}
		if err != nil {
			lc.werr = err
			return written, err
		}
		written += n
	}
	return len(p), nil
}

// flush sends pending output and reports whether all of it went.
func (lc *loopConn) flush() (done bool, err error) {
	for len(lc.pending) > 0 {
		n, err := rawWrite(lc.fd, lc.pending)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			return false, nil
		}
		if err != nil {
			lc.werr = err
			return false, err
		}
		lc.pending = lc.pending[n:]
	}
	lc.pending = lc.pending[:0]
	return true, nil
}

func (lc *loopConn) Close() error {
	if !lc.onLoop.Load() {
		return lc.Conn.Close()
	}
	if lc.closed {
		return nil
	}
	lc.closed = true
	return unix.Close(lc.fd)
}

func (lc *loopConn) LocalAddr() net.Addr  { return lc.local }
func (lc *loopConn) RemoteAddr() net.Addr { return lc.remote }

// The loop bounds its connections' waits itself (loop.sweep).

func (lc *loopConn) SetDeadline(t time.Time) error {
	if lc.onLoop.Load() {
		return nil
	}
	return lc.Conn.SetDeadline(t)
}

func (lc *loopConn) SetReadDeadline(t time.Time) error {
	if lc.onLoop.Load() {
		return nil
	}
	return lc.Conn.SetReadDeadline(t)
}

func (lc *loopConn) SetWriteDeadline(t time.Time) error {
	if lc.onLoop.Load() {
		return nil
	}
	return lc.Conn.SetWriteDeadline(t)
}

// loopConnFor returns the transport a TLS connection is made over when it
// may move to an event loop after its handshake: the accepted TCP socket
// itself, not a wrapper of it.
func (s *Server) loopConnFor(nc net.Conn) *loopConn {

	if !(s.EventLoops || s.HTTP2EventLoops) || s.FastPath == nil {
		return nil
	}
	if _, ok := nc.(*net.TCPConn); !ok {
		return nil
	}
	return &loopConn{Conn: nc, local: nc.LocalAddr(), remote: nc.RemoteAddr()}
}

// toLoop moves a handshaken connection to an event loop, or reports false,
// changing nothing, when it cannot.
func (s *Server) toLoop(c *conn, lc *loopConn, tc *tls.Conn) bool {
	l := s.adoptSocket(c, lc, tc)
	if l == nil {
		return false
	}
	c.initContext()
	c.buf = readBufferPool.Get().(*[readBufferSize]byte)[:]
	s.mu.Lock()
	c.lp = &loopState{l: l, lc: lc, tc: tc, fp: s.FastPath}
	s.mu.Unlock()
	l.post(loopOp{c: c})
	return true
}

// adoptSocket picks a loop for c and takes lc's socket from the netpoller
// for it: lc then reads and writes a non-blocking copy of the descriptor,
// the netpoller's own being closed. It returns nil, changing nothing,
// when it cannot.
func (s *Server) adoptSocket(c *conn, lc *loopConn, tc *tls.Conn) *loop {
	l := pickLoop()
	if l == nil {
		return nil
	}
	raw, err := lc.Conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		return nil
	}
	fd := -1
	var derr error
	// The copy shares the socket's file status flags: it is non-blocking
	// as the netpoller's is.
	if err := raw.Control(func(f uintptr) { fd, derr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0) }); err != nil || derr != nil {
		return nil
	}
	// The netpoller forgets the socket; the copy keeps it open.
	lc.Conn.Close()
	lc.fd = fd
	lc.onLoop.Store(true)
	c.tlsStateV = tc.ConnectionState()
	c.tlsState = &c.tlsStateV
	return l
}

// closeFromOutside closes the connection for Shutdown (idle ones) or Close
// (force), from a goroutine other than the one serving it; called with
// s.mu held. A loop's connection is closed by its loop.
func (c *conn) closeFromOutside(force bool) {
	if c.lp != nil {
		c.lp.l.post(loopOp{c: c, close: true, force: force})
		return
	}
	if c.h2 != nil {
		c.h2.l.post(loopOp{c: c, close: true, force: force})
		return
	}
	c.nc.Close()
}

// rawRead and rawWrite are read(2) and write(2) on a non-blocking socket
// without telling the scheduler: they cannot block, so the bookkeeping of a
// blocking system call (giving up the P, taking one back) is pure cost, a
// few hundred nanoseconds on each of the four calls of a request.
func rawRead(fd int, p []byte) (int, error)  { return rawIO(unix.SYS_READ, fd, p) }
func rawWrite(fd int, p []byte) (int, error) { return rawIO(unix.SYS_WRITE, fd, p) }

func rawIO(trap uintptr, fd int, p []byte) (int, error) {
	var ptr unsafe.Pointer
	if len(p) > 0 {
		ptr = unsafe.Pointer(&p[0])
	}
	n, _, e := unix.RawSyscall(trap, uintptr(fd), uintptr(ptr), uintptr(len(p)))
	if e != 0 {
		return -1, e
	}
	return int(n), nil
}
