package http1

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// stubFastPath forwards GETs under /fast/ to backend as the routing
// handler's FastPath would, and answers from the backend's bytes.
type stubFastPath struct {
	backend   string
	abandoned atomic.Int64
}

func (f *stubFastPath) NewLoopState() any { return nil }

func (f *stubFastPath) Plan(_ any, dst []byte, r *http.Request) ([]byte, string, any, bool) {
	if !strings.HasPrefix(r.URL.Path, "/fast/") || r.Method != http.MethodGet {
		return dst, "", nil, false
	}
	return fmt.Appendf(dst, "GET %s HTTP/1.1\r\nHost: backend\r\n\r\n", r.URL.Path), f.backend, r, true
}

func (f *stubFastPath) Complete(_ any, w http.ResponseWriter, _ *http.Request, _ any, resp []byte, _ time.Time) FastResult {
	end := bytes.Index(resp, []byte("\r\n\r\n"))
	if end < 0 {
		return FastNeedMore
	}
	head := string(resp[:end])
	i := strings.Index(strings.ToLower(head), "content-length: ")
	if i < 0 {
		return FastContinue
	}
	n, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(head[i+len("content-length: "):], "\r\n", 2)[0]))
	if len(resp) < end+4+n {
		return FastNeedMore
	}
	w.Header().Set("Content-Length", strconv.Itoa(n))
	w.Header().Set("X-Served", "loop")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(resp[end+4 : end+4+n])
	return FastDone
}

func (f *stubFastPath) Continue(w http.ResponseWriter, _ *http.Request, _ any, _ string, backend net.Conn, _ []byte, _ time.Time) {
	backend.Close()
	w.WriteHeader(http.StatusBadGateway)
}

func (f *stubFastPath) Abandon(*http.Request, any, time.Time) { f.abandoned.Add(1) }
func (f *stubFastPath) Retract(any)                           {}
func (f *stubFastPath) TakeDial(*http.Request) bool           { return true }
func (f *stubFastPath) RefundDial(*http.Request)              {}

// startH2Loop serves h on a TLS socket whose h2 connections the event
// loops serve, with GETs under /fast/ forwarded to a loopback backend.
func startH2Loop(t *testing.T, h http.Handler, cfg H2Config) (*Server, string, *stubFastPath) {
	t.Helper()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "backend "+r.URL.Path)
	}))
	t.Cleanup(backend.Close)
	ts := httptest.NewTLSServer(http.NotFoundHandler())
	tcfg := ts.TLS.Clone()
	ts.Close()
	tcfg.NextProtos = []string{"h2", "http/1.1"}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fp := &stubFastPath{backend: strings.TrimPrefix(backend.URL, "http://")}
	s := &Server{Handler: h, HTTP2EventLoops: true, FastPath: fp, H2: cfg, IdleTimeout: 5 * time.Second}
	done := make(chan error, 1)
	go func() { done <- s.ServeTLS(ln, tcfg, 5*time.Second, nil) }()
	t.Cleanup(func() {
		s.Close()
		<-done
	})
	return s, ln.Addr().String(), fp
}

func h2Client() *http.Client {
	var h2 http.Protocols
	h2.SetHTTP2(true)
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Protocols: &h2, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
}

func TestH2LoopServes(t *testing.T) {
	_, addr, _ := startH2Loop(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/echo":
			w.Header().Set("Trailer", "X-Sum")
			n, err := io.Copy(w, r.Body)
			w.Header().Set("X-Sum", fmt.Sprintf("%d %v", n, err))
		default:
			fmt.Fprintf(w, "handler %s %s", r.Proto, r.URL.Path)
		}
	}), H2Config{})
	c := h2Client()
	get := func(path string) (string, http.Header) {
		t.Helper()
		resp, err := c.Get("https://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.ProtoMajor != 2 {
			t.Fatalf("%s: %v %s", path, err, resp.Proto)
		}
		return string(b), resp.Header
	}
	for i := range 20 {
		if b, h := get(fmt.Sprintf("/fast/%d", i)); b != fmt.Sprintf("backend /fast/%d", i) || h.Get("X-Served") != "loop" {
			t.Fatalf("fast stream: %q %v", b, h)
		}
	}
	if b, _ := get("/other"); b != "handler HTTP/2.0 /other" {
		t.Fatalf("handler stream: %q", b)
	}
	// A body larger than the windows at both ends, echoed with a trailer.
	body := bytes.Repeat([]byte("0123456789abcdef"), 300<<10/16)
	resp, err := c.Post("https://"+addr+"/echo", "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("echo: %d bytes, %v", len(got), err)
	}
	if want := fmt.Sprintf("%d <nil>", len(body)); resp.Trailer.Get("X-Sum") != want {
		t.Fatalf("trailer %q, want %q", resp.Trailer.Get("X-Sum"), want)
	}
}

// rawH2 is a client connection driven frame by frame.
type rawH2 struct {
	t   *testing.T
	c   *tls.Conn
	fr  *http2.Framer
	enc *hpack.Encoder
	hb  bytes.Buffer
}

func dialRawH2(t *testing.T, addr string) *rawH2 {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, http2.ClientPreface)
	r := &rawH2{t: t, c: c, fr: http2.NewFramer(c, c)}
	r.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	r.enc = hpack.NewEncoder(&r.hb)
	return r
}

func (r *rawH2) block(fields ...string) []byte {
	r.hb.Reset()
	for i := 0; i+1 < len(fields); i += 2 {
		r.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	return bytes.Clone(r.hb.Bytes())
}

func (r *rawH2) get(id uint32, path string, extra ...string) {
	fields := append([]string{":method", "GET", ":scheme", "https", ":authority", "a", ":path", path}, extra...)
	r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: r.block(fields...), EndStream: true, EndHeaders: true})
}

// until reads frames until match accepts one, and fails the test if the
// connection ends first.
func (r *rawH2) until(what string, match func(http2.Frame) bool) http2.Frame {
	r.t.Helper()
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			r.t.Fatalf("waiting for %s: %v", what, err)
		}
		if match(f) {
			return f
		}
	}
}

func (r *rawH2) goAway(code http2.ErrCode) {
	r.t.Helper()
	f := r.until("GOAWAY", func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok }).(*http2.GoAwayFrame)
	if f.ErrCode != code {
		r.t.Fatalf("GOAWAY %v, want %v", f.ErrCode, code)
	}
}

func (r *rawH2) reset(id uint32, code http2.ErrCode) {
	r.t.Helper()
	f := r.until(fmt.Sprintf("RST_STREAM %d", id), func(f http2.Frame) bool {
		if g, ok := f.(*http2.GoAwayFrame); ok {
			r.t.Fatalf("GOAWAY %v waiting for RST_STREAM %d", g.ErrCode, id)
		}
		rs, ok := f.(*http2.RSTStreamFrame)
		return ok && rs.StreamID == id
	}).(*http2.RSTStreamFrame)
	if f.ErrCode != code {
		r.t.Fatalf("RST_STREAM %v, want %v", f.ErrCode, code)
	}
}

func (r *rawH2) status(id uint32) string {
	r.t.Helper()
	f := r.until(fmt.Sprintf("HEADERS %d", id), func(f http2.Frame) bool {
		if g, ok := f.(*http2.GoAwayFrame); ok {
			r.t.Fatalf("GOAWAY %v waiting for HEADERS %d", g.ErrCode, id)
		}
		h, ok := f.(*http2.MetaHeadersFrame)
		return ok && h.StreamID == id
	}).(*http2.MetaHeadersFrame)
	return f.PseudoValue("status")
}

// The loop refuses what RFC 9113 calls malformed and bounds what a client
// can make it do, as net/http's HTTP/2 server does.
func TestH2LoopProtocolErrors(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	_, addr, _ := startH2Loop(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			<-release
		}
		io.WriteString(w, "ok")
	}), H2Config{MaxConcurrentStreams: 4})

	cases := []struct {
		name string
		run  func(r *rawH2)
	}{
		{"first frame not SETTINGS", func(r *rawH2) {
			r.fr.WritePing(false, [8]byte{})
			r.goAway(http2.ErrCodeProtocol)
		}},
		{"PING answered", func(r *rawH2) {
			r.fr.WriteSettings()
			r.fr.WritePing(false, [8]byte{7})
			r.until("PING ack", func(f http2.Frame) bool { p, ok := f.(*http2.PingFrame); return ok && p.IsAck() && p.Data[0] == 7 })
		}},
		{"DATA on an idle stream", func(r *rawH2) {
			r.fr.WriteSettings()
			r.fr.WriteData(5, true, []byte("x"))
			r.goAway(http2.ErrCodeProtocol)
		}},
		{"even stream id", func(r *rawH2) {
			r.fr.WriteSettings()
			r.get(2, "/")
			r.goAway(http2.ErrCodeProtocol)
		}},
		{"stream ids going back", func(r *rawH2) {
			r.fr.WriteSettings()
			r.get(5, "/")
			if s := r.status(5); s != "200" {
				t.Fatalf("status %s", s)
			}
			r.get(3, "/")
			r.goAway(http2.ErrCodeStreamClosed)
		}},
		{"connection-specific field", func(r *rawH2) {
			r.fr.WriteSettings()
			r.get(1, "/", "connection", "keep-alive")
			r.reset(1, http2.ErrCodeProtocol)
		}},
		{"TE other than trailers", func(r *rawH2) {
			r.fr.WriteSettings()
			r.get(1, "/", "te", "gzip")
			r.reset(1, http2.ErrCodeProtocol)
		}},
		{"missing :path", func(r *rawH2) {
			r.fr.WriteSettings()
			r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: r.block(":method", "GET", ":scheme", "https", ":authority", "a"), EndStream: true, EndHeaders: true})
			r.reset(1, http2.ErrCodeProtocol)
		}},
		{"body shorter than content-length", func(r *rawH2) {
			r.fr.WriteSettings()
			r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: r.block(":method", "POST", ":scheme", "https", ":authority", "a", ":path", "/", "content-length", "5"), EndHeaders: true})
			r.fr.WriteData(1, true, []byte("abc"))
			r.reset(1, http2.ErrCodeProtocol)
		}},
		{"body longer than content-length", func(r *rawH2) {
			r.fr.WriteSettings()
			r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: r.block(":method", "POST", ":scheme", "https", ":authority", "a", ":path", "/", "content-length", "2"), EndHeaders: true})
			r.fr.WriteData(1, true, []byte("abc"))
			r.reset(1, http2.ErrCodeProtocol)
		}},
		{"connection window overflow", func(r *rawH2) {
			r.fr.WriteSettings()
			r.fr.WriteWindowUpdate(0, 1<<31-1)
			r.goAway(http2.ErrCodeFlowControl)
		}},
		{"more streams than allowed", func(r *rawH2) {
			r.fr.WriteSettings()
			for id := uint32(1); id <= 9; id += 2 {
				r.get(id, "/block")
			}
			r.get(11, "/block")
			r.reset(11, http2.ErrCodeRefusedStream)
		}},
		{"header block beyond MaxHeaderBytes (CONTINUATION flood)", func(r *rawH2) {
			r.fr.WriteSettings()
			r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: r.block(":method", "GET", ":scheme", "https", ":authority", "a", ":path", "/"), EndHeaders: false})
			junk := r.block("x-junk", strings.Repeat("j", 8<<10))
			for range 20 {
				if err := r.fr.WriteContinuation(1, false, junk); err != nil {
					break
				}
			}
			r.goAway(http2.ErrCodeEnhanceYourCalm)
		}},
		{"empty DATA frames", func(r *rawH2) {
			r.fr.WriteSettings()
			r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: r.block(":method", "POST", ":scheme", "https", ":authority", "a", ":path", "/block"), EndHeaders: true})
			for range 2 * h2MaxEmptyFrames {
				if r.fr.WriteData(1, false, nil) != nil {
					break
				}
			}
			r.goAway(http2.ErrCodeEnhanceYourCalm)
		}},
		{"body beyond the stream window", func(r *rawH2) {
			r.fr.WriteSettings()
			r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: r.block(":method", "POST", ":scheme", "https", ":authority", "a", ":path", "/block"), EndHeaders: true})
			chunk := make([]byte, 16<<10)
			for range (1 << 20) / len(chunk) { // the advertised window, which the handler never reads
				r.fr.WriteData(1, false, chunk)
			}
			r.fr.WriteData(1, false, []byte("x"))
			r.reset(1, http2.ErrCodeFlowControl)
		}},
		{"431 for a header list too large", func(r *rawH2) {
			r.fr.WriteSettings()
			r.get(1, "/", "x-big", strings.Repeat("b", 40<<10), "x-big2", strings.Repeat("b", 40<<10))
			if s := r.status(1); s != "431" {
				t.Fatalf("status %s, want 431", s)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := dialRawH2(t, addr)
			r.t = t
			tc.run(r)
		})
	}
}

// A client that resets streams whose handlers keep running cannot make
// the connection run more than twice MaxConcurrentStreams handlers.
func TestH2LoopBoundsHandlersOfResetStreams(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	var running atomic.Int64
	_, addr, _ := startH2Loop(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		running.Add(1)
		<-release // ignores its context
	}), H2Config{MaxConcurrentStreams: 4})
	r := dialRawH2(t, addr)
	r.fr.WriteSettings()
	for id := uint32(1); id < 200; id += 2 {
		r.get(id, "/slow")
		if r.fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
			break
		}
	}
	r.goAway(http2.ErrCodeEnhanceYourCalm)
	if n := running.Load(); n > 8 {
		t.Fatalf("%d handlers started, want at most 8", n)
	}
}

// A client that sends PINGs and never reads the answers is closed instead
// of having them queued without end.
func TestH2LoopClosesClientThatDoesNotRead(t *testing.T) {
	_, addr, _ := startH2Loop(t, http.NotFoundHandler(), H2Config{WriteByteTimeout: 300 * time.Millisecond})
	r := dialRawH2(t, addr)
	r.fr.WriteSettings()
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; i < 10_000_000 && time.Now().Before(deadline); i++ {
		if err = r.fr.WritePing(false, [8]byte{}); err != nil {
			break
		}
	}
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the server kept a client that never reads: %v", err)
	}
}

// A silent client is sent a PING, and closed when it does not answer.
func TestH2LoopPingsSilentClient(t *testing.T) {
	_, addr, _ := startH2Loop(t, http.NotFoundHandler(), H2Config{PingTimeout: 300 * time.Millisecond})
	r := dialRawH2(t, addr)
	r.fr.WriteSettings()
	r.get(1, "/")
	r.status(1)
	r.until("PING", func(f http2.Frame) bool { p, ok := f.(*http2.PingFrame); return ok && !p.IsAck() })
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatal("a client that does not answer PING was kept")
			}
			return
		}
		if _, ok := f.(*http2.GoAwayFrame); ok {
			return
		}
	}
}
