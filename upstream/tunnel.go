package upstream

import (
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

var errTransportClosed = errors.New("transport closed")

// tunnel is an upgraded connection pair (such as WebSocket) relayed byte for
// byte. The Transport tracks open tunnels so Close can end them.
type tunnel struct {
	client, backend net.Conn
	once            sync.Once

	// last is when a byte last went through, in Unix nanoseconds. Each read
	// only stores the time: no deadline moves per read on a busy tunnel.
	// The idle timer checks it when it fires, and fires again for the
	// time left.
	last    atomic.Int64
	idle    time.Duration
	timerMu sync.Mutex
	timer   *time.Timer
}

func (tn *tunnel) close() {
	tn.once.Do(func() {
		_ = tn.client.Close()
		_ = tn.backend.Close()
	})
}

func (tn *tunnel) touch() { tn.last.Store(time.Now().UnixNano()) }

// watchIdle closes the tunnel once no byte went through for tn.idle;
// stopIdle ends the watch.
func (tn *tunnel) watchIdle() {
	tn.touch()
	tn.timerMu.Lock()
	tn.timer = time.AfterFunc(tn.idle, tn.checkIdle)
	tn.timerMu.Unlock()
}

func (tn *tunnel) checkIdle() {
	quiet := time.Since(time.Unix(0, tn.last.Load()))
	if quiet >= tn.idle {
		tn.close()
		return
	}
	tn.timerMu.Lock()
	tn.timer.Reset(tn.idle - quiet)
	tn.timerMu.Unlock()
}

func (tn *tunnel) stopIdle() {
	tn.timerMu.Lock()
	tn.timer.Stop()
	tn.timerMu.Unlock()
}

// track registers tn, or reports false when the Transport is closed.
func (t *Transport) track(tn *tunnel) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed.Load() {
		return false
	}
	t.tunnels[tn] = struct{}{}
	return true
}

func (t *Transport) untrack(tn *tunnel) {
	t.mu.Lock()
	delete(t.tunnels, tn)
	t.mu.Unlock()
}

// serveTunnel completes an upgrade the backend accepted with 101: it takes
// over the client connection, relays the 101 response and then copies bytes
// both ways until both directions are done or either fails.
func (t *Transport) serveTunnel(w http.ResponseWriter, c *conn, resp *http.Response, upgrade string) Outcome {
	clientConn, clientBuf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		c.close()
		return writeError(w, nil, http.StatusInternalServerError, "cannot switch protocols on this connection", errors.Join(errNoHijack, err))
	}
	out := Outcome{Status: http.StatusSwitchingProtocols}
	// The inbound server's read and write timeouts are meant for requests,
	// not for a long-lived tunnel.
	_ = clientConn.SetDeadline(time.Time{})
	_ = c.nc.SetDeadline(time.Time{})

	tn := &tunnel{client: clientConn, backend: c.nc, idle: t.tunnelIdleTimeout}
	if !t.track(tn) {
		tn.close()
		out.Err = errTransportClosed
		return out
	}
	defer t.untrack(tn)
	defer tn.close()

	bw := clientBuf.Writer
	bw.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	connection := resp.Header["Connection"]
	for k, vv := range resp.Header {
		if isHopByHop(k) || !validHeaderName(k) || (len(connection) > 0 && namedInConnection(connection, k)) {
			continue
		}
		writeHeaderValues(bw, k, vv)
	}
	bw.WriteString("Connection: Upgrade\r\nUpgrade: ")
	bw.WriteString(upgrade)
	bw.WriteString("\r\n\r\n")
	if err := bw.Flush(); err != nil {
		out.Err = err
		return out
	}

	// A tunnel through which nothing goes either way for TunnelIdleTimeout
	// is closed on both sides.
	tn.watchIdle()
	defer tn.stopIdle()

	// Bytes the client sent after its request may already sit in the
	// hijacked reader, and bytes the backend sent after its 101 in the
	// connection's reader: both directions read through those buffers.
	toBackend := make(chan error, 1)
	go func() { toBackend <- relay(tn, c.nc, clientBuf.Reader) }()
	errToClient := relay(tn, clientConn, c.br)
	errToBackend := <-toBackend
	if err := errors.Join(errToClient, errToBackend); err != nil && !errors.Is(err, net.ErrClosed) {
		out.Err = err
		t.log.Debug("upgraded connection ended with an error", "upgrade", upgrade, "error", err)
	}
	return out
}

// relay copies src to dst until src ends, then half-closes dst so the peer
// sees the end of the stream while the other direction keeps flowing. Any
// failure ends the whole tunnel.
func relay(tn *tunnel, dst net.Conn, src io.Reader) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			tn.touch()
			if _, err := dst.Write(buf[:n]); err != nil {
				tn.close()
				return err
			}
		}
		if rerr == io.EOF {
			if cw, ok := dst.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
				return nil
			}
			tn.close()
			return nil
		}
		if rerr != nil {
			tn.close()
			return rerr
		}
	}
}
