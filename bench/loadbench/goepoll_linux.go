package loadbench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ServeEpollProxyCommand is the hidden loadbench subcommand that runs the
// go-epoll target.
const ServeEpollProxyCommand = "serve-epoll-proxy"

// ServeEpollProxy runs a measurement prototype, not a product: the same
// minimal proxy as go-fasthttp (host check, two forwarding headers, a
// keep-alive backend connection per exchange) but driven by its own event
// loops, one per GOMAXPROCS, each on a locked OS thread blocking in
// epoll_wait over raw non-blocking sockets, as nginx's workers do. No
// goroutine parks on a socket and the Go netpoller is never used after the
// handshake; crypto/tls runs over an in-memory conn fed from the loop.
//
// It exists to answer one question with a figure: how much of the CPU a Go
// proxy spends per request above nginx's is the goroutine-per-connection
// model on the netpoller, and how much is crypto/tls and the runtime that
// an event loop keeps. It serves only what the benchmark sends: GET
// requests without a body, and backend responses framed by Content-Length;
// over HTTP/1.1, or over HTTP/2 with the frames read and written by the
// loop itself (goepoll_h2_linux.go).
func ServeEpollProxy(args []string) error {
	var goroutineExchange bool
	f, cert, err := parseReferenceProxyFlags(ServeEpollProxyCommand, args, func(fs *flag.FlagSet) {
		fs.BoolVar(&goroutineExchange, "goroutine-exchange", false, "run each backend exchange on a goroutine over the netpoller instead of in the loop")
	})
	if err != nil {
		return err
	}
	backendAddr, err := net.ResolveTCPAddr("tcp4", f.backend)
	if err != nil {
		return err
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
	loops := make([]*epollLoop, runtime.GOMAXPROCS(0))
	for i := range loops {
		l, err := newEpollLoop(f.host, backendAddr)
		if err != nil {
			return err
		}
		l.goroutineExchange = goroutineExchange
		l.backendAddr = f.backend
		loops[i] = l
		go l.run()
	}
	ln, err := net.Listen("tcp4", f.addr)
	if err != nil {
		return err
	}
	var next int
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		// A raw, blocking copy of the socket for the handshake; the
		// listener's own conn is closed so that the netpoller forgets it.
		f, err := c.(*net.TCPConn).File()
		c.Close()
		if err != nil {
			continue
		}
		fd, err := syscall.Dup(int(f.Fd()))
		f.Close()
		if err != nil {
			continue
		}
		l := loops[next%len(loops)]
		next++
		go l.handshake(fd, cfg)
	}
}

// epollLoop owns a set of client connections and the backend connections it
// opens for them. Only its own thread touches a connection once registered.
type epollLoop struct {
	epfd    int
	host    []byte
	backend *syscall.SockaddrInet4
	clients [1 << 16]atomic.Pointer[epollClient]
	servers [1 << 16]*epollServer
	idle    []*epollServer
	readBuf [32 << 10]byte

	goroutineExchange bool
	backendAddr       string
}

// goroutinePool holds the backend connections of -goroutine-exchange.
var goroutinePool struct {
	sync.Mutex
	idle []*bufio.Reader
	conn map[*bufio.Reader]net.Conn
}

// memConn is the net.Conn crypto/tls runs over: blocking reads from the
// socket during the handshake, then only the bytes the loop has read.
type memConn struct {
	fd       int
	loop     bool
	in       []byte
	inOffset int
}

// errWouldBlock is temporary, which crypto/tls does not record as the
// connection's error: the next Read resumes the partial record.
type wouldBlock struct{}

func (wouldBlock) Error() string   { return "would block" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }

var errWouldBlock net.Error = wouldBlock{}

func (m *memConn) Read(p []byte) (int, error) {
	if !m.loop {
		n, err := syscall.Read(m.fd, p)
		if n <= 0 && err == nil {
			return 0, errors.New("EOF")
		}
		return max(n, 0), err
	}
	if m.inOffset == len(m.in) {
		return 0, errWouldBlock
	}
	n := copy(p, m.in[m.inOffset:])
	m.inOffset += n
	return n, nil
}

func (m *memConn) Write(p []byte) (int, error) {
	written := 0
	for written < len(p) {
		n, err := syscall.Write(m.fd, p[written:])
		if err == syscall.EAGAIN {
			runtime.Gosched() // the benchmark's responses fit the socket buffer
			continue
		}
		if err != nil {
			return written, err
		}
		written += n
	}
	return written, nil
}

func (m *memConn) Close() error                     { return syscall.Close(m.fd) }
func (m *memConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (m *memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }
func (m *memConn) SetDeadline(time.Time) error      { return nil }
func (m *memConn) SetReadDeadline(time.Time) error  { return nil }
func (m *memConn) SetWriteDeadline(time.Time) error { return nil }

type epollClient struct {
	mem     memConn
	tls     *tls.Conn
	plain   []byte // decrypted request bytes not yet proxied
	scratch [16 << 10]byte
	out     []byte
	server  *epollServer // the backend exchange in flight, if any
	close   bool         // the request in flight asked for Connection: close
	// firstEvent: registered with EPOLLOUT, dropped at the first event.
	firstEvent bool
	busy       atomic.Bool // an exchange runs on a goroutine
	// h2 is the HTTP/2 state of a connection that negotiated h2.
	h2 *epollH2
}

type epollServer struct {
	fd     int
	client *epollClient
	resp   []byte
	// stream is the HTTP/2 stream the exchange answers (goepoll_h2_linux.go).
	stream uint32
}

func newEpollLoop(host string, backend *net.TCPAddr) (*epollLoop, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	sa := &syscall.SockaddrInet4{Port: backend.Port}
	copy(sa.Addr[:], backend.IP.To4())
	return &epollLoop{epfd: epfd, host: []byte(host), backend: sa}, nil
}

func (l *epollLoop) handshake(fd int, cfg *tls.Config) {
	c := &epollClient{mem: memConn{fd: fd}}
	c.tls = tls.Server(&c.mem, cfg)
	if err := c.tls.HandshakeContext(context.Background()); err != nil {
		syscall.Close(fd)
		return
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return
	}
	c.mem.loop = true
	if c.tls.ConnectionState().NegotiatedProtocol == "h2" {
		c.h2 = newEpollH2(c)
	}
	l.clients[fd].Store(c)
	// The client's first request may already sit decrypted-to-be in the
	// TLS buffer, read with its Finished message: EPOLLOUT, true at once,
	// makes the loop look before any new byte arrives.
	c.firstEvent = true
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLOUT | syscall.EPOLLRDHUP, Fd: int32(fd)}
	if err := syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		l.clients[fd].Store(nil)
		syscall.Close(fd)
	}
}

func (l *epollLoop) run() {
	runtime.LockOSThread()
	events := make([]syscall.EpollEvent, 256)
	for {
		n, err := syscall.EpollWait(l.epfd, events, -1)
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			fmt.Fprintln(os.Stderr, "epoll_wait:", err)
			os.Exit(1)
		}
		for _, ev := range events[:n] {
			fd := int(ev.Fd)
			if s := l.servers[fd]; s != nil {
				l.serverReadable(s)
			} else if c := l.clients[fd].Load(); c != nil {
				l.clientReadable(c)
			}
		}
	}
}

func (l *epollLoop) closeClient(c *epollClient) {
	fd := c.mem.fd
	l.clients[fd].Store(nil)
	syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_DEL, fd, nil)
	syscall.Close(fd)
	if s := c.server; s != nil {
		l.closeServer(s)
	}
}

func (l *epollLoop) closeServer(s *epollServer) {
	l.servers[s.fd] = nil
	syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_DEL, s.fd, nil)
	syscall.Close(s.fd)
	if c := s.client; c != nil {
		c.server = nil
	}
}

func (l *epollLoop) clientReadable(c *epollClient) {
	if c.firstEvent {
		c.firstEvent = false
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(c.mem.fd)}
		syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_MOD, c.mem.fd, &ev)
	}
	n, err := syscall.Read(c.mem.fd, l.readBuf[:])
	switch {
	case err == syscall.EAGAIN:
		n = 0
	case n <= 0 || err != nil:
		l.closeClient(c)
		return
	}
	c.mem.in, c.mem.inOffset = l.readBuf[:n], 0
	for {
		m, err := c.tls.Read(c.scratch[:])
		c.plain = append(c.plain, c.scratch[:m]...)
		if err != nil {
			if err == errWouldBlock {
				break
			}
			l.closeClient(c)
			return
		}
	}
	c.mem.in = nil
	if c.h2 != nil {
		l.h2Process(c)
		return
	}
	if c.server == nil && !c.busy.Load() {
		l.proxyRequest(c)
	}
}

var (
	headerEnd       = []byte("\r\n\r\n")
	hostPrefix      = []byte("\r\nhost:")
	contentLength   = []byte("\r\ncontent-length:")
	connectionField = []byte("\r\nconnection:")
)

// proxyRequest sends the first complete request in c.plain to a backend.
func (l *epollLoop) proxyRequest(c *epollClient) {
	end := bytes.Index(c.plain, headerEnd)
	if end < 0 {
		return
	}
	head := c.plain[:end+2] // ends with the last field's CRLF
	c.close = bytes.EqualFold(headerValue(head, connectionField), []byte("close"))
	if !bytes.Equal(headerValue(head, hostPrefix), l.host) {
		l.respond(c, []byte("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"))
		c.plain = c.plain[:copy(c.plain, c.plain[end+4:])]
		return
	}
	if l.goroutineExchange {
		out := append(c.out[:0], head...)
		out = append(out, "X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: https\r\n\r\n"...)
		c.out = out
		c.plain = c.plain[:copy(c.plain, c.plain[end+4:])]
		c.busy.Store(true)
		go l.exchange(c, out)
		return
	}
	s := l.server()
	if s == nil {
		l.respond(c, []byte("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n"))
		c.plain = c.plain[:copy(c.plain, c.plain[end+4:])]
		return
	}
	// Connection is hop-by-hop: the backend connection stays open whatever
	// the client asked for its own.
	out := c.out[:0]
	for rest := head; len(rest) > 0; {
		i := bytes.Index(rest, []byte("\r\n")) + 2
		if line := rest[:i]; len(line) < 11 || !bytes.EqualFold(line[:11], []byte("connection:")) {
			out = append(out, line...)
		}
		rest = rest[i:]
	}
	out = append(out, "X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: https\r\n\r\n"...)
	c.out = out
	c.plain = c.plain[:copy(c.plain, c.plain[end+4:])]
	s.client, c.server = c, s
	if _, err := (&memConn{fd: s.fd}).Write(out); err != nil {
		l.closeServer(s)
		l.respond(c, []byte("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n"))
	}
}

// headerValue returns the trimmed value of the field whose lower-case
// "\r\nname:" prefix is given, matched case-insensitively.
func headerValue(head, prefix []byte) []byte {
	for i := 0; i+len(prefix) <= len(head); i++ {
		if head[i] != '\r' || !bytes.EqualFold(head[i:i+len(prefix)], prefix) {
			continue
		}
		v := head[i+len(prefix):]
		if j := bytes.Index(v, []byte("\r\n")); j >= 0 {
			v = v[:j]
		}
		v = bytes.TrimSpace(v)
		if k := bytes.LastIndexByte(v, ':'); k >= 0 && bytes.IndexByte(v, ']') < k {
			v = v[:k]
		}
		return v
	}
	return nil
}

func (l *epollLoop) server() *epollServer {
	if n := len(l.idle); n > 0 {
		s := l.idle[n-1]
		l.idle = l.idle[:n-1]
		return s
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	if err := syscall.Connect(fd, l.backend); err != nil {
		syscall.Close(fd)
		return nil
	}
	syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil
	}
	s := &epollServer{fd: fd}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(fd)}
	if err := syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		syscall.Close(fd)
		return nil
	}
	l.servers[fd] = s
	return s
}

func (l *epollLoop) serverReadable(s *epollServer) {
	n, err := syscall.Read(s.fd, l.readBuf[:])
	if n <= 0 || err != nil {
		if err == syscall.EAGAIN {
			return
		}
		c := s.client
		l.closeServer(s)
		l.dropIdle(s)
		if c != nil {
			l.respond(c, []byte("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n"))
		}
		return
	}
	s.resp = append(s.resp, l.readBuf[:n]...)
	end := bytes.Index(s.resp, headerEnd)
	if end < 0 {
		return
	}
	length, err := strconv.Atoi(string(headerValue(s.resp[:end+2], contentLength)))
	if err != nil {
		return
	}
	total := end + 4 + length
	if len(s.resp) < total {
		return
	}
	c := s.client
	if c.h2 != nil {
		s.client = nil
		if l.clients[c.mem.fd].Load() == c {
			l.h2Respond(c, s.stream, s.resp[:total], end)
		}
		s.resp = s.resp[:0]
		l.idle = append(l.idle, s)
		return
	}
	s.client, c.server = nil, nil
	resp := s.resp[:total]
	if c.close {
		// Tell the client its connection ends here, as it asked.
		resp = append(append(append(c.out[:0], s.resp[:end+2]...), "Connection: close\r\n"...), s.resp[end+2:total]...)
		c.out = resp
	}
	l.respond(c, resp)
	s.resp = s.resp[:0]
	l.idle = append(l.idle, s)
	if !c.close && l.clients[c.mem.fd].Load() == c && len(c.plain) > 0 {
		l.proxyRequest(c)
	}
}

func (l *epollLoop) dropIdle(s *epollServer) {
	for i, x := range l.idle {
		if x == s {
			l.idle = append(l.idle[:i], l.idle[i+1:]...)
			return
		}
	}
}

// exchange is -goroutine-exchange's backend leg: blocking I/O on a
// goroutine, as a goroutine-per-connection proxy does it.
func (l *epollLoop) exchange(c *epollClient, req []byte) {
	defer c.busy.Store(false)
	p := &goroutinePool
	p.Lock()
	var br *bufio.Reader
	if n := len(p.idle); n > 0 {
		br = p.idle[n-1]
		p.idle = p.idle[:n-1]
	}
	p.Unlock()
	if br == nil {
		conn, err := net.Dial("tcp", l.backendAddr)
		if err != nil {
			c.tls.Write([]byte("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n"))
			return
		}
		br = bufio.NewReaderSize(conn, 32<<10)
		p.Lock()
		if p.conn == nil {
			p.conn = map[*bufio.Reader]net.Conn{}
		}
		p.conn[br] = conn
		p.Unlock()
	}
	p.Lock()
	conn := p.conn[br]
	p.Unlock()
	if _, err := conn.Write(req); err != nil {
		conn.Close()
		c.tls.Write([]byte("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n"))
		return
	}
	var resp []byte
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			conn.Close()
			c.tls.Write([]byte("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n"))
			return
		}
		resp = append(resp, line...)
		if len(line) == 2 {
			break
		}
	}
	length, _ := strconv.Atoi(string(headerValue(resp, contentLength)))
	start := len(resp)
	resp = append(resp, make([]byte, length)...)
	if _, err := io.ReadFull(br, resp[start:]); err != nil {
		conn.Close()
		return
	}
	// Free before the write: the client's next request may arrive as soon
	// as it has the response. crypto/tls allows a Read during a Write.
	c.busy.Store(false)
	c.tls.Write(resp)
	p.Lock()
	p.idle = append(p.idle, br)
	p.Unlock()
}

// respond writes a whole response in one TLS record and one write.
func (l *epollLoop) respond(c *epollClient, resp []byte) {
	if _, err := c.tls.Write(resp); err != nil {
		l.closeClient(c)
	} else if c.close {
		c.tls.CloseWrite() // close_notify, or clients count a truncation
		l.closeClient(c)
	}
}

// startGoEpoll starts the go-epoll target: the loadbench binary re-executed
// as ServeEpollProxy.
func startGoEpoll(ctx context.Context, env *Env, dir string) (*Instance, error) {
	return startReferenceProxy(ctx, env, dir, "go-epoll", ServeEpollProxyCommand)
}

// startGoEpollGoroutineExchange starts go-epoll-gx: go-epoll with
// -goroutine-exchange.
func startGoEpollGoroutineExchange(ctx context.Context, env *Env, dir string) (*Instance, error) {
	return startReferenceProxy(ctx, env, dir, "go-epoll-gx", ServeEpollProxyCommand, "-goroutine-exchange")
}
