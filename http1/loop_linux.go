package http1

import (
	"bytes"
	"crypto/tls"
	"log/slog"
	"math/bits"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Event loops.
//
// A goroutine per connection parked on Go's netpoller costs, per request, a
// read that returns EAGAIN before each wait, a goroutine wake-up and the
// scheduler threads' spinning: measured with the go-fasthttp and go-epoll
// targets of make bench, a proxy on the netpoller spends about 1.2x nginx's
// CPU per request however little it does, and the same work on event loops
// 0.8x (bench/profile-notes.md). So, as nginx's workers do, each loop
// serves raw non-blocking sockets from its own epoll set, one loop per core,
// the client's and the backend's: it reads a request, decrypts it with
// crypto/tls over the bytes it read (loopConn), asks the FastPath for the
// request to send, writes it on a backend connection the loop keeps alive,
// reads the answer and writes the response, with no goroutine involved.
//
// The loop does only that common case. Anything else leaves it: a request
// with a body or an upgrade, one the router serves otherwise (filters,
// authentication, redirects), a head the parser refuses, a response that is
// not of the common kind, larger than upstream.LoopResponseMax or slower
// than loopExchangeMax: the connection goes back to a goroutine (the
// socket becomes a net.Conn on the netpoller again) and the engine serves
// it from there as it serves any other, for the rest of its life. So
// everything that is strict, bounded or rare is written once, in the
// goroutine engine, and the loop only makes the common case cheap.

// loopExchangeMax is how long a backend may take to answer on a loop
// before the exchange moves to a goroutine, which bounds it with the
// backend client's own timeouts; so a slow backend never holds a loop's
// memory, and its clients' next requests are served the ordinary way.
const loopExchangeMax = LoopExchangeMax

// loopSweepEvery is how often a loop looks for connections whose wait is
// over (idle, head or exchange).
const loopSweepEvery = 250 * time.Millisecond

// loopIdleBackends bounds the idle backend connections a loop keeps per
// endpoint; loopBackendIdleTime is how long one may stay idle.
const (
	loopIdleBackends    = 64
	loopBackendIdleTime = 30 * time.Second
)

// loops is the process's event loops, started on first use, one per
// GOMAXPROCS; every Server with EventLoops on shares them.
var loops struct {
	once sync.Once
	all  []*loop
	next int
	mu   sync.Mutex
}

func pickLoop() *loop {
	loops.once.Do(func() {
		var all []*loop
		for range runtime.GOMAXPROCS(0) {
			l, err := newLoop()
			if err != nil {
				slog.Error("http1: no event loops, connections are served by goroutines", "error", err)
				break
			}
			all = append(all, l)
			go l.run()
		}
		loops.mu.Lock()
		loops.all = all
		loops.mu.Unlock()
	})
	loops.mu.Lock()
	defer loops.mu.Unlock()
	if len(loops.all) == 0 {
		return nil
	}
	l := loops.all[loops.next%len(loops.all)]
	loops.next++
	return l
}

// loop is one event loop. Everything but its inbox is touched only by its
// own thread.
type loop struct {
	epfd, wakefd int
	epfile       *os.File // epfd, kept open
	epwait       syscall.RawConn

	mu    sync.Mutex
	inbox []loopOp

	fds     []loopSlot // by file descriptor
	conns   map[*conn]struct{}
	h2conns map[*h2conn]struct{}
	// dirty are HTTP/2 connections with frames to send at the batch's end.
	dirty    []*h2conn
	backends map[*loopBackend]struct{}
	idle     map[string][]*loopBackend
	states   map[FastPath]any
	// bufs are response buffers free for the next exchange: a buffer is
	// held only while an exchange is in flight.
	bufs [][]byte
	rbuf []byte
	// recentPolls has a bit per poll of the epoll set, the latest lowest,
	// set when events were ready: collect waits the busy way when enough
	// of the last 32 found some.
	recentPolls uint32
	lastSwep    time.Time
	// current is the client whose event is being handled, for recovery.
	current *conn

	// Counts for EventLoopCounts.
	served, handedOff, continued atomic.Uint64
}

type loopSlot struct {
	c *conn
	h *h2conn
	b *loopBackend
}

// loopOp is a request from another goroutine: adopt a connection, or
// close it (Shutdown, Close), or what an HTTP/2 stream's handler asks.
type loopOp struct {
	c     *conn
	close bool
	force bool
	h2    *h2op
}

// loopState is what a connection on a loop carries besides conn.
type loopState struct {
	l     *loop
	lc    *loopConn
	tc    *tls.Conn
	fp    FastPath
	state any
	// The exchange in flight, if any.
	be        *loopBackend
	endpoint  string
	token     any
	start     time.Time
	req       *http.Request
	rc        *requestContext
	headStart int
	// deadline ends the current wait (idle, head or output).
	deadline time.Time
	// wantOut says EPOLLOUT is registered; readOff says EPOLLIN is not.
	wantOut, readOff bool
	closeAfter       bool
	out              []byte
	// idleSince is when the connection last became idle; zero once the
	// sweep took its buffers back.
	idleSince time.Time
	// inHead says part of a head has arrived and deadline is its end.
	inHead bool
	// served says a request was served: until then the wait for one is
	// bounded by the header timeout, after by the idle timeout.
	served bool
}

// loopBackend is a backend connection a loop owns.
type loopBackend struct {
	fd         int
	endpoint   string
	c          *conn // the client whose exchange it carries; nil when idle
	s          *h2stream
	buf        []byte
	out        []byte
	connecting bool
	reused     bool
	wantOut    bool
	// budgeted says the connection was dialled with a token of its
	// client's dial budget (FastPath.TakeDial), not yet given back.
	budgeted  bool
	idleSince time.Time
}

func newLoop() (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wakefd)}); err != nil {
		unix.Close(epfd)
		unix.Close(wakefd)
		return nil, err
	}
	// A loop that is not busy waits for its epoll set on Go's netpoller
	// (an epoll descriptor is readable when it has events); see collect.
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		unix.Close(wakefd)
		return nil, err
	}
	f := os.NewFile(uintptr(epfd), "epoll")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		unix.Close(wakefd)
		return nil, err
	}
	return &loop{
		epfile: f, epwait: rc,
		epfd: epfd, wakefd: wakefd,
		conns:    map[*conn]struct{}{},
		h2conns:  map[*h2conn]struct{}{},
		backends: map[*loopBackend]struct{}{},
		idle:     map[string][]*loopBackend{},
		states:   map[FastPath]any{},
		rbuf:     make([]byte, 32<<10),
	}, nil
}

func (l *loop) post(op loopOp) {
	l.mu.Lock()
	l.inbox = append(l.inbox, op)
	l.mu.Unlock()
	l.wake()
}

func (l *loop) wake() {
	one := [8]byte{1}
	_, _ = unix.Write(l.wakefd, one[:])
}

func (l *loop) run() {
	// A tick wakes the loop for its sweep whatever else happens.
	go func() {
		for range time.Tick(loopSweepEvery) {
			l.wake()
		}
	}()
	events := make([]unix.EpollEvent, 256)
	for !l.serve(events) {
	}
}

// serve runs the loop until a panic, which it recovers from: a bug met by
// one connection's bytes must not end the process and every other
// connection with it. The connection being served is closed, the panic
// logged, and run starts serve again.
func (l *loop) serve(events []unix.EpollEvent) (stopped bool) {
	defer func() {
		if err := recover(); err != nil {
			slog.Error("http1: panic in an event loop", "panic", err, "stack", string(debug.Stack()))
			if c := l.current; c != nil {
				l.current = nil
				if c.h2 != nil {
					l.h2Close(c.h2)
				} else {
					l.clientGone(c)
				}
			}
		}
	}()
	var ops []loopOp
	var n int
	parked := func(fd uintptr) bool {
		var err error
		n, err = unix.EpollWait(int(fd), events, 0)
		if err != nil {
			n = 0
		}
		return n > 0
	}
	for {
		n = l.collect(events, parked, &n)
		for _, ev := range events[:n] {
			fd := int(ev.Fd)
			if fd == l.wakefd {
				var b [8]byte
				_, _ = unix.Read(l.wakefd, b[:])
				l.mu.Lock()
				ops, l.inbox = l.inbox, ops[:0]
				l.mu.Unlock()
				for _, op := range ops {
					l.do(op)
				}
				continue
			}
			if fd >= len(l.fds) {
				continue
			}
			switch slot := l.fds[fd]; {
			case slot.c != nil:
				l.current = slot.c
				l.clientEvent(slot.c, ev.Events)
			case slot.h != nil:
				l.current = slot.h.c
				l.h2Event(slot.h, ev.Events)
			case slot.b != nil:
				if s := slot.b.s; s != nil {
					l.current = s.h.c
					l.h2BackendEvent(slot.b, ev.Events)
				} else {
					l.current = slot.b.c
					l.backendEvent(slot.b, ev.Events)
				}
			}
			l.current = nil
		}
		if now := time.Now(); now.Sub(l.lastSwep) >= loopSweepEvery {
			l.lastSwep = now
			l.sweep(now)
		}
		l.h2FlushDirty()
		// A loop with work never parks, so another goroutine queued on
		// its P (the other loop, a handshake) would wait for the
		// scheduler's 10 ms preemption: yield after each batch.
		runtime.Gosched()
	}
}

// loopBusyPolls is how many of a loop's last 32 polls must have found
// events for it to wait in epoll_wait rather than on the netpoller.
const loopBusyPolls = 8

// collect returns the loop's next events, waiting for some. It polls the
// epoll set first; when nothing is ready it waits one of two ways:
//
//   - A busy loop (events ready at loopBusyPolls of its last 32 polls)
//     blocks in epoll_wait, as an nginx worker does, unless a TLS
//     handshake is in progress: the kernel wakes its thread when an event
//     comes. Parking on the netpoller instead, loaded loops left CPU idle:
//     one thread at a time waits on Go's netpoller, so the thread woken
//     for one loop's events has to wake another for the other loop's. In
//     `small` runs against nginx (BENCH_TARGETS=portico,nginx, 3-4 rounds
//     a run) parking alone lost all 9 rounds (median 0.89x nginx's
//     req/s); waiting this way won 11 of 15 (median about 1.05x, p99
//     below nginx's in 11).
//   - Any other loop parks on the netpoller until its epoll descriptor is
//     readable. Blocked in a system call, a goroutine holds its P until
//     the scheduler takes it away, and gets one back through the slow
//     path when it returns; goroutines that need a P meanwhile wait for
//     that. With one connection exchanging requests one at a time,
//     blocking doubled the CPU of each (BenchmarkGatewayKeepAlive, 87-99
//     µs against 53-56), and blocking while handshakes ran made them
//     slower (p50 12-14 ms against 8 in the `handshake` workload).
//
// parked is the netpoller's readiness check; it sets *n.
func (l *loop) collect(events []unix.EpollEvent, parked func(uintptr) bool, n *int) int {
	ready, _ := unix.EpollWait(l.epfd, events, 0)
	l.recentPolls <<= 1
	if ready > 0 {
		l.recentPolls |= 1
		return ready
	}
	if bits.OnesCount32(l.recentPolls) >= loopBusyPolls && handshakes.Load() == 0 {
		for {
			ready, err := unix.EpollWait(l.epfd, events, -1)
			if ready > 0 {
				return ready
			}
			if err != nil && err != unix.EINTR {
				panic("http1: waiting for epoll events: " + err.Error())
			}
		}
	}
	if err := l.epwait.Read(parked); err != nil {
		panic("http1: waiting for epoll events: " + err.Error())
	}
	return *n
}

// stateFor returns what the loop keeps for fp, made on first use.
func (l *loop) stateFor(fp FastPath) any {
	st, ok := l.states[fp]
	if !ok {
		st = fp.NewLoopState()
		l.states[fp] = st
	}
	return st
}

// unregister removes fd from the loop's epoll set and slots; the caller
// closes or hands over the descriptor.
func (l *loop) unregister(fd int) {
	_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, fd, nil)
	l.fds[fd] = loopSlot{}
}

// forget forgets fd, which the caller closes: closing a socket's last
// descriptor takes it out of every epoll set, so the loop does not ask
// for that with a system call of its own.
func (l *loop) forget(fd int) {
	l.fds[fd] = loopSlot{}
}

func (l *loop) setSlot(fd int, s loopSlot) {
	if fd >= len(l.fds) {
		l.fds = append(l.fds, make([]loopSlot, fd+1-len(l.fds)+64)...)
	}
	l.fds[fd] = s
}

// do runs an operation posted from another goroutine.
func (l *loop) do(op loopOp) {
	if op.h2 != nil {
		l.h2Op(op.h2)
		return
	}
	c := op.c
	if c.h2 != nil {
		l.h2Do(c.h2, op)
		return
	}
	if !op.close {
		l.adopt(c)
		return
	}
	if _, mine := l.conns[c]; !mine {
		if !c.lp.lc.onLoop.Load() && !c.lp.lc.closed {
			// Handed to a goroutine meanwhile: close it the ordinary way.
			c.nc.Close()
		}
		return
	}
	if op.force || (c.lp.be == nil && c.lp.req == nil) {
		// clientGone, not closeClient: an exchange in flight is
		// recorded as abandoned, as when its client goes away.
		l.clientGone(c)
	}
}

func (l *loop) adopt(c *conn) {
	lp := c.lp
	fd := lp.lc.fd
	lp.state = l.stateFor(lp.fp)
	l.setSlot(fd, loopSlot{c: c})
	l.conns[c] = struct{}{}
	if err := l.addFD(fd); err != nil {
		l.closeClient(c)
		return
	}
	c.srv.setState(c, http.StateIdle)
	// The first head's time runs from the handshake, as the goroutine
	// engine's does.
	lp.deadline = time.Now().Add(c.srv.readHeaderTimeout())
	lp.inHead = true
	// The first request may have come with the handshake's last flight:
	// crypto/tls holds it already.
	l.decrypt(c)
	l.next(c)
}

func (l *loop) clientEvent(c *conn, events uint32) {
	lp := c.lp
	if events&unix.EPOLLOUT != 0 {
		done, err := lp.lc.flush()
		if err != nil {
			l.clientGone(c)
			return
		}
		if done {
			l.setClientOut(c, false)
			if lp.closeAfter {
				l.closeClient(c)
				return
			}
			if lp.be == nil {
				l.next(c)
				if _, mine := l.conns[c]; !mine {
					return
				}
			}
		}
	}
	if events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) == 0 {
		return
	}
	if lp.readOff && events&(unix.EPOLLHUP|unix.EPOLLERR|unix.EPOLLRDHUP) == 0 {
		return
	}
	n, err := rawRead(lp.lc.fd, l.rbuf)
	if err == unix.EAGAIN || err == unix.EINTR {
		return
	}
	if n <= 0 {
		l.clientGone(c)
		return
	}
	lp.lc.in = l.rbuf[:n]
	l.decrypt(c)
	if _, mine := l.conns[c]; !mine {
		return
	}
	if len(lp.lc.in) > 0 {
		lp.lc.rest = append(lp.lc.rest, lp.lc.in...)
		lp.lc.in = nil
	}
	if lp.be == nil && len(lp.lc.pending) == 0 {
		l.next(c)
	}
}

// decrypt moves what crypto/tls can decrypt from the bytes read into the
// connection's buffer, while there is room.
func (l *loop) decrypt(c *conn) {
	lp := c.lp
	if c.buf == nil {
		c.buf = readBufferPool.Get().(*[readBufferSize]byte)[:]
	}
	for {
		if c.w == len(c.buf) {
			if !l.makeRoom(c) {
				l.setClientRead(c, false)
				return
			}
		}
		n, err := lp.tc.Read(c.buf[c.w:])
		c.w += n
		if err != nil {
			if err != errWouldBlock {
				// close_notify or a TLS error: serve what was read, then
				// end, as the goroutine engine does.
				c.rerr = err
			}
			return
		}
	}
}

// makeRoom moves unread bytes to the front of the buffer or grows it up to
// what a head may take; false when it is full.
func (l *loop) makeRoom(c *conn) bool {
	if c.r > 0 && c.lp.be == nil {
		c.w = copy(c.buf, c.buf[c.r:c.w])
		c.r = 0
		return c.w < len(c.buf)
	}
	limit := c.srv.maxHeaderBytes() + 4
	if len(c.buf) >= limit {
		return false
	}
	nb := make([]byte, min(2*len(c.buf), limit))
	c.w = copy(nb, c.buf[:c.w])
	c.buf = nb
	return true
}

func (l *loop) setClientRead(c *conn, on bool) {
	lp := c.lp
	if lp.readOff == !on {
		return
	}
	lp.readOff = !on
	l.modClient(c)
}

func (l *loop) setClientOut(c *conn, on bool) {
	lp := c.lp
	if lp.wantOut == on {
		return
	}
	lp.wantOut = on
	l.modClient(c)
}

func (l *loop) modClient(c *conn) {
	lp := c.lp
	l.modFD(lp.lc.fd, !lp.readOff, lp.wantOut)
}

// addFD adds a client socket to the loop's epoll set, for reading.
func (l *loop) addFD(fd int) error {
	return unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)})
}

// modFD sets which events of a client socket the loop waits for.
func (l *loop) modFD(fd int, in, out bool) {
	ev := uint32(unix.EPOLLRDHUP)
	if in {
		ev |= unix.EPOLLIN
	}
	if out {
		ev |= unix.EPOLLOUT
	}
	_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, fd, &unix.EpollEvent{Events: ev, Fd: int32(fd)})
}

// next starts the next request the buffer holds, if any.
func (l *loop) next(c *conn) {
	s := c.srv
	lp := c.lp
	if c.r == c.w {
		c.r, c.w = 0, 0
		if c.rerr != nil || s.inShutdown.Load() {
			l.closeClient(c)
			return
		}
		// Idle: the sweep gives the request working set and the read
		// buffer back to their pools if no byte comes for a while, as the
		// goroutine engine's idle connections give them back (idleRead);
		// a connection busy with requests keeps them, which saves four
		// pool operations per request.
		now := time.Now()
		lp.idleSince = now
		if lp.served {
			lp.deadline = now.Add(s.idleTimeout())
		}
		l.setClientRead(c, true)
		return
	}
	end, herr := headEnd(c.buf[c.r:c.w], 0)
	if herr != nil || end > s.maxHeaderBytes() || (end < 0 && c.w-c.r > s.maxHeaderBytes()) {
		l.handOff(c)
		return
	}
	if end < 0 {
		if c.rerr != nil {
			l.closeClient(c)
			return
		}
		// The header timeout runs from the head's first byte, not from
		// its latest: a client trickling a head gets no more time.
		if !lp.inHead {
			lp.inHead = true
			lp.deadline = time.Now().Add(s.readHeaderTimeout())
		}
		l.setClientRead(c, true)
		return
	}
	lp.inHead = false
	lp.idleSince = time.Time{}
	if s.inShutdown.Load() {
		l.closeClient(c)
		return
	}
	lp.headStart = c.r
	c.takeScratch()
	head := string(c.buf[c.r : c.r+end])
	c.r += end
	r, ok := c.loopRequest(head)

	if !ok {
		c.r = lp.headStart
		l.handOff(c)
		return
	}
	var endpoint string
	var token any
	lp.out, endpoint, token, ok = lp.fp.Plan(lp.state, lp.out[:0], r)

	if !ok {
		l.handOff(c)
		return
	}
	be := l.backend(endpoint)
	if be == nil {
		lp.fp.Retract(token)
		l.handOff(c)
		return
	}
	s.setState(c, http.StateActive)
	lp.served = true
	lp.token, lp.endpoint, lp.start = token, endpoint, time.Now()
	lp.be, be.c = be, c
	be.out = lp.out // lp.out is not reused before the exchange ends
	be.buf = l.takeBuf()
	c.resp.reset(c, r, &c.head, nil)
	if !be.connecting {
		l.sendBackend(be)
	}
}

// loopRequest parses head into the connection's request when it is one a
// loop may serve: HTTP/1.1 in origin form without a body or an
// expectation. It writes nothing: a refused head goes to the goroutine
// engine, which refuses it as always.
func (c *conn) loopRequest(head string) (*http.Request, bool) {
	rh := &c.head
	c.sink.reset(c.reqHdr)
	if parseRequestHead(head, rh, &c.sink) != nil || rh.chunked || rh.contentLength > 0 || rh.hasTrailer || rh.upgrade ||
		rh.expectCont || rh.major != 1 || rh.minor != 1 || rh.target == "" || rh.target[0] != '/' {
		return nil, false
	}
	if parseTarget(rh.method, rh.target, &c.url) != nil || c.url.Host != "" {
		return nil, false
	}
	delete(c.reqHdr, "Host")
	rc, r := c.requestContext()
	c.req = http.Request{
		Method:     rh.method,
		URL:        &c.url,
		Proto:      rh.proto,
		ProtoMajor: rh.major,
		ProtoMinor: rh.minor,
		Header:     c.reqHdr,
		Host:       rh.host,
		Close:      rh.close,
		RemoteAddr: c.remoteAddr,
		RequestURI: rh.target,
		TLS:        c.tlsState,
		Body:       http.NoBody,
	}
	setRequest(r, &c.req)
	c.lp.req, c.lp.rc = r, rc
	return r, true
}

// endRequest ends the loop's request in flight.
func (l *loop) endRequest(c *conn) {
	lp := c.lp
	if lp.req != nil {
		c.endRequestContext(lp.rc, lp.req)
	}
	lp.req, lp.rc, lp.token, lp.be = nil, nil, nil, nil
}

// Response buffers: large enough for most responses in one read, and
// kept while at most a little over upstream's limit.
const (
	respBufSize  = 32 << 10
	respBufKeep  = 80 << 10
	respBufsKept = 256
)

func (l *loop) takeBuf() []byte {
	if n := len(l.bufs); n > 0 {
		b := l.bufs[n-1]
		l.bufs = l.bufs[:n-1]
		return b[:0]
	}
	return make([]byte, 0, respBufSize)
}

func (l *loop) putBuf(b []byte) {
	if cap(b) == 0 || cap(b) > respBufKeep || len(l.bufs) >= respBufsKept {
		return
	}
	l.bufs = append(l.bufs, b)
}

// backend returns an idle connection to endpoint or starts a new one.
func (l *loop) backend(endpoint string) *loopBackend {
	if be := l.idleBackend(endpoint); be != nil {
		return be
	}
	return l.dial(endpoint)
}

// idleBackend takes an idle connection to endpoint, if the loop has one.
func (l *loop) idleBackend(endpoint string) *loopBackend {
	stack := l.idle[endpoint]
	if len(stack) == 0 {
		return nil
	}
	be := stack[len(stack)-1]
	l.idle[endpoint] = stack[:len(stack)-1]
	return be
}

// dial starts a new connection to endpoint ("ip:port").
func (l *loop) dial(endpoint string) *loopBackend {
	ap, err := netip.ParseAddrPort(endpoint)
	if err != nil {
		return nil
	}
	var sa unix.Sockaddr
	family := unix.AF_INET
	if ap.Addr().Is4() || ap.Addr().Is4In6() {
		sa = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().Unmap().As4()}
	} else {
		family = unix.AF_INET6
		sa = &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	be := &loopBackend{fd: fd, endpoint: endpoint}
	err = unix.Connect(fd, sa)
	events := uint32(unix.EPOLLIN | unix.EPOLLRDHUP)
	switch err {
	case nil:
	case unix.EINPROGRESS:
		be.connecting, be.wantOut = true, true
		events |= unix.EPOLLOUT
	default:
		unix.Close(fd)
		return nil
	}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: events, Fd: int32(fd)}); err != nil {
		unix.Close(fd)
		return nil
	}
	l.setSlot(fd, loopSlot{b: be})
	l.backends[be] = struct{}{}
	return be
}

// sendBackend writes what is left of the request to its backend.
func (l *loop) sendBackend(be *loopBackend) {
	for len(be.out) > 0 {
		n, err := rawWrite(be.fd, be.out)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			l.setBackendOut(be, true)
			return
		}
		if err != nil {
			l.backendFailed(be)
			return
		}
		be.out = be.out[n:]
	}
	l.setBackendOut(be, false)
}

func (l *loop) setBackendOut(be *loopBackend, on bool) {
	if be.wantOut == on {
		return
	}
	be.wantOut = on
	ev := uint32(unix.EPOLLIN | unix.EPOLLRDHUP)
	if on {
		ev |= unix.EPOLLOUT
	}
	_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, be.fd, &unix.EpollEvent{Events: ev, Fd: int32(be.fd)})
}

// backendNews is what a backend connection's events brought its exchange.
type backendNews uint8

const (
	// backendNothing: nothing to act on (or a failure backendIO handled).
	backendNothing backendNews = iota
	// backendCut: the backend closed after part of the response.
	backendCut
	// backendData: more of the response is in be.buf.
	backendData
)

// backendIO does the I/O a backend connection carrying an exchange is
// ready for: it finishes a connect, sends what is left of the request and
// reads what came. A failure before any of the response arrived goes to
// backendFailed.
func (l *loop) backendIO(be *loopBackend, events uint32) backendNews {
	if be.connecting {
		if events&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) == 0 {
			return backendNothing
		}
		if !connected(be.fd) {
			l.backendFailed(be)
			return backendNothing
		}
		be.connecting = false
		l.sendBackend(be)
		return backendNothing
	}
	if events&unix.EPOLLOUT != 0 && len(be.out) > 0 {
		l.sendBackend(be)
		if be.c == nil && be.s == nil {
			return backendNothing
		}
	}
	if events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) == 0 {
		return backendNothing
	}
	if cap(be.buf)-len(be.buf) < 4<<10 {
		be.buf = append(be.buf, make([]byte, cap(be.buf))...)[:len(be.buf)]
	}
	n, err := rawRead(be.fd, be.buf[len(be.buf):cap(be.buf)])
	if err == unix.EAGAIN || err == unix.EINTR {
		return backendNothing
	}
	if n <= 0 {
		if len(be.buf) == 0 {
			l.backendFailed(be)
			return backendNothing
		}
		return backendCut
	}
	be.buf = be.buf[:len(be.buf)+n]
	return backendData
}

func (l *loop) backendEvent(be *loopBackend, events uint32) {
	c := be.c
	if c == nil {
		// Idle: the backend closed it or sent what nobody asked for.
		l.closeBackend(be)
		return
	}
	switch l.backendIO(be, events) {
	case backendNothing:
		return
	case backendCut:
		// Cut short: the goroutine engine answers as Forward would.
		l.continueExchange(c)
		return
	}
	lp := c.lp
	switch lp.fp.Complete(lp.state, &c.resp, lp.req, lp.token, be.buf, lp.start) {
	case FastNeedMore:
		return
	case FastContinue:
		l.continueExchange(c)
		return
	case FastDone:
		l.release(be)
	case FastDoneClose:
		l.closeBackend(be)
	}
	l.finishResponse(c)
}

// backendFailed handles a backend connection that failed before any of the
// response arrived: nothing was answered, and the request (idempotent, with
// no body) goes to the goroutine engine, which forwards it again, on a new
// connection, and answers the error if that fails too, as Forward does.
func (l *loop) backendFailed(be *loopBackend) {
	c, s, budgeted := be.c, be.s, be.budgeted
	l.closeBackend(be)
	if s != nil {
		l.h2BackendFailed(s, budgeted)
		return
	}
	if c == nil {
		return
	}
	lp := c.lp
	lp.fp.Retract(lp.token)
	l.endRequest(c)
	c.r = lp.headStart
	l.handOff(c)
}

// finishResponse ends the response the loop wrote and starts the next
// request or closes the connection.
func (l *loop) finishResponse(c *conn) {
	l.served.Add(1)
	lp := c.lp
	w := &c.resp
	// The response to a request that closes its connection is held back
	// and leaves with the TLS close_notify in one write: one system call
	// and one segment for the client fewer on every such connection.
	corked := w.reqWantsClose
	lp.lc.cork = corked
	w.finish()
	lp.lc.cork = false
	keep := !w.closeAfter && c.rerr == nil && w.werr == nil && !c.srv.inShutdown.Load()
	l.endRequest(c)
	if w.werr != nil {
		l.closeClient(c)
		return
	}
	c.srv.setState(c, http.StateIdle)
	if corked {
		if !keep {
			_ = lp.tc.CloseWrite()
		}
		if _, err := lp.lc.flush(); err != nil {
			l.closeClient(c)
			return
		}
	}
	if len(lp.lc.pending) > 0 {
		lp.closeAfter = !keep
		lp.deadline = time.Now().Add(c.srv.idleTimeout())
		l.setClientOut(c, true)
		return
	}
	if !keep {
		l.closeClient(c)
		return
	}
	l.next(c)
}

// release puts a backend connection back in its endpoint's idle stack.
func (l *loop) release(be *loopBackend) {
	be.c, be.reused, be.idleSince = nil, true, time.Now()
	l.putBuf(be.buf)
	be.buf = nil
	stack := l.idle[be.endpoint]
	if len(stack) >= loopIdleBackends {
		l.closeBackend(be)
		return
	}
	l.idle[be.endpoint] = append(stack, be)
}

func (l *loop) closeBackend(be *loopBackend) {
	if _, ok := l.backends[be]; !ok {
		return
	}
	delete(l.backends, be)
	l.putBuf(be.buf)
	be.buf = nil
	if be.c == nil && be.s == nil {
		stack := l.idle[be.endpoint]
		for i, x := range stack {
			if x == be {
				l.idle[be.endpoint] = append(stack[:i], stack[i+1:]...)
				break
			}
		}
	} else if be.c != nil && be.c.lp.be == be {
		be.c.lp.be = nil
	}
	if s := be.s; s != nil && s.be == be {
		s.be, be.s = nil, nil
	}
	l.forget(be.fd)
	unix.Close(be.fd)
}

// clientGone handles a client that closed its connection or failed.
func (l *loop) clientGone(c *conn) {
	lp := c.lp
	if be := lp.be; be != nil {
		lp.fp.Abandon(lp.req, lp.token, lp.start)
		l.closeBackend(be)
	}
	l.closeClient(c)
}

func (l *loop) closeClient(c *conn) {
	lp := c.lp
	if _, mine := l.conns[c]; !mine {
		return
	}
	if be := lp.be; be != nil {
		l.closeBackend(be)
	}
	if lp.req != nil {
		l.endRequest(c)
	}
	delete(l.conns, c)
	l.forget(lp.lc.fd)
	c.srv.finish(c)
	c.releaseScratch()
	if len(c.buf) == readBufferSize {
		readBufferPool.Put((*[readBufferSize]byte)(c.buf))
	}
	c.buf = nil
}

// detach takes the client off the loop and makes its socket a net.Conn on
// the netpoller again.
func (l *loop) detach(c *conn) bool {
	lp := c.lp
	fd := lp.lc.fd
	delete(l.conns, c)
	l.unregister(fd)
	nc, err := fileConn(fd)
	if err != nil {
		lp.lc.onLoop.Store(false)
		c.srv.finish(c)
		return false
	}
	lp.lc.Conn = nc
	lp.lc.onLoop.Store(false)
	return true
}

// handOff gives the connection to a goroutine before anything of its next
// request was sent: the engine reads the request from the buffer again.
func (l *loop) handOff(c *conn) {
	lp := c.lp
	if lp.req != nil {
		l.endRequest(c)
		c.r = lp.headStart
	}
	if !l.detach(c) {
		return
	}
	l.handedOff.Add(1)
	go c.serveLoop(false, nil)
}

// continueExchange gives the connection and its backend exchange to a
// goroutine, which finishes the exchange under the backend client's
// bounds and then serves the connection as the engine does.
func (l *loop) continueExchange(c *conn) {
	lp := c.lp
	be := lp.be
	delete(l.backends, be)
	l.unregister(be.fd)
	backend, berr := fileConn(be.fd)
	// The goroutine reads these later; the loop reuses its buffer now.
	buffered := bytes.Clone(be.buf)
	l.putBuf(be.buf)
	be.buf = nil
	req, rc, token, endpoint, start := lp.req, lp.rc, lp.token, lp.endpoint, lp.start
	lp.req, lp.rc, lp.token, lp.be = nil, nil, nil, nil
	if !l.detach(c) {
		if berr == nil {
			backend.Close()
		}
		lp.fp.Abandon(req, token, start)
		return
	}
	fp := lp.fp
	l.continued.Add(1)
	go c.serveLoop(false, func() bool {
		defer c.endRequestContext(rc, req)
		if berr != nil {
			fp.Abandon(req, token, start)
			return false
		}
		return c.runHandler(&c.resp, req, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fp.Continue(w, r, token, endpoint, backend, buffered, start)
		}))
	})
}

// fileConn makes a net.Conn of fd, which it takes over.
func fileConn(fd int) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "")
	nc, err := net.FileConn(f)
	f.Close()
	return nc, err
}

// sweep ends the waits that are over.
func (l *loop) sweep(now time.Time) {
	for c := range l.conns {
		lp := c.lp
		if lp.be != nil {
			if now.Sub(lp.start) >= loopExchangeMax {
				if lp.be.connecting {
					l.backendFailed(lp.be)
				} else {
					l.continueExchange(c)
				}
			}
			continue
		}
		if now.After(lp.deadline) {
			l.closeClient(c)
			continue
		}
		if c.r == c.w && !lp.idleSince.IsZero() && now.Sub(lp.idleSince) >= loopSweepEvery && len(lp.lc.pending) == 0 {
			c.releaseScratch()
			if len(c.buf) == readBufferSize {
				readBufferPool.Put((*[readBufferSize]byte)(c.buf))
				c.buf = nil
			}
			lp.idleSince = time.Time{}
		}
	}
	l.h2Sweep(now)
	for endpoint, stack := range l.idle {
		// The stack's bottom is its oldest connection.
		for len(stack) > 0 && now.Sub(stack[0].idleSince) >= loopBackendIdleTime {
			l.closeBackend(stack[0])
			stack = l.idle[endpoint]
		}
		if len(stack) == 0 {
			delete(l.idle, endpoint)
		}
	}
}

// EventLoopCounts sums what the process's event loops did so far.
func EventLoopCounts() LoopCounts {
	var n LoopCounts
	loops.mu.Lock()
	all := loops.all
	loops.mu.Unlock()
	for _, l := range all {
		n.Served += l.served.Load()
		n.HandedOff += l.handedOff.Load()
		n.Continued += l.continued.Load()
	}
	return n
}
