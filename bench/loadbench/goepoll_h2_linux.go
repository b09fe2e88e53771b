package loadbench

import (
	"bytes"
	"encoding/binary"
	"strconv"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// HTTP/2 on go-epoll's loops: a measurement prototype of what an HTTP/2
// server costs when it runs on the event loop instead of net/http's
// (a goroutine per connection reading frames, a goroutine per stream,
// channel hand-offs between them, a goroutine per HEADERS write). The
// loop reads frames from the decrypted bytes with x/net/http2's Framer,
// decodes and encodes headers with its hpack, sends each GET to a backend
// connection of the loop, and writes a response's HEADERS and DATA frames
// in one TLS record. It does only what h2load asks: no request bodies, no
// flow control beyond the client's large windows, no priorities, no
// CONTINUATION; it is not an HTTP/2 server, only a figure for one.

type epollH2 struct {
	preface bool
	in      frameSource
	out     bytes.Buffer
	fr      *http2.Framer
	dec     *hpack.Decoder
	enc     *hpack.Encoder
	encBuf  bytes.Buffer

	method, path, authority string
}

// frameSource hands the Framer one whole frame at a time.
type frameSource struct{ b []byte }

func (f *frameSource) Read(p []byte) (int, error) {
	n := copy(p, f.b)
	f.b = f.b[n:]
	return n, nil
}

func newEpollH2(c *epollClient) *epollH2 {
	h := &epollH2{}
	h.fr = http2.NewFramer(&h.out, &h.in)
	h.enc = hpack.NewEncoder(&h.encBuf)
	h.dec = hpack.NewDecoder(4096, func(f hpack.HeaderField) {
		switch f.Name {
		case ":method":
			h.method = f.Value
		case ":path":
			h.path = f.Value
		case ":authority":
			h.authority = f.Value
		}
	})
	return h
}

// h2Process handles every whole frame decrypted so far.
func (l *epollLoop) h2Process(c *epollClient) {
	h := c.h2
	if !h.preface {
		if len(c.plain) < len(http2.ClientPreface) {
			return
		}
		if string(c.plain[:len(http2.ClientPreface)]) != http2.ClientPreface {
			l.closeClient(c)
			return
		}
		c.plain = c.plain[:copy(c.plain, c.plain[len(http2.ClientPreface):])]
		h.preface = true
		_ = h.fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 256})
	}
	consumed := 0
	for {
		rest := c.plain[consumed:]
		if len(rest) < 9 {
			break
		}
		size := 9 + int(binary.BigEndian.Uint32(append([]byte{0}, rest[:3]...)))
		if len(rest) < size {
			break
		}
		h.in.b = rest[:size]
		consumed += size
		f, err := h.fr.ReadFrame()
		if err != nil {
			l.closeClient(c)
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = h.fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				_ = h.fr.WritePing(true, f.Data)
			}
		case *http2.HeadersFrame:
			h.method, h.path, h.authority = "", "", ""
			if _, err := h.dec.Write(f.HeaderBlockFragment()); err != nil || !f.HeadersEnded() {
				l.closeClient(c)
				return
			}
			l.h2Request(c, f.StreamID)
		case *http2.GoAwayFrame:
			l.closeClient(c)
			return
		}
	}
	c.plain = c.plain[:copy(c.plain, c.plain[consumed:])]
	l.h2Flush(c)
}

// h2Request sends a stream's GET to a backend connection of the loop.
func (l *epollLoop) h2Request(c *epollClient, stream uint32) {
	h := c.h2
	host := h.authority
	if i := bytes.LastIndexByte([]byte(host), ':'); i >= 0 {
		host = host[:i]
	}
	if host != string(l.host) || h.method != "GET" {
		l.h2Answer(c, stream, 404, nil)
		return
	}
	s := l.server()
	if s == nil {
		l.h2Answer(c, stream, 502, nil)
		return
	}
	out := append(c.out[:0], "GET "...)
	out = append(out, h.path...)
	out = append(out, " HTTP/1.1\r\nHost: "...)
	out = append(out, h.authority...)
	out = append(out, "\r\nX-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: https\r\n\r\n"...)
	c.out = out
	s.client, s.stream = c, stream
	if _, err := (&memConn{fd: s.fd}).Write(out); err != nil {
		l.closeServer(s)
		l.h2Answer(c, stream, 502, nil)
	}
}

// h2Respond answers a stream from the backend's whole response.
func (l *epollLoop) h2Respond(c *epollClient, stream uint32, resp []byte, headEnd int) {
	status, err := strconv.Atoi(string(resp[len("HTTP/1.1 "):len("HTTP/1.1 200")]))
	if err != nil {
		status = 502
	}
	l.h2Answer(c, stream, status, resp[headEnd+4:])
	l.h2Flush(c)
}

// h2Answer queues a response's HEADERS and DATA frames.
func (l *epollLoop) h2Answer(c *epollClient, stream uint32, status int, body []byte) {
	h := c.h2
	h.encBuf.Reset()
	_ = h.enc.WriteField(hpack.HeaderField{Name: ":status", Value: strconv.Itoa(status)})
	_ = h.enc.WriteField(hpack.HeaderField{Name: "content-length", Value: strconv.Itoa(len(body))})
	_ = h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: stream, BlockFragment: h.encBuf.Bytes(), EndHeaders: true, EndStream: len(body) == 0})
	if len(body) > 0 {
		_ = h.fr.WriteData(stream, true, body)
	}
}

// h2Flush writes the queued frames in one TLS record.
func (l *epollLoop) h2Flush(c *epollClient) {
	h := c.h2
	if h.out.Len() == 0 {
		return
	}
	if _, err := c.tls.Write(h.out.Bytes()); err != nil {
		l.closeClient(c)
	}
	h.out.Reset()
}
