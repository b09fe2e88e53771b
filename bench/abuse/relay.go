package abuse

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// Relay sits between a proxy and the shared backend and counts the
// connections the proxy opens: the figure that shows whether an attack on
// the front door is multiplied into backend connects. It copies bytes both
// ways and adds the same small cost to every target.
type Relay struct {
	ln       net.Listener
	backend  string
	connects atomic.Int64
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
}

// StartRelay listens on a loopback port and forwards to backend.
func StartRelay(backend string) (*Relay, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &Relay{ln: ln, backend: backend, conns: map[net.Conn]struct{}{}}
	r.wg.Add(1)
	go r.accept()
	return r, nil
}

// Addr is where proxies are pointed instead of the backend.
func (r *Relay) Addr() string { return r.ln.Addr().String() }

// Connects is the number of connections accepted so far.
func (r *Relay) Connects() int64 { return r.connects.Load() }

func (r *Relay) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.connects.Add(1)
		r.wg.Add(1)
		go r.pipe(c)
	}
}

func (r *Relay) track(c net.Conn, add bool) {
	r.mu.Lock()
	if add {
		r.conns[c] = struct{}{}
	} else {
		delete(r.conns, c)
	}
	r.mu.Unlock()
}

func (r *Relay) pipe(front net.Conn) {
	defer r.wg.Done()
	defer front.Close()
	back, err := net.Dial("tcp", r.backend)
	if err != nil {
		return
	}
	defer back.Close()
	r.track(front, true)
	r.track(back, true)
	defer r.track(front, false)
	defer r.track(back, false)
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go cp(back, front)
	go cp(front, back)
	<-done
	<-done
}

// Close stops the relay and every connection through it.
func (r *Relay) Close() {
	_ = r.ln.Close()
	r.mu.Lock()
	for c := range r.conns {
		_ = c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}
